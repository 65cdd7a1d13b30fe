"""Mounting a container's root filesystem (the snapshot's overlay)."""

from __future__ import annotations

import os

from berth.errors import Unavailable
from berth.layer.snapshots import Mount
from berth.runtime.builtin.linux import mount

# mount(2) takes at most one page of options.
MAX_MOUNT_DATA = 4000


def mount_rootfs(m: Mount, target) -> None:
    target = os.fspath(target)
    os.makedirs(target, exist_ok=True)
    data = m.data()
    absolute = ",".join(_absolute(opt, m.cwd) for opt in m.options)
    try:
        if len(absolute) <= MAX_MOUNT_DATA or not m.cwd:
            mount(m.source, target, m.type, 0, absolute)
        else:
            _mount_from(m.cwd, m.source, target, m.type, data)
    except OSError as e:
        raise Unavailable(f"failed to mount the container's root filesystem ({m.type}): "
                          f"{e.strerror or e}") from None


def _absolute(option: str, cwd: str | None) -> str:
    if cwd and option.startswith("lowerdir="):
        return "lowerdir=" + ":".join(os.path.join(cwd, p) for p in option[9:].split(":"))
    return option


def _mount_from(cwd: str, source: str, target: str, fstype: str, data: str) -> None:
    """Mount with relative lowerdirs from `cwd`, in a child so this process's cwd stays put."""
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            mount(source, target, fstype, 0, data)
            os._exit(0)
        except OSError as e:
            os._exit(e.errno or 1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, os.strerror(code))
