"""Reading and preparing files inside a container's root filesystem.

Paths are resolved as inside the container (berth.layer.rootfs.RootDir), so
an image whose /etc/passwd is a symlink to /etc/shadow reads the container's
file of that name, never the host's.
"""

from __future__ import annotations

import os
import posixpath

from berth.layer.rootfs import RootDir

MAX_LINKS = 40


def read_file(rootfs, path: str, limit: int = 1 << 20) -> bytes | None:
    """The content of `path` inside `rootfs`, or None when it is missing."""
    path = posixpath.normpath("/" + path).lstrip("/")
    with RootDir(rootfs) as root:
        for _ in range(MAX_LINKS):
            try:
                dfd, name = root.split(path)
            except (FileNotFoundError, NotADirectoryError, OSError):
                return None
            try:
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                except OSError as e:
                    if e.errno != 40:  # ELOOP: the last component is a symlink
                        return None
                    target = os.readlink(name, dir_fd=dfd)
                    base = posixpath.dirname(path)
                    path = posixpath.normpath(posixpath.join("/" + base, target)).lstrip("/")
                    continue
            finally:
                os.close(dfd)
            with os.fdopen(fd, "rb") as f:
                return f.read(limit)
    return None


def make_dirs(rootfs, path: str) -> None:
    """mkdir -p inside the container (Docker creates a missing WORKDIR)."""
    path = posixpath.normpath("/" + path).lstrip("/")
    if not path:
        return
    with RootDir(rootfs) as root:
        os.close(root.open_dir(path, create=True))
