"""The tutorial's application under load: requests per second and p99
latency through berth's published port, against the same image under
Docker, in one run.

    python3 bench/tutorial.py [--rounds N] [--requests N] [--concurrency N] [--root DIR]

The image is the tutorial's (examples/tutorial, built by berth from a base
image made by `berth mkimage`), in a fresh state root of the bench's own, or
in --root's (e.g. /var/lib/berth after scripts/main.sh, where the build is
a cache hit instead of minutes of apt and pip); Docker
gets the very same image through `berth save | docker load`.  Each runs it
as `run -d -p 127.0.0.1:PORT:80 my_application_img`.  The client is
ApacheBench on loopback only, a fixed number of requests per round (a new
connection each, as browsers without keep-alive), with a time limit; the
private dockerd runs in a network namespace of its own (and ab joins it for
Docker's rounds), so its bridge and iptables never touch the host's.
Rounds alternate between the two; the table gives medians, written to
bench/results/tutorial.md too.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lib import REPO, berth_cmd, publish, remove_state
from network import free_port, namespaced_dockerd

IMAGE = "my_application_img"
# Bounds: ab stops a round after this long whatever --requests says.
ROUND_SECONDS = 60


@dataclass
class Target:
    name: str
    url: str
    netns: str | None = None
    rps: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def ab(target: Target, requests: int, concurrency: int, work: Path) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) of one ApacheBench round."""
    percentiles = work / "ab.csv"
    cmd = ["ab", "-q", "-r", "-n", str(requests), "-c", str(concurrency), "-t", str(ROUND_SECONDS),
           "-e", str(percentiles), target.url]
    if target.netns:
        cmd = ["nsenter", f"--net={target.netns}", *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=ROUND_SECONDS + 30).stdout
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    if failed:
        raise RuntimeError(f"{failed} failed requests against {target.name}")
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    with open(percentiles) as f:
        p99 = next(float(row[1]) for row in csv.reader(f) if row[0] == "99")
    return rps, p99


def wait_hello(target: Target) -> None:
    url = target.url
    cmd = ["curl", "-fsS", "-m", "2", url]
    if target.netns:
        cmd = ["nsenter", f"--net={target.netns}", *cmd]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        p = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if p.stdout == "Hello World!":
            return
        time.sleep(0.3)
    raise RuntimeError(f"{target.name}: {url} did not answer Hello World!")


def build_image(berth: list[str]) -> None:
    subprocess.run([*berth, "mkimage", "-q", "debian:bookworm"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*berth, "build", "-q", "--host-ca", "-t", IMAGE, "."], cwd=REPO / "examples" / "tutorial",
                   check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--root", type=Path, help="berth state root to build in and keep (default: a fresh one)")
    args = ap.parse_args()
    if not shutil.which("ab"):
        raise SystemExit("ab (Debian package apache2-utils) is needed")
    work = Path(tempfile.mkdtemp(prefix="bench-tutorial-"))
    berth = berth_cmd(args.root or work / "state")
    name = f"bench-tutorial-{os.getpid()}"
    targets = []
    try:
        started = time.monotonic()
        build_image(berth)
        print(f"built the tutorial's image with berth in {time.monotonic() - started:.0f} s", flush=True)
        port = free_port()
        subprocess.run([*berth, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", IMAGE],
                       check=True, capture_output=True)
        targets.append(Target("berth run -p", f"http://127.0.0.1:{port}/"))
        with namespaced_dockerd(work) as (denv, docker_netns):
            started = time.monotonic()
            save = subprocess.Popen([*berth, "save", IMAGE], stdout=subprocess.PIPE)
            subprocess.run(["docker", "load"], stdin=save.stdout, env=denv, check=True, capture_output=True)
            save.stdout.close()
            if save.wait() != 0:
                raise RuntimeError("berth save failed")
            print(f"loaded the same image into Docker in {time.monotonic() - started:.0f} s", flush=True)
            dport = free_port()
            subprocess.run(["docker", "run", "-d", "--name", "app", "-p", f"127.0.0.1:{dport}:80", IMAGE],
                           env=denv, check=True, capture_output=True)
            targets.append(Target("docker run -p", f"http://127.0.0.1:{dport}/", docker_netns))
            for t in targets:
                wait_hello(t)
                ab(t, max(200, args.requests // 5), args.concurrency, work)  # warm up
            for i in range(args.rounds):
                for t in targets:
                    rps, p99 = ab(t, args.requests, args.concurrency, work)
                    t.rps.append(rps)
                    t.p99_ms.append(p99)
                    print(f"round {i + 1}: {t.name}: {rps:.0f} requests/s, p99 {p99:.1f} ms", flush=True)
            subprocess.run(["docker", "rm", "-f", "app"], env=denv, capture_output=True, check=False)
    finally:
        subprocess.run([*berth, "rm", "-f", name], capture_output=True, check=False)
        if not args.root:
            subprocess.run([*berth, "network", "prune", "-f"], capture_output=True, check=False)
            remove_state(work / "state")
        shutil.rmtree(work, ignore_errors=True)
    b, d = targets
    rps = {t.name: statistics.median(t.rps) for t in targets}
    p99 = {t.name: statistics.median(t.p99_ms) for t in targets}
    lines = ["### Tutorial app", "",
             (f"The tutorial's Flask app under CherryPy (30 threads) in `{IMAGE}`, ApacheBench on "
              f"loopback: {args.requests} requests at concurrency {args.concurrency}, a new connection "
              f"each, median of {args.rounds} alternating rounds."), "",
             "| target | requests/s | p99 latency (ms) |", "|---|---|---|"]
    lines += [f"| {t.name} | {rps[t.name]:.0f} | {p99[t.name]:.1f} |" for t in targets]
    lines += ["", (f"berth / Docker: {rps[b.name] / rps[d.name]:.2f}x the requests per second, "
                   f"{p99[b.name] / p99[d.name]:.2f}x the p99 latency.  Docker reaches a loopback-published "
                   "port through docker-proxy (userland); berth through kernel DNAT.")]
    print(publish("tutorial", lines))


if __name__ == "__main__":
    main()
