"""A private Docker daemon, the real peer that interop tests compare against.

Started once per test session with its own data root and socket, so it
never touches a system Docker, and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

# Per process, so that test runs side by side (or a stale one) never collide.
_TAG = f"dockertest-peer-{os.getpid()}"
SOCKET = f"/run/{_TAG}.sock"
DATA_ROOT = f"/var/tmp/{_TAG}"
EXEC_ROOT = f"/run/{_TAG}"


class Docker:
    def __init__(self, host: str):
        self.env = {**os.environ, "DOCKER_HOST": host}

    def __call__(self, *args, input=None, check=True, timeout=180):
        p = subprocess.run(["docker", *map(str, args)], input=input, capture_output=True,
                           env=self.env, timeout=timeout, text=not isinstance(input, bytes))
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} exited {p.returncode}:\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p


@contextmanager
def running_dockerd() -> Iterator[Docker]:
    """Start the private dockerd, yield a client for it, stop it afterwards."""
    Path(DATA_ROOT).mkdir(parents=True, exist_ok=True)
    log = open(f"/tmp/{_TAG}.log", "w")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", DATA_ROOT, "--exec-root", EXEC_ROOT, "-H", f"unix://{SOCKET}",
         "--pidfile", f"{EXEC_ROOT}.pid", "--iptables=false", "--ip6tables=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = Docker(f"unix://{SOCKET}")
    try:
        deadline = time.monotonic() + 60
        while client("version", check=False, timeout=10).returncode != 0:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {proc.returncode}; see /tmp/{_TAG}.log")
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd did not become ready in 60 s")
            time.sleep(0.5)
        yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", DATA_ROOT], capture_output=True)
        shutil.rmtree(DATA_ROOT, ignore_errors=True)
        shutil.rmtree(EXEC_ROOT, ignore_errors=True)
        for leftover in (SOCKET, f"{EXEC_ROOT}.pid"):
            Path(leftover).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def docker():
    if not shutil.which("dockerd"):
        pytest.skip("dockerd (Debian's docker.io) is not installed")
    with running_dockerd() as client:
        yield client
