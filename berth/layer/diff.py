"""Layer tars and change lists from an overlayfs upper directory.

The upper directory of a container holds exactly what the container changed:
new and modified entries as themselves, deletions as overlay whiteouts (0/0
character devices) and replaced directories as opaque ones (xattr
trusted.overlay.opaque=y).  `diff_tar` turns that into a layer tar in the
image format (`.wh.NAME`, `.wh..wh..opq`) for `docker commit`; `changes`
lists it as `docker diff` does.

The upper directory may belong to a running container, so it is walked by
directory fd with O_NOFOLLOW: a symlink swapped in mid-walk is archived as a
symlink, never followed.
"""

from __future__ import annotations

import enum
import io
import os
import stat
import tarfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from berth.errors import Unavailable
from berth.layer.safety import OPAQUE_MARKER, WHITEOUT_PREFIX

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# Entries whose content lives in a lower layer; naive diffing cannot export them.
_UNSUPPORTED_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")
# overlayfs's own bookkeeping, and labels that belong to the host's policy.
_PRIVATE_XATTRS = ("trusted.overlay.", "security.selinux")

_DIR_FD = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in for a file must not hang the export.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_COPY_BUFSIZE = 1 << 20


class ChangeKind(enum.IntEnum):
    """The Engine API's numbering."""

    MODIFIED = 0
    ADDED = 1
    DELETED = 2

    @property
    def symbol(self) -> str:
        return "CAD"[self]


@dataclass(frozen=True, slots=True)
class Change:
    path: str            # absolute inside the container, e.g. "/etc/passwd"
    kind: ChangeKind


