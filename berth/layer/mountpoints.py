"""Mount points in a container's upper directory, told apart from its changes.

A runtime creates what a root filesystem lacks where it mounts: /proc,
/sys, /dev, and the files it binds over /etc/hosts, /etc/hostname and
/etc/resolv.conf.  On an overlay those land in the container's upper
directory, so they would show in `diff`, `commit` and a build step's layer;
Docker keeps them in an "init" layer that neither sees.  `mount_stubs`
finds them (reading only: a running container's mounts sit on them), and
`scrub_mount_points` removes them from an upper directory no one uses.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

# What the runtime creates in a root filesystem that lacks it; Docker's
# init layer holds the same paths.
INIT_PATHS = ("proc", "sys", "dev", "etc/hosts", "etc/hostname", "etc/resolv.conf")
_OPAQUE = "trusted.overlay.opaque"


def mount_stubs(upper: Path, lowers: list[Path], targets: Iterable[str]) -> set[str]:
    """What in `upper` only mounting at `targets` (relative paths) created.

    `lowers` are the image's unpacked layers, bottom first.  A target counts
    when it is an empty file or directory; then each parent directory left
    with nothing else, that either is new or was only copied up (same owner
    and mode as below), counts too.
    """
    stubs: set[str] = set()

    def empty_but_stubs(rel: str) -> bool:
        with os.scandir(upper / rel) as it:
            return all(f"{rel}/{e.name}" in stubs for e in it)

    def only_copied_up(rel: str, st: os.stat_result) -> bool:
        below = _lower_stat(lowers, rel)
        return below is None or _same_dir(st, below)

    for target in targets:
        try:
            st = os.lstat(upper / target)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not (stat.S_ISREG(st.st_mode) and st.st_size == 0
                or stat.S_ISDIR(st.st_mode) and empty_but_stubs(target)
                and not _is_opaque(upper / target) and only_copied_up(target, st)):
            continue
        stubs.add(target)
        parts = target.split("/")[:-1]
        while parts:
            rel = "/".join(parts)
            try:
                st = os.lstat(upper / rel)
            except FileNotFoundError:
                break
            if not stat.S_ISDIR(st.st_mode) or not empty_but_stubs(rel) or _is_opaque(upper / rel) \
                    or not only_copied_up(rel, st):
                break
            stubs.add(rel)
            parts.pop()
    return stubs


def scrub_mount_points(upper: Path, lowers: list[Path], targets: Iterable[str]) -> None:
    """Remove from `upper` what only mounting at `targets` created (see mount_stubs)."""
    for rel in sorted(mount_stubs(upper, lowers, targets), key=lambda r: r.count("/"), reverse=True):
        path = upper / rel
        if stat.S_ISDIR(os.lstat(path).st_mode):
            path.rmdir()
        else:
            path.unlink()


def _lower_stat(lowers: list[Path], rel: str) -> os.stat_result | None:
    """What the image below an upper directory has at `rel` (None: nothing)."""
    parts = rel.split("/")
    for lower in reversed(lowers):
        hidden_below = False
        for i in range(1, len(parts)):
            ancestor = lower / "/".join(parts[:i])
            try:
                st = os.lstat(ancestor)
            except FileNotFoundError:
                break
            if _is_whiteout(st):
                return None
            hidden_below = hidden_below or (stat.S_ISDIR(st.st_mode) and _is_opaque(ancestor))
        try:
            st = os.lstat(lower / rel)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None:
            return None if _is_whiteout(st) else st
        if hidden_below:
            return None
    return None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (stat.S_ISDIR(b.st_mode) and stat.S_IMODE(a.st_mode) == stat.S_IMODE(b.st_mode)
            and a.st_uid == b.st_uid and a.st_gid == b.st_gid)
