"""Requests per second of a small HTTP server in a container, three ways:

- through berth's published port (`-p 127.0.0.1:PORT:80`, kernel DNAT),
- the same container reached directly at its bridge address,
- the same server under Docker's `-p 127.0.0.1:PORT:80` (its defaults:
  docker-proxy for loopback clients, iptables DNAT otherwise).

    python3 bench/network.py [--rounds N] [--requests N] [--concurrency N]

The server is busybox httpd serving a 612-byte page; the client is
ApacheBench (Debian's apache2-utils), on loopback only.  The private
dockerd runs in a network namespace of its own (and ab joins it for Docker's
round), so its bridge and iptables rules never touch the host's; the
kernel's loopback path is the same in every namespace.  Rounds alternate
between the three targets; the table gives medians, written to
bench/results/network.md too.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from lib import berth_cmd, publish, remove_state
from conftest import busybox_rootfs_tar

PAGE = "x" * 600
SERVER = f"mkdir -p /www && printf '%s\\n' {PAGE} > /www/index.html && exec httpd -f -p 80 -h /www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ab(url: str, requests: int, concurrency: int, netns: str | None = None) -> float:
    cmd = ["ab", "-q", "-r", "-n", str(requests), "-c", str(concurrency), url]
    if netns:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    if failed:
        raise RuntimeError(f"{failed} failed requests against {url}")
    return float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))


def wait_http(url: str, netns: str | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ab(url, 1, 1, netns)
            return
        except (subprocess.CalledProcessError, RuntimeError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@contextmanager
def namespaced_dockerd(work: Path):
    """dockerd with its default networking, alone in a new network namespace."""
    tag = f"bench-net-{os.getpid()}"
    data, exec_root, sock = work / "docker-data", Path(f"/run/{tag}"), f"/run/{tag}.sock"
    log = open(work / "dockerd.log", "w")
    proc = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
         "dockerd", "--data-root", str(data), "--exec-root", str(exec_root), "-H", f"unix://{sock}",
         "--pidfile", f"{exec_root}.pid"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=env, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {work / 'dockerd.log'}")
            time.sleep(0.5)
        yield env, f"/proc/{proc.pid}/ns/net"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", str(data)], capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        Path(sock).unlink(missing_ok=True)
        Path(f"{exec_root}.pid").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    if not shutil.which("ab"):
        raise SystemExit("ab (Debian package apache2-utils) is needed")
    work = Path(tempfile.mkdtemp(prefix="bench-network-"))
    berth = berth_cmd(work / "state")
    tar = busybox_rootfs_tar(work / "busybox.tar")
    results: dict[str, list[float]] = {"berth -p (DNAT)": [], "direct to the container": [], "Docker -p": []}
    try:
        subprocess.run([*berth, "import", "-c", 'CMD ["sh"]', str(tar), "bb"], check=True, capture_output=True)
        port = free_port()
        subprocess.run([*berth, "run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "bb", "sh", "-c",
                        SERVER], check=True, capture_output=True)
        address = subprocess.run([*berth, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        published, direct = f"http://127.0.0.1:{port}/index.html", f"http://{address}/index.html"
        with namespaced_dockerd(work) as (denv, docker_netns):
            subprocess.run(["docker", "import", "-c", 'CMD ["sh"]', str(tar), "bb"], env=denv, check=True,
                           capture_output=True)
            dport = free_port()
            subprocess.run(["docker", "run", "-d", "--name", "web", "-p", f"127.0.0.1:{dport}:80", "bb", "sh",
                            "-c", SERVER], env=denv, check=True, capture_output=True)
            docker_url = f"http://127.0.0.1:{dport}/index.html"
            for url, netns in ((published, None), (direct, None), (docker_url, docker_netns)):
                wait_http(url, netns)
                ab(url, args.requests // 4, args.concurrency, netns)  # warm up
            for _ in range(args.rounds):
                results["berth -p (DNAT)"].append(ab(published, args.requests, args.concurrency))
                results["direct to the container"].append(ab(direct, args.requests, args.concurrency))
                results["Docker -p"].append(ab(docker_url, args.requests, args.concurrency, docker_netns))
            subprocess.run(["docker", "rm", "-f", "web"], env=denv, capture_output=True)
    finally:
        subprocess.run([*berth, "rm", "-f", "web"], capture_output=True)
        remove_state(work / "state")
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in results.items()}
    lines = ["### Network", "",
             f"busybox httpd in a container, ApacheBench on loopback: {args.requests} requests at concurrency "
             f"{args.concurrency}, median of {args.rounds} alternating rounds; requests per second "
             "(higher is better).", "",
             "| target | requests/s | berth -p relative to it |", "|---|---|---|"]
    for name, value in medians.items():
        lines.append(f"| {name} | {value:.0f} | {medians['berth -p (DNAT)'] / value:.2f} |")
    lines += ["", "Goal: berth -p at least 0.95 of direct, and at least Docker's -p."]
    print(publish("network", lines))


if __name__ == "__main__":
    main()
