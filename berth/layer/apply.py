"""Unpacking a layer tar into a directory, with Docker's semantics.

Two ways to lay a layer down:

- "delete": onto the content of the layers below it, in one directory (a
  flattened rootfs, or a copy that `docker diff`/`commit` results are
  checked against).  `.wh.NAME` deletes NAME; `.wh..wh..opq` empties its
  directory of what was there before this layer.
- "overlay": into a directory of its own, to serve as an overlayfs lower
  dir.  Whiteouts become what overlayfs understands: a 0/0 character device
  named NAME, and the xattr trusted.overlay.opaque=y on opaque directories.

Every member is admitted by the same MemberChecker as at ingestion, and every
path is resolved under the target as under chroot (see rootfs), so a hostile
archive is refused with DataCorrupt before anything is written outside the
target.  On error the target is left as it is: callers unpack into a
temporary directory and discard it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from typing import Literal

from berth.errors import BerthError, DataCorrupt
from berth.layer.rootfs import RootDir
from berth.layer.safety import Kind, Member, MemberChecker
from berth.layer.stream import Readable, open_layer_stream
from berth.layer.tarstream import TarStream, member_times, quote

log = logging.getLogger(__name__)

WhiteoutMode = Literal["delete", "overlay"]

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PREFIX = "SCHILY.xattr."
# overlayfs's own bookkeeping: honouring it from a tar would let a layer
# redirect lookups into other layers.
_PRIVATE_XATTR_PREFIX = "trusted.overlay."

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FD = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def apply_layer(fileobj: Readable, target_dir: str | os.PathLike, *,
                whiteout_mode: WhiteoutMode = "delete") -> int:
    """Unpack one layer tar (plain or compressed) into `target_dir`.

    Returns the size of the regular files' content it held.  Raises
    DataCorrupt for a hostile, truncated or malformed archive.
    """
    if whiteout_mode not in ("delete", "overlay"):
        raise ValueError(f"unknown whiteout mode {whiteout_mode!r}")
    reader, _ = open_layer_stream(fileobj)
    tar = TarStream(reader)
    checker = MemberChecker()
    with RootDir(target_dir) as root:
        applier = _Applier(root, tar, overlay=whiteout_mode == "overlay")
        for ti in tar:
            member = checker.admit(ti)
            try:
                applier.apply(member)
            except OSError as e:
                raise BerthError(f"failed to unpack layer member {quote(ti.name)}: "
                                 f"{e.strerror or e}") from e
        applier.finish()
    return applier.size


def _xattrs(ti: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for key, value in ti.pax_headers.items():
        if key.startswith(_XATTR_PREFIX):
            name = key[len(_XATTR_PREFIX):]
            if not name.startswith(_PRIVATE_XATTR_PREFIX):
                out.append((name, value.encode("utf-8", "surrogateescape")))
    return out


class _Applier:
    def __init__(self, root: RootDir, tar: TarStream, *, overlay: bool):
        self.root = root
        self.tar = tar
        self.overlay = overlay
        self.size = 0
        # Paths this layer put in place, which an opaque marker must spare.
        self.created: set[str] = set()
        self.dir_times: list[tuple[str, tuple[int, int]]] = []

    # -- dispatch ---------------------------------------------------------

    def apply(self, m: Member) -> None:
        if m.kind is Kind.ROOT or m.kind is Kind.IGNORED:
            return
        if m.kind is Kind.WHITEOUT:
            self._whiteout(m)
        elif m.kind is Kind.OPAQUE:
            self._opaque(m)
        else:
            self._create(m)

    def finish(self) -> None:
        # Directory times last: creating their entries changed them.
        self.root.restore_times(self.dir_times)

    def _note_created(self, path: str) -> None:
        if not self.overlay:
            self.created.add(path)

    # -- removal ----------------------------------------------------------

    def _remove(self, pfd: int, name: str, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self.root.invalidate()

    def _whiteout(self, m: Member) -> None:
        if self.overlay:
            pfd, name = self.root.split(m.path, create=True)
            try:
                st = _lstat(pfd, name)
                if st is not None:
                    self._remove(pfd, name, st)
                os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
                os.chown(name, m.info.uid, m.info.gid, dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(pfd)
            return
        try:
            pfd, name = self.root.split(m.path)
        except (FileNotFoundError, DataCorrupt):
            return  # nothing below to delete
        try:
            st = _lstat(pfd, name)
            if st is not None:
                self._remove(pfd, name, st)
        finally:
            os.close(pfd)

    def _opaque(self, m: Member) -> None:
        if self.overlay:
            dfd = self.root.open_dir(m.path, create=True)
            try:
                os.setxattr(f"/proc/self/fd/{dfd}", OVERLAY_OPAQUE_XATTR, b"y")
            finally:
                os.close(dfd)
            return
        try:
            dfd = self.root.open_dir(m.path)
        except (FileNotFoundError, DataCorrupt):
            return
        try:
            self._purge(dfd, m.path)
        finally:
            os.close(dfd)

    def _purge(self, dfd: int, path: str) -> None:
        """Remove what under `path` this layer did not create."""
        prefix = f"{path}/" if path else ""
        for name in os.listdir(f"/proc/self/fd/{dfd}"):
            child = prefix + name
            st = _lstat(dfd, name)
            if st is None:
                continue
            if child not in self.created:
                self._remove(dfd, name, st)
            elif stat.S_ISDIR(st.st_mode):
                cfd = os.open(name, _DIR_FD, dir_fd=dfd)
                try:
                    self._purge(cfd, child)
                finally:
                    os.close(cfd)

    # -- creation ---------------------------------------------------------

    def _create(self, m: Member) -> None:
        pfd, name = self.root.split(m.path, create=True, on_create=self._note_created)
        try:
            st = _lstat(pfd, name)
            merge = st is not None and stat.S_ISDIR(st.st_mode) and m.kind is Kind.DIR
            if st is not None and not merge:
                self._remove(pfd, name, st)
            if m.kind is Kind.DIR:
                self._dir(pfd, name, m, exists=merge)
            elif m.kind is Kind.FILE:
                self._file(pfd, name, m)
            elif m.kind is Kind.SYMLINK:
                self._symlink(pfd, name, m)
            elif m.kind is Kind.HARDLINK:
                self._hardlink(pfd, name, m)
            else:
                self._special(pfd, name, m)
        finally:
            os.close(pfd)
        self._note_created(m.path)

    def _dir(self, pfd: int, name: str, m: Member, *, exists: bool) -> None:
        if not exists:
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FD, dir_fd=pfd)
        try:
            self._set_attrs(fd, m.info)
        finally:
            os.close(fd)
        self.dir_times.append((m.path, member_times(m.info)))

    def _file(self, pfd: int, name: str, m: Member) -> None:
        ti = m.info
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=pfd)
        try:
            end = 0
            for offset, data in self.tar.read_file(ti):
                if offset != end:
                    os.lseek(fd, offset, os.SEEK_SET)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                end = offset + len(data)
            if end != ti.size:
                os.ftruncate(fd, ti.size)  # a sparse file's trailing hole
            self._set_attrs(fd, ti)
            os.utime(fd, ns=member_times(ti))
        finally:
            os.close(fd)
        self.size += ti.size

    def _set_attrs(self, fd: int, ti: tarfile.TarInfo) -> None:
        # chown clears set-id bits and file capabilities, so it goes first.
        os.fchown(fd, ti.uid, ti.gid)
        os.fchmod(fd, ti.mode & 0o7777)
        for key, value in _xattrs(ti):
            _setxattr(lambda: os.setxattr(fd, key, value), ti.name, key)

    def _symlink(self, pfd: int, name: str, m: Member) -> None:
        os.symlink(m.link, name, dir_fd=pfd)
        self._set_path_attrs(pfd, name, m.info, chmod=False)

    def _hardlink(self, pfd: int, name: str, m: Member) -> None:
        try:
            tfd, tname = self.root.split(m.link)
        except (FileNotFoundError, DataCorrupt):
            raise self._bad_link(m, "does not exist") from None
        try:
            # Without AT_SYMLINK_FOLLOW a link to a symlink links the symlink
            # itself, never what it points to.
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise self._bad_link(m, "does not exist") from None
        except (PermissionError, IsADirectoryError):
            raise self._bad_link(m, "is a directory") from None
        finally:
            os.close(tfd)

    @staticmethod
    def _bad_link(m: Member, why: str) -> DataCorrupt:
        return DataCorrupt(f"invalid layer: member {quote(m.info.name)} is a hard link to "
                           f"{quote(m.info.linkname)}, which {why}")

    def _special(self, pfd: int, name: str, m: Member) -> None:
        ti = m.info
        if m.kind is Kind.FIFO:
            os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if m.kind is Kind.CHAR else stat.S_IFBLK
            try:
                os.mknod(name, kind | 0o600, os.makedev(ti.devmajor, ti.devminor), dir_fd=pfd)
            except PermissionError:
                # As Docker in a user namespace: devices cannot be made there.
                log.debug("skipping device node %s: not permitted", ti.name)
                return
        self._set_path_attrs(pfd, name, ti, chmod=True)

    def _set_path_attrs(self, pfd: int, name: str, ti: tarfile.TarInfo, *, chmod: bool) -> None:
        """Attributes of an entry that cannot be opened (symlink, device, fifo)."""
        os.chown(name, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False)
        if chmod:
            # Following is safe: this call just made the entry, not a symlink.
            os.chmod(name, ti.mode & 0o7777, dir_fd=pfd)
        path = f"/proc/self/fd/{pfd}/{name}"
        for key, value in _xattrs(ti):
            _setxattr(lambda: os.setxattr(path, key, value, follow_symlinks=False), ti.name, key)
        os.utime(name, ns=member_times(ti), dir_fd=pfd, follow_symlinks=False)


def _lstat(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _setxattr(call: Callable[[], None], member: str, key: str) -> None:
    try:
        call()
    except OSError as e:
        # As Docker: a filesystem without xattrs (or without this namespace
        # of them, like user.* on a symlink) costs the attribute, not the layer.
        if e.errno not in (errno.ENOTSUP, errno.EPERM):
            raise
        log.warning("ignored xattr %s on %s: %s", key, member, e.strerror)
