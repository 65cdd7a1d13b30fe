"""Path resolution confined to a directory tree, as inside a chroot.

Layers are unpacked over content that earlier layers put there, which may
hold symlinks such as `lib -> usr/lib` or `evil -> /`.  Docker copes by
extracting inside a chroot; here every path is walked one component at a
time from a directory fd with O_NOFOLLOW, and symlinks met on the way are
followed by hand, with `/` and `..` stopping at the root.  Nothing is looked
up by absolute path, so no symlink can lead outside.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import OrderedDict
from collections.abc import Callable
from json import dumps as quote  # names in messages, escaped as tarstream.quote does; no tarfile to load

from berth.errors import DataCorrupt

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINKS = 40   # the kernel's limit for one lookup
_CACHE_SIZE = 32


class NotADirectory(DataCorrupt):
    """A path component exists but is neither a directory nor a symlink to one."""


class RootDir:
    """A directory opened by fd, in which paths resolve as under chroot.

    `open_dir` returns a new O_PATH fd for use with the *at() calls; the
    caller closes it.  Resolved directories are cached by path, so callers
    must call `invalidate` after removing or replacing a directory or symlink.
    """

    def __init__(self, path: str | os.PathLike):
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cache: OrderedDict[str, int] = OrderedDict()

    def close(self) -> None:
        self.invalidate()
        os.close(self.fd)

    def __enter__(self) -> RootDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def invalidate(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def open_dir(self, path: str, *, create: bool = False,
                 on_create: Callable[[str], None] | None = None) -> int:
        """An O_PATH fd of directory `path` (clean, relative; "" is the root).

        With `create`, missing directories are made (root-owned, 0755, as
        Docker's MkdirAll does) and reported to `on_create` by their resolved
        path.  Raises FileNotFoundError if a component is missing otherwise,
        and NotADirectory if one is a file.
        """
        if path == "":
            return os.dup(self.fd)
        fd = self._cache.get(path)
        if fd is None:
            fd = self._resolve(path, create, on_create)
            self._cache[path] = fd
            if len(self._cache) > _CACHE_SIZE:
                os.close(self._cache.popitem(last=False)[1])
        else:
            self._cache.move_to_end(path)
        return os.dup(fd)

    def _resolve(self, path: str, create: bool, on_create: Callable[[str], None] | None) -> int:
        fds = [os.dup(self.fd)]
        names: list[str] = []
        pending = path.split("/")
        pending.reverse()
        links = 0
        try:
            while pending:
                comp = pending.pop()
                if comp == "" or comp == ".":
                    continue
                if comp == "..":
                    if len(fds) > 1:
                        os.close(fds.pop())
                        names.pop()
                    continue
                try:
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=fds[-1])
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fds[-1])
                    # mkdir's mode is masked by the umask; Docker's is not.
                    os.chmod(comp, 0o755, dir_fd=fds[-1])
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=fds[-1])
                    if on_create is not None:
                        on_create("/".join([*names, comp]))
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    st = os.stat(comp, dir_fd=fds[-1], follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise NotADirectory(
                            f"invalid layer: {quote('/'.join([*names, comp]))} is not a directory") from None
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise DataCorrupt(f"invalid layer: too many levels of symlinks in {quote(path)}") from None
                    target = os.readlink(comp, dir_fd=fds[-1])
                    if target.startswith("/"):
                        for extra in fds[1:]:
                            os.close(extra)
                        del fds[1:]
                        names.clear()
                    more = target.split("/")
                    more.reverse()
                    pending.extend(more)
                    continue
                fds.append(fd)
                names.append(comp)
            return fds.pop()
        finally:
            for fd in fds:
                os.close(fd)

    def restore_times(self, entries: list[tuple[str, tuple[int, int]]]) -> None:
        """Set (atime, mtime) in ns on each path that still resolves: an
        unpacker's last step for directories, whose times creating their
        entries changed."""
        for path, times in entries:
            try:
                pfd, name = self.split(path)
            except (FileNotFoundError, DataCorrupt):
                continue
            try:
                os.utime(name, ns=times, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            finally:
                os.close(pfd)

    def split(self, path: str, *, create: bool = False,
              on_create: Callable[[str], None] | None = None) -> tuple[int, str]:
        """(fd of the parent directory, final component) of a non-root path."""
        parent, _, name = path.rpartition("/")
        return self.open_dir(parent, create=create, on_create=on_create), name