@dataclass(frozen=True, slots=True)
class _Entry:
    rel: str             # "a/b/c"
    st: os.stat_result
    dfd: int             # O_RDONLY fd of the parent directory
    name: str

    @property
    def proc_path(self) -> str:
        return f"/proc/self/fd/{self.dfd}/{self.name}"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _walk(dfd: int, prefix: str = "") -> Iterator[_Entry]:
    """Entries below `dfd` depth-first, names in byte order, a directory
    before its content."""
    names = sorted(os.listdir(dfd), key=os.fsencode)
    for name in names:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        entry = _Entry(prefix + name, st, dfd, name)
        yield entry
        if stat.S_ISDIR(st.st_mode):
            try:
                cfd = os.open(name, _DIR_FD, dir_fd=dfd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                yield from _walk(cfd, entry.rel + "/")
            finally:
                os.close(cfd)


def _xattrs(entry: _Entry) -> dict[str, bytes]:
    path = entry.proc_path
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for key in sorted(keys):
        if key.startswith(_UNSUPPORTED_XATTRS):
            raise Unavailable(f"cannot export /{entry.rel}: overlayfs redirect_dir or metacopy "
                              "is enabled; mount with redirect_dir=off,metacopy=off")
        if key.startswith(_PRIVATE_XATTRS):
            continue
        try:
            out[key] = os.getxattr(path, key, follow_symlinks=False)
        except OSError:
            continue
    return out


def _is_opaque(entry: _Entry) -> bool:
    try:
        return os.getxattr(entry.proc_path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _header(name: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    # Whole seconds, as Docker writes them, so that equal trees give equal tars.
    ti.mtime = st.st_mtime_ns // 1_000_000_000
    return ti


def diff_tar(upper_dir: str | os.PathLike, out: BinaryIO, *, exclude: Collection[str] = ()) -> int:
    """Write the layer tar of an overlayfs upper directory to `out`.

    PAX format, numeric owners, xattrs as SCHILY.xattr records, hard links
    found by inode, entries in a fixed order, so the same tree always gives
    the same bytes.  Entries at the relative paths in `exclude` are left
    out.  Returns the size of the regular files' content.
    """
    size = 0
    seen: dict[tuple[int, int], str] = {}
    root = os.open(upper_dir, _DIR_FD)
    try:
        tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape",
                          copybufsize=_COPY_BUFSIZE)
        for entry in _walk(root):
            if entry.rel in exclude:
                continue
            st = entry.st
            mode = st.st_mode
            if _is_whiteout(st):
                parent, _, base = entry.rel.rpartition("/")
                ti = _header((f"{parent}/" if parent else "") + WHITEOUT_PREFIX + base, st)
                ti.mode = 0o600
                tf.addfile(ti)
                continue
            if stat.S_ISSOCK(mode):
                continue  # a socket is meaningless outside the process that bound it
            ti = _header(entry.rel, st)
            for key, value in _xattrs(entry).items():
                ti.pax_headers[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")

            if stat.S_ISDIR(mode):
                ti.type = tarfile.DIRTYPE
                ti.name += "/"
                tf.addfile(ti)
                if _is_opaque(entry):
                    marker = _header(f"{entry.rel}/{OPAQUE_MARKER}", st)
                    marker.mtime = 0
                    tf.addfile(marker)
                continue

            if st.st_nlink > 1:
                first = seen.setdefault((st.st_dev, st.st_ino), entry.rel)
                if first != entry.rel:
                    ti.type = tarfile.LNKTYPE
                    ti.linkname = first
                    tf.addfile(ti)
                    continue

            if stat.S_ISREG(mode):
                try:
                    fd = os.open(entry.name, _READ_FLAGS, dir_fd=entry.dfd)
                except FileNotFoundError:
                    continue  # deleted by the container since the walk saw it
                with io.FileIO(fd, "rb", closefd=True) as f:
                    now = os.fstat(fd)
                    if not stat.S_ISREG(now.st_mode):
                        continue  # swapped for something else; never read it
                    ti.size = now.st_size
                    tf.addfile(ti, f)
                size += ti.size
            elif stat.S_ISLNK(mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(entry.name, dir_fd=entry.dfd)
                tf.addfile(ti)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tf.addfile(ti)
            elif stat.S_ISFIFO(mode):
                ti.type = tarfile.FIFOTYPE
                tf.addfile(ti)
        tf.close()
    finally:
        os.close(root)
    return size


class _LowerView:
    """Lookups in the merged view of overlay lower dirs (topmost first),
    honouring their whiteouts and opaque directories."""

    def __init__(self, lower_dirs: Sequence[str | os.PathLike]):
        self.layers = [os.fspath(d) for d in lower_dirs]

    def _probe(self, layer: str, rel: str) -> tuple[os.stat_result | None, bool]:
        """(what `rel` is in this one layer, whether layers below are hidden)."""
        parts = rel.split("/")
        path = layer
        for i, part in enumerate(parts):
            path = f"{path}/{part}"
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return None, False
            if _is_whiteout(st):
                return None, True
            if i < len(parts) - 1:
                if not stat.S_ISDIR(st.st_mode):
                    return None, True
                if _xattr_is(path, OVERLAY_OPAQUE_XATTR, b"y"):
                    # Below an opaque directory nothing from lower layers shows.
                    rest = "/".join(parts[i + 1:])
                    st2, _ = self._probe(path, rest) if rest else (st, True)
                    return st2, True
        return st, True

    def lookup(self, rel: str) -> os.stat_result | None:
        for layer in self.layers:
            st, final = self._probe(layer, rel)
            if st is not None or final:
                return st
        return None

    def listdir(self, rel: str) -> set[str]:
        names: set[str] = set()
        hidden: set[str] = set()
        for layer in self.layers:
            st, final = self._probe(layer, rel)
            if st is None:
                if final:
                    break
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            path = f"{layer}/{rel}"
            for name in os.listdir(path):
                if name in hidden or name in names:
                    continue
                if _is_whiteout(os.lstat(f"{path}/{name}")):
                    hidden.add(name)
                else:
                    names.add(name)
            if _xattr_is(path, OVERLAY_OPAQUE_XATTR, b"y"):
                break
        return names


def _xattr_is(path: str, key: str, value: bytes) -> bool:
    try:
        return os.getxattr(path, key, follow_symlinks=False) == value
    except OSError:
        return False


def _same_time(a: os.stat_result, b: os.stat_result) -> bool:
    # As Docker: equal, or equal seconds where one side lacks sub-seconds.
    if a.st_mtime_ns == b.st_mtime_ns:
        return True
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return sa == sb and (na == 0 or nb == 0)


def changes(upper_dir: str | os.PathLike, lower_dirs: Sequence[str | os.PathLike], *,
            exclude: Collection[str] = ()) -> list[Change]:
    """What the upper directory changed relative to the lower dirs (topmost
    first), sorted by path, as `docker diff` lists it; entries at the
    relative paths in `exclude` are not changes.

    A directory counts as changed only if its own attributes differ, or an
    entry directly in it was added or deleted.  Where a directory was
    replaced wholesale (opaque), the lower entries it hides are listed as
    deleted.
    """
    lowers = _LowerView(lower_dirs)
    found: dict[str, ChangeKind] = {}
    changed_dirs: set[str] = set()

    def note_parent(rel: str) -> None:
        parent = rel.rpartition("/")[0]
        if parent and parent not in changed_dirs:
            found.setdefault(parent, ChangeKind.MODIFIED)
            changed_dirs.add(parent)

    root = os.open(upper_dir, _DIR_FD)
    try:
        for entry in _walk(root):
            if entry.rel in exclude:
                continue
            st = entry.st
            is_dir = stat.S_ISDIR(st.st_mode)
            if _is_whiteout(st):
                kind = ChangeKind.DELETED
            else:
                below = lowers.lookup(entry.rel)
                if below is None:
                    kind = ChangeKind.ADDED
                elif (is_dir and stat.S_ISDIR(below.st_mode) and st.st_size == below.st_size
                      and st.st_mode == below.st_mode and _same_time(st, below)
                      and not _is_opaque(entry)):
                    continue
                else:
                    kind = ChangeKind.MODIFIED
            found[entry.rel] = kind
            if is_dir:
                changed_dirs.add(entry.rel)
                if _is_opaque(entry):
                    present = set(os.listdir(entry.proc_path))
                    for name in lowers.listdir(entry.rel) - present:
                        found[f"{entry.rel}/{name}"] = ChangeKind.DELETED
            if kind is not ChangeKind.MODIFIED:
                note_parent(entry.rel)
    finally:
        os.close(root)
    return [Change(f"/{rel}", kind) for rel, kind in sorted(found.items(), key=lambda kv: os.fsencode(kv[0]))]
