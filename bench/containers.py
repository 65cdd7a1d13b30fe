"""Containers, berth against Docker: `run --rm IMAGE true` wall time, and
the memory each idle container costs.

    python3 bench/containers.py [--runs 15] [--idle 10]

Starts a private dockerd (as the tests do; its bridge is off, so both
engines run with `--network none`), imports the same busybox rootfs into
both, then

* times `run --rm --network none IMAGE true`, alternating berth and Docker;
* starts `--idle` containers running `sleep 300` with each engine and reads
  the memory of what each keeps per container: berth's supervisor, Docker
  20.10's containerd-shim-runc-v2 (one per container).  RSS is from
  /proc/PID/status, PSS and Pss_Anon from /proc/PID/smaps_rollup (PSS
  shares each page among the processes mapping it, so it is what one more
  container adds; Pss_Anon is its private heap part).  A bare
  `python3 -I -S` is measured alongside as the floor of any Python
  supervisor.

Prints a markdown report, also written to bench/results/containers.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
# A berth supervisor hands its container to the lean idle loop after
# berth.container.pump.HANDOFF_AFTER seconds; memory is read well after.
SETTLE_SECONDS = 4.0


def memory(pid: int) -> dict[str, int]:
    """RSS, PSS and Pss_Anon of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    out = {"RSS": rss}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Pss", "Pss_Anon"):
                out["PSS" if key == "Pss" else key] = int(value.split()[0])
    return out


def pids_matching(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def mean_memory(pids: list[int]) -> dict[str, float]:
    samples = [memory(pid) for pid in pids]
    return {key: statistics.mean(s[key] for s in samples) for key in ("RSS", "PSS", "Pss_Anon")}


def berth_supervisors(root: Path, ids: list[str]) -> list[int]:
    pids = []
    for cid in ids:
        # Any phase of the exec chain; older supervisors had no label before ROOT.
        found = pids_matching(f"berth[.]container[.](supervisor|pump).* {root} {cid}")
        if len(found) != 1:
            raise RuntimeError(f"expected one supervisor for {cid[:12]}, found {found}")
        pids += found
    return pids


def docker_shims(ids: list[str]) -> list[int]:
    pids = []
    for cid in ids:
        found = pids_matching(f"containerd-shim-runc-v2 .*-id {cid}")
        if len(found) != 1:
            raise RuntimeError(f"expected one containerd-shim for {cid[:12]}, found {found}")
        pids += found
    return pids


def bare_interpreter() -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(1.0)
        return memory(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def run(cmd: list[str], env=None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--idle", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-containers-"))
    root = work / "state"
    berth = berth_cmd(root)
    rootfs = busybox_rootfs_tar(work / "busybox.tar")
    run_rm = Comparison("run --rm IMAGE true")
    berth_ids: list[str] = []
    # An installed berth has its bytecode compiled; this checkout's is written by the warm-up runs.
    benv = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    try:
        with running_dockerd() as docker:      # stopping it removes Docker's containers
            denv = docker.env
            run([*berth, "import", str(rootfs), IMAGE], env=benv)
            run(["docker", "import", str(rootfs), IMAGE], env=denv)
            b_run = [*berth, "run", "--rm", "--network", "none", IMAGE, "true"]
            d_run = ["docker", "run", "--rm", "--network", "none", IMAGE, "true"]
            for _ in range(2):      # warm caches: page cache, pyc files, overlay lowers
                timed(b_run, env=benv)
                timed(d_run, env=denv)
            for _ in range(args.runs):
                run_rm.berth.append(timed(b_run, env=benv))
                run_rm.docker.append(timed(d_run, env=denv))

            docker_ids = []
            for _ in range(args.idle):
                berth_ids.append(run([*berth, "run", "-d", "--network", "none", IMAGE, "sleep", "300"],
                                     env=benv))
                docker_ids.append(run(["docker", "run", "-d", "--network", "none", IMAGE, "sleep", "300"],
                                      env=denv))
            time.sleep(SETTLE_SECONDS)
            supervisors = mean_memory(berth_supervisors(root, berth_ids))
            shims = mean_memory(docker_shims(docker_ids))
            bare = bare_interpreter()
            version = run(["docker", "version", "-f", "{{.Server.Version}}"], env=denv)
    finally:
        if root.exists():
            leftovers = subprocess.run([*berth, "ps", "-aq"], capture_output=True, text=True).stdout.split()
            if leftovers:
                subprocess.run([*berth, "rm", "-f", *leftovers], capture_output=True)
        remove_state(root)
        shutil.rmtree(work, ignore_errors=True)

    def row(name: str, m: dict) -> str:
        return f"| {name} | {m['RSS'] / 1024:.1f} | {m['PSS'] / 1024:.1f} | {m['Pss_Anon'] / 1024:.1f} |"

    med_b, med_d = statistics.median(run_rm.berth), statistics.median(run_rm.docker)
    notes = "\n".join([
        f"Both engines with `--network none` (the private dockerd runs without its bridge). "
        f"Docker {version}; berth with its built-in runtime; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end. "
        f"berth's median is {med_b / med_d:.0%} of Docker's (goal: at most 50%).",
        "",
        "### Memory per idle container",
        "",
        f"Mean over {args.idle} containers running `sleep 300`, MiB, read {SETTLE_SECONDS:.0f} s after "
        "the last started.",
        "",
        "| process | RSS | PSS | Pss_Anon |",
        "|---|---|---|---|",
        row("berth supervisor (idle loop)", supervisors),
        row("Docker containerd-shim-runc-v2", shims),
        row("bare `python3 -I -S` (floor)", bare),
    ])
    print(report("Containers", [run_rm], notes))


if __name__ == "__main__":
    main()
