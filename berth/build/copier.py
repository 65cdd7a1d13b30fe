"""ADD and COPY: placing source files into a mounted root filesystem.

Docker's classic builder semantics: the destination is resolved inside the
root filesystem (symlinks followed, never out of it); a source directory's
*content* is copied; a file lands at the destination, or inside it when the
destination is an existing directory or ends in `/`; modes, owners and
mtimes (whole seconds) come from the source unless --chown (and, as in
BuildKit, --chmod) say otherwise; new parent directories are 0755; ADD
unpacks a local tar archive (plain, gzip, bzip2 or xz) into the destination.

Below the destination nothing is followed: an existing entry in the way is
replaced, as Docker's untar replaces it, so a hostile image or context can
never make a copy write outside the root filesystem.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from berth.build.context import DirectoryTree, Entry, SourceTree
from berth.container.rootfs_files import read_file
from berth.errors import BerthError, InvalidArgument
from berth.layer.rootfs import RootDir

__all__ = ["CopySource", "copy_sources", "lookup_owner", "normalize_dest"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_NODE_TYPES = {"fifo": stat.S_IFIFO, "char": stat.S_IFCHR, "block": stat.S_IFBLK}


@dataclass(frozen=True)
class CopySource:
    """One source of an ADD/COPY: `path` as named (it names the copied file)."""

    tree: SourceTree
    path: str
    decompress: bool = True     # ADD may unpack it when it is a local archive


def normalize_dest(workdir: str, dest: str) -> str:
    """An ADD/COPY destination made absolute against WORKDIR, keeping a trailing /."""
    if dest.startswith("/"):
        return dest
    joined = posixpath.normpath(posixpath.join("/", workdir or "/", dest))
    joined = "/" + joined.lstrip("/")
    return joined + "/" if dest.endswith("/") and joined != "/" else joined


def lookup_owner(rootfs: Path, chown: str) -> tuple[int, int]:
    """--chown=user[:group] against the image's passwd and group files.

    As in Docker's classic builder, a lone name is looked up as the group
    too, and numbers are taken as they are.
    """
    parts = chown.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"invalid chown string format: {chown}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else parts
    return (_lookup_id(rootfs, "/etc/passwd", user, "uid for user"),
            _lookup_id(rootfs, "/etc/group", group, "gid for group"))


def _lookup_id(rootfs: Path, path: str, name: str, what: str) -> int:
    if name.isdigit():
        return int(name)
    data = read_file(rootfs, path)
    for line in (data or b"").decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    kind = "user" if "user" in what else "group"
    raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: can't find {what} "
                          f"{name}: no such {kind}: {name}")


def copy_sources(rootfs: Path, dest: str, sources: Sequence[CopySource], *,
                 owner: tuple[int, int] | None, chmod: int | None, decompress: bool) -> None:
    """Copy every source to `dest` (absolute, trailing / kept) inside `rootfs`.

    `owner` None keeps the sources' owners (COPY --from without --chown).
    """
    from berth.layer.apply import apply_layer

    with DirectoryTree(rootfs) as target_tree:
        root = target_tree.dir
        for src in sources:
            resolved = src.tree.resolve(src.path)
            entry = src.tree.lookup(resolved)
            if entry is None:
                raise InvalidArgument(f"source path not found: {src.path}")
            # The destination's own symlinks are followed, inside the root filesystem.
            target = target_tree.resolve(dest)
            if entry.is_dir:
                _copy_dir(root, src.tree, resolved, target, owner, chmod)
            elif decompress and src.decompress and entry.kind == "file" and _is_archive(src.tree, resolved):
                fd = root.open_dir(target, create=True)
                try:
                    with src.tree.open(resolved) as f:
                        apply_layer(f, f"/proc/self/fd/{fd}")
                finally:
                    os.close(fd)
            else:
                if dest.endswith("/") or _dest_is_dir(root, target):
                    target = posixpath.join(target, posixpath.basename(src.path.rstrip("/")))
                parent, name = posixpath.split(target)
                pfd = _open_dir(root, parent, owner)
                try:
                    _place(pfd, name, src.tree, resolved, entry, owner, chmod)
                finally:
                    os.close(pfd)
            target_tree.changed()


def _dest_is_dir(root: RootDir, rel: str) -> bool:
    try:
        os.close(root.open_dir(rel))
        return True
    except (OSError, BerthError):
        return False


def _open_dir(root: RootDir, rel: str, owner: tuple[int, int] | None) -> int:
    """A writable fd of directory `rel`, made (0755) with its parents if missing."""
    def chown_new(path: str) -> None:
        if owner is not None:
            fd = root.open_dir(path)
            try:
                os.chown(f"/proc/self/fd/{fd}", *owner)
            finally:
                os.close(fd)

    try:
        fd = root.open_dir(rel, create=True, on_create=chown_new)
    except BerthError as e:
        raise InvalidArgument(f"failed to create new directory: {e}") from None
    try:
        return os.open(f"/proc/self/fd/{fd}", _DIR & ~os.O_NOFOLLOW)
    finally:
        os.close(fd)


def _copy_dir(root: RootDir, tree: SourceTree, src: str, dest: str, owner: tuple[int, int] | None,
              chmod: int | None) -> None:
    existed = _dest_is_dir(root, dest)
    fd = _open_dir(root, dest, None)
    try:
        if owner is not None and not existed:
            os.chown(fd, *owner)
        _copy_children(fd, tree, src, owner, chmod)
    finally:
        os.close(fd)


def _copy_children(dfd: int, tree: SourceTree, src: str, owner: tuple[int, int] | None,
                   chmod: int | None) -> None:
    for name in tree.children(src):
        rel = f"{src}/{name}" if src else name
        entry = tree.lookup(rel)
        if entry is not None:
            _place(dfd, name, tree, rel, entry, owner, chmod)


def _clear(dfd: int, name: str, keep_dir: bool) -> bool:
    """Make way for a new entry; True when an existing directory is kept."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return True
        shutil.rmtree(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)
    return False


