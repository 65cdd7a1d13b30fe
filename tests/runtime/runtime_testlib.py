"""Helpers for the runtime tests: a harness that runs containers from the
busybox rootfs through any OCIRuntime and proves they leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from berth.errors import BerthError, NotFound
from berth.runtime.interface import Stdio
from berth.runtime.oci import OCIRuntime
from berth.runtime.spec import (DEFAULT_PATH_ENV, HostInfo, ProcessOptions, SandboxOptions,
                                default_spec)

HOST = HostInfo.probe()
CGROUP_PARENT = f"/berth-test-{os.getpid()}"


def _cgroup_mounts() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                points.append(left.split()[4])
    return points


def cgroup_dirs(path: str) -> list[str]:
    """Existing directories for cgroup `path` in any hierarchy."""
    return [p for p in (m + path for m in _cgroup_mounts()) if os.path.isdir(p)]


def mounts_under(path: Path) -> list[str]:
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    prefix = str(path)
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def crun_unusable() -> str | None:
    """Why crun cannot run here, or None."""
    import shutil

    if shutil.which("crun") is None:
        return "crun is not installed"
    if subprocess.run(["crun", "--version"], capture_output=True).returncode != 0:
        return "crun does not run"
    if not HOST.cgroup2:
        with open("/proc/self/mountinfo") as f:
            unified = [line.split()[4] for line in f if " - cgroup2 " in line]
        for mount in unified:
            if Path(mount, "cgroup.controllers").read_text().split():
                return ("crun refuses hybrid cgroups with controllers in the unified "
                        "hierarchy ('cgroups in hybrid mode not supported')")
    return None


class Result:
    def __init__(self, exit_code: int, output: str):
        self.exit_code = exit_code
        self.output = output

    def __repr__(self) -> str:
        return f"Result(exit_code={self.exit_code}, output={self.output!r})"


class Harness:
    """Builds bundles from the busybox rootfs and runs containers in them."""

    def __init__(self, runtime: OCIRuntime, tmp_path: Path, busybox_tar: Path):
        self.runtime = runtime
        self.tmp_path = tmp_path
        self.bundle = tmp_path / "bundle"
        self.rootfs = self.bundle / "rootfs"
        self.rootfs.mkdir(parents=True)
        with tarfile.open(busybox_tar) as tf:
            tf.extractall(self.rootfs)
        (self.rootfs / "mnt").mkdir(exist_ok=True)
        self.ids: list[str] = []
        self.cgroups: list[str] = []
        self.pids: list[int] = []

    def spec(self, args, *, process: dict | None = None, sandbox: dict | None = None) -> dict:
        cid = uuid.uuid4().hex[:12]
        cgroup = f"{CGROUP_PARENT}/{cid}"
        self.cgroups.append(cgroup)
        popts = ProcessOptions(args=list(args), env=[f"PATH={DEFAULT_PATH_ENV}"])
        if process:
            popts = replace(popts, **process)
        sopts = SandboxOptions(rootfs="rootfs", hostname="berthbox", cgroups_path=cgroup)
        if sandbox:
            sopts = replace(sopts, **sandbox)
        return default_spec(popts, sopts, HOST)

    def write(self, spec: dict) -> None:
        (self.bundle / "config.json").write_text(json.dumps(spec))

    def create(self, spec: dict, *, stdio: Stdio | None = None, console_socket: str | None = None,
               start: bool = False) -> tuple[str, int]:
        self.write(spec)
        cid = spec["linux"]["cgroupsPath"].rsplit("/", 1)[1]
        self.ids.append(cid)
        call = self.runtime.run if start else self.runtime.create
        pid = call(cid, self.bundle, stdio=stdio, console_socket=console_socket)
        self.pids.append(pid)
        return cid, pid

    def wait(self, pid: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped == pid:
                return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) \
                    else 128 + os.WTERMSIG(status)
            if time.monotonic() > deadline:
                raise TimeoutError(f"container init {pid} still running after {timeout}s")
            time.sleep(0.005)

    def run(self, args, *, timeout: float = 30.0, **spec_args) -> Result:
        """Run to completion; stdout and stderr together."""
        spec = spec_args.pop("spec", None) or self.spec(args, **spec_args)
        r, w = os.pipe()
        chunks: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(r, chunks), daemon=True)
        reader.start()
        try:
            cid, pid = self.create(spec, stdio=Stdio(stdout=w, stderr=w), start=True)
        finally:
            os.close(w)
        try:
            code = self.wait(pid, timeout)
        finally:
            self.runtime.delete(cid, force=True)
            reader.join(timeout)
        return Result(code, b"".join(chunks).decode(errors="replace"))

    def cleanup(self) -> list[str]:
        """Delete everything; return what leaked."""
        for cid in self.ids:
            try:
                self.runtime.delete(cid, force=True)
            except NotFound:
                pass
            except BerthError:
                pass
        problems = []
        alive = set(self.pids)
        deadline = time.monotonic() + 10
        while alive:
            reap_all()  # we are the subreaper: orphans of exec'd processes come to us too
            alive = {pid for pid in alive if _running(pid)}
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        for pid in alive:
            problems.append(f"process {pid} survived")
            os.kill(pid, signal.SIGKILL)
        leaked_mounts = mounts_under(self.tmp_path)
        if leaked_mounts:
            problems.append(f"mounts left: {leaked_mounts}")
            for m in sorted(leaked_mounts, reverse=True):
                subprocess.run(["umount", "-l", m], check=False)
        for cg in self.cgroups:
            dirs = cgroup_dirs(cg)
            if dirs:
                problems.append(f"cgroups left: {dirs}")
                for d in dirs:
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass
        return problems


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _drain(fd: int, chunks: list[bytes]) -> None:
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            chunks.append(data)
    finally:
        os.close(fd)
