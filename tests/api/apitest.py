"""A private `berth daemon` per test, and the clients that drive it: the
docker CLI, raw HTTP over its unix socket, docker-py."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from berthtest import berth_argv, wait_for  # noqa: F401 - the API tests import it from here

DOCKER = shutil.which("docker")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:200]!r}>"


class ApiDaemon:
    """`berth daemon` on a socket under the test's directory, with its own --root."""

    def __init__(self, root: Path, directory: Path, extra_args: list[str] = ()):
        self.root = root
        self.directory = directory
        self.socket = str(directory / "berth.sock")
        self.host = f"unix://{self.socket}"
        self.log = directory / "daemon.log"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        config = directory / "docker-config"
        config.mkdir(exist_ok=True)
        self.env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(config),
                    "DOCKER_BUILDKIT": "0", "DOCKER_CLI_HINTS": "false"}

    def start(self) -> "ApiDaemon":
        with open(self.log, "ab") as log:
            # The daemon's registry credentials (POST /auth) go to the test's DOCKER_CONFIG too.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "berth", "--root", str(self.root), "--debug", "daemon", "-H", self.host,
                 *self.extra_args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"berth daemon exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if self.request("GET", "/_ping").status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"berth daemon did not answer in 30 s:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    # -- clients -----------------------------------------------------------------------------

    def request(self, method: str, path: str, body=None, headers: dict | None = None,
                timeout: float = 60) -> Response:
        conn = UnixHTTPConnection(self.socket, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def hijack(self, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[bytes, socket.socket]:
        """POST with Upgrade: tcp; the response head and the raw socket after it."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(self.socket)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n{extra}"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = sock.recv(1)
            if not byte:
                break
            head += byte
        return head, sock

    def docker(self, *args, input=None, check: bool = True, timeout: float = 120):
        p = subprocess.run([DOCKER, *map(str, args)], input=input, capture_output=True, env=self.env,
                           timeout=timeout, text=not isinstance(input, bytes))
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} exited {p.returncode}:\n"
                                 f"{p.stdout}\n{p.stderr}\n--- daemon log:\n{self.log.read_text()[-3000:]}")
        return p


def berth_cli(root: Path, *args, check: bool = True, timeout: float = 120):
    p = subprocess.run([*berth_argv(root), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"berth {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return out
        out += data


def demux(data: bytes) -> list[tuple[int, bytes]]:
    """stdcopy frames: [stream, 0, 0, 0, size (big-endian uint32)] then the payload."""
    frames = []
    while data:
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        frames.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return frames


def clean_root(root: Path) -> None:
    """Remove every container and user network of the root (their supervisors,
    mounts and kernel state go with them)."""
    ids = berth_cli(root, "ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        berth_cli(root, "rm", "-f", *ids, check=False)
    berth_cli(root, "network", "prune", "-f", check=False)


def require_docker_cli():
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