def _place(dfd: int, name: str, tree: SourceTree, rel: str, entry: Entry,
           owner: tuple[int, int] | None, chmod: int | None) -> None:
    """Create `name` in directory `dfd` as a copy of `entry` (recursively)."""
    uid, gid = owner if owner is not None else (entry.uid, entry.gid)
    mode = entry.mode if chmod is None else chmod
    mtime = entry.mtime_ns // 1_000_000_000 * 1_000_000_000
    if entry.is_dir:
        if not _clear(dfd, name, keep_dir=True):
            os.mkdir(name, 0o700, dir_fd=dfd)
        fd = os.open(name, _DIR, dir_fd=dfd)
        try:
            _copy_children(fd, tree, rel, owner, chmod)
            os.chown(fd, uid, gid)
            os.chmod(fd, mode)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
        return
    _clear(dfd, name, keep_dir=False)
    if entry.kind == "file":
        fd = os.open(name, _NEW, 0o600, dir_fd=dfd)
        try:
            with tree.open(rel) as src:
                _copy_data(src, fd)
            os.chown(fd, uid, gid)
            os.chmod(fd, mode)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
    elif entry.kind == "symlink":
        os.symlink(entry.linkname, name, dir_fd=dfd)
        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
        os.utime(name, ns=(mtime, mtime), dir_fd=dfd, follow_symlinks=False)
    elif entry.kind in _NODE_TYPES:
        os.mknod(name, _NODE_TYPES[entry.kind] | mode, entry.rdev, dir_fd=dfd)
        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
        os.chmod(name, mode, dir_fd=dfd)
        os.utime(name, ns=(mtime, mtime), dir_fd=dfd, follow_symlinks=False)
    # A socket is not copied: it means nothing without the process that bound it.


def _copy_data(src, fd: int) -> None:
    try:
        src_fd = src.fileno()
        while os.sendfile(fd, src_fd, None, _CHUNK):
            pass
        return
    except (AttributeError, OSError):
        pass
    while chunk := src.read(_CHUNK):
        os.write(fd, chunk)


def _is_archive(tree: SourceTree, rel: str) -> bool:
    """Docker's isArchivePath: it decompresses, and a tar header follows."""
    import bz2
    import gzip
    import lzma

    with tree.open(rel) as f:
        head = f.read(6)
        f.seek(0)
        opener = (gzip.GzipFile if head.startswith(b"\x1f\x8b") else
                  bz2.BZ2File if head.startswith(b"BZh") else
                  lzma.LZMAFile if head.startswith(b"\xfd7zXZ\x00") else None)
        try:
            if opener is not None:
                with opener(fileobj=f) if opener is gzip.GzipFile else opener(f) as d:
                    block = d.read(512)
            else:
                block = f.read(512)
            tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            return True
        except (OSError, EOFError, lzma.LZMAError, tarfile.HeaderError):
            return False
