"""The real `berth` CLI, run against one state root (tests import this module
by a name no other folder's conftest shadows)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

from berth.cli.launcher import command as launcher_command
from berth.container.paths import run_dir


def berth_argv(root: Path | None = None) -> list[str]:
    """argv of `berth` as the installed command runs it (the launcher: a warm
    server forks the command, or it runs in-process with BERTH_CLI_SERVER=0)."""
    return [*launcher_command(), *(["--root", str(root)] if root is not None else [])]


def remove_state(root: Path) -> None:
    """Delete a state root and its run directory under /run/berth, unmounting
    first whatever a failure left mounted below either."""
    run = run_dir(root)
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for m in sorted((m for m in mounts if m.startswith((str(root), str(run)))), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(run, ignore_errors=True)


class Berth:
    """Runs the real `berth` CLI against one state root."""

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args, input=None, check=True, timeout=120, env=None, binary=False):
        cmd = [*berth_argv(self.root), *map(str, args)]
        p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                           env={**os.environ, **(env or {})},
                           text=not (binary or isinstance(input, bytes)))
        if check and p.returncode != 0:
            raise AssertionError(f"berth {' '.join(map(str, args))} exited {p.returncode}:\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    """predicate()'s first true value, polled until `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def supervisor_phase(root, container_id) -> str | None:
    """'pump' or 'supervisor': which program the container's supervisor runs."""
    out = subprocess.run(["pgrep", "-af", f"berth.container.supervisor {root} {container_id}"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        return "pump" if "from berth.container.pump import" in line else "supervisor"
    return None
