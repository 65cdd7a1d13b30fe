"""The docker CLI against `berth daemon` and against dockerd: `docker run --rm
IMAGE true` wall time, in one run.

    python3 bench/daemon.py [--runs 15]

Starts a private dockerd (as the tests do; its bridge is off, so both runs
use `--network none`) and a `berth daemon` on a socket of its own with a
fresh state root, imports the same busybox rootfs into both, then times
the same docker CLI command against each socket, alternating.  The CLI's
run is create, attach, wait, start, then the wait's answer: five requests
and a hijacked stream, so this measures the daemon's path end to end.

Prints a markdown report, also written to bench/results/daemon.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lib import Comparison, berth_cmd, remove_state, report, timed
from conftest import busybox_rootfs_tar
from dockerd import running_dockerd

IMAGE = "bench/busybox:1"


def start_berth_daemon(root: Path, socket_path: Path, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen([*berth_cmd(root), "daemon", "-H", f"unix://{socket_path}"], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    client_env = {**env, "DOCKER_HOST": f"unix://{socket_path}"}
    deadline = time.monotonic() + 30
    while subprocess.run(["docker", "version"], capture_output=True, env=client_env).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"berth daemon did not start: {log.read_text()}")
        time.sleep(0.1)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    root = work / "state"
    config = work / "docker-config"
    config.mkdir()
    rootfs = busybox_rootfs_tar(work / "busybox.tar")
    run_rm = Comparison("docker run --rm IMAGE true")
    # An installed berth has its bytecode compiled; this checkout's is written by the warm-up runs.
    benv = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    daemon = None
    try:
        subprocess.run([*berth_cmd(root), "import", str(rootfs), IMAGE], check=True, capture_output=True, env=benv)
        daemon = start_berth_daemon(root, work / "berth.sock", work / "daemon.log", benv)
        berth_env = {**os.environ, "DOCKER_HOST": f"unix://{work / 'berth.sock'}", "DOCKER_CONFIG": str(config)}
        with running_dockerd() as docker:
            docker_env = {**docker.env, "DOCKER_CONFIG": str(config)}
            subprocess.run(["docker", "import", str(rootfs), IMAGE], check=True, capture_output=True,
                           env=docker_env)
            cmd = ["docker", "run", "--rm", "--network", "none", IMAGE, "true"]
            for _ in range(2):      # warm caches: page cache, overlay lowers, the daemons' own
                timed(cmd, env=berth_env)
                timed(cmd, env=docker_env)
            for _ in range(args.runs):
                run_rm.berth.append(timed(cmd, env=berth_env))
                run_rm.docker.append(timed(cmd, env=docker_env))
            version = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True,
                                     text=True, env=docker_env).stdout.strip()
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        leftovers = subprocess.run([*berth_cmd(root), "ps", "-aq"], capture_output=True, text=True).stdout.split()
        if leftovers:
            subprocess.run([*berth_cmd(root), "rm", "-f", *leftovers], capture_output=True)
        remove_state(root)
        shutil.rmtree(work, ignore_errors=True)

    med_b, med_d = statistics.median(run_rm.berth), statistics.median(run_rm.docker)
    client = subprocess.run(["docker", "version", "-f", "{{.Client.Version}}"], capture_output=True,
                            text=True).stdout.strip()
    notes = (f"The docker CLI {client} against each daemon's socket, `--network none` for both (the private "
             f"dockerd runs without its bridge). Docker {version} with containerd and runc; berth with its "
             f"built-in runtime; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end. "
             f"berth's median is {med_b / med_d:.0%} of dockerd's (goal: at most 50%).")
    print(report("Daemon", [run_rm], notes))


if __name__ == "__main__":
    sys.exit(main())
