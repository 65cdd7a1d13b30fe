"""docker cp: archives of paths in a container, and Docker's rules for copying them.

Two halves, as in Docker:

* The daemon's (moby daemon/archive*.go): `stat_path`, `archive_path` and
  `extract_to_dir` work on a container's filesystem, running or stopped.
  Each runs in a short-lived child process with a private mount namespace
  that sees the container's root filesystem with its bind mounts and volumes
  on top, as Docker's openContainerFS builds it: the volumes are found from
  the container's recorded MountPoints rather than by entering the running
  container's mount namespace, so the same code serves stopped containers,
  nothing the container mounted itself is trusted, and nothing outlives the
  child (a stopped container's overlay is mounted in that namespace only).
  Every path is resolved as inside the container (`RootDir`, and
  FollowSymlinkInScope below), so no symlink in the container, and no member
  of a hostile archive, reaches the host.

* The client's (moby pkg/archive copy.go, docker/cli cp.go): `CopyInfo`,
  `prepare_archive_copy` and friends decide where an archive is unpacked and
  how its entries are renamed so that `cp a b` means what it means in Docker;
  `tar_resource` and `copy_to` pack and unpack on the host.

Archives are unpacked with Docker's Untar semantics (not a layer's: `.wh.`
names are ordinary files here), member by member through `RootDir`.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import shutil
import signal
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from berth.container import volumes as vol
from berth.container.cleanup import is_mounted
from berth.container.mounting import mount_rootfs
from berth.container.record import Container
from berth.container.users import resolve_user
from berth.errors import BerthError, Conflict, DataCorrupt, InvalidArgument, NotFound, Unavailable
from berth.layer.rootfs import NotADirectory, RootDir
from berth.layer.snapshots import Mount
from berth.layer.stream import Readable, open_layer_stream
from berth.layer.tarstream import TarStream, member_times, quote
from berth.runtime.builtin import linux
from berth.units import format_rfc3339_nano

# FollowSymlinkInScope's limit (moby/sys/symlink).
MAX_SYMLINKS = 255
# docker/cli's CopyInfoDestinationPath follows at most this many links.
MAX_DESTINATION_LINKS = 10
_CHUNK = 1 << 20

# Go's os.FileMode type bits, as the PathStat header carries them.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_NAMED_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR_DEVICE = 1 << 21
_GO_STICKY = 1 << 20

_XATTR_PREFIX = "SCHILY.xattr."
# overlayfs's own bookkeeping never travels in a copy.
_PRIVATE_XATTR_PREFIX = "trusted.overlay."
_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.GNUTYPE_SPARSE, tarfile.DIRTYPE, tarfile.SYMTYPE,
          tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE}


# ----------------------------------------------------------------------------
# Paths, as Go's path/filepath and pkg/archive treat them


def go_clean(p: str) -> str:
    """Go's filepath.Clean: lexical, "" is ".", a leading "/" is kept (once)."""
    if not p:
        return "."
    rooted = p.startswith("/")
    parts: list[str] = []
    for comp in p.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(comp)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def go_base(p: str) -> str:
    """Go's filepath.Base: the last element, trailing slashes ignored."""
    if not p:
        return "."
    p = p.rstrip("/")
    if not p:
        return "/"
    return p.rsplit("/", 1)[-1]


def go_dir(p: str) -> str:
    """Go's filepath.Dir: everything but the last element, cleaned."""
    return go_clean(p[:p.rfind("/") + 1])


def go_join(*elems: str) -> str:
    joined = "/".join(e for e in elems if e)
    return go_clean(joined) if joined else ""


def has_trailing_separator(p: str) -> bool:
    return p.endswith("/")


def specifies_current_dir(p: str) -> bool:
    return go_base(p) == "."


def asserts_directory(p: str) -> bool:
    """`p` ends in "/" or "/.": whatever it names must be a directory."""
    return has_trailing_separator(p) or specifies_current_dir(p)


def preserve_trailing_dot_or_separator(cleaned: str, original: str) -> str:
    """`cleaned` with the trailing "/." or "/" of `original` put back."""
    if not specifies_current_dir(cleaned) and specifies_current_dir(original):
        if not has_trailing_separator(cleaned):
            cleaned += "/"
        cleaned += "."
    if not has_trailing_separator(cleaned) and has_trailing_separator(original):
        cleaned += "/"
    return cleaned


def split_path_dir_entry(path: str) -> tuple[str, str]:
    """(directory, entry) of `path`, keeping a trailing "." as the entry."""
    cleaned = go_clean(path)
    if specifies_current_dir(path):
        cleaned += "/."
    return go_dir(cleaned), go_base(cleaned)


def get_rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """`resolved` with `path`'s trailing "/." or "/", and the name the copy must
    take when resolving a link changed the last element (GetRebaseName)."""
    if specifies_current_dir(path) and not specifies_current_dir(resolved):
        resolved += "/."
    if has_trailing_separator(path) and not has_trailing_separator(resolved):
        resolved += "/"
    return resolved, (go_base(path) if go_base(path) != go_base(resolved) else "")


def split_cp_arg(arg: str) -> tuple[str, str]:
    """("container", "path") of `CONTAINER:PATH`, ("", arg) for a local path.

    A local path with a colon is written explicitly: `./a:b` or `/x/a:b`.
    """
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def _rename(name: str, renames: Sequence[tuple[str, str]]) -> str:
    # RebaseArchiveEntries: Go's strings.Replace(name, old, new, 1), with the
    # root's "/" standing for the empty prefix.
    for old, new in renames:
        name = name.replace("" if old == "/" else old, new, 1)
    return name


# ----------------------------------------------------------------------------
# What a path is


def go_file_mode(st_mode: int) -> int:
    """A Unix st_mode as Go's os.FileMode (the API's PathStat.mode)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    if kind == stat.S_IFDIR:
        mode |= _GO_DIR
    elif kind == stat.S_IFLNK:
        mode |= _GO_SYMLINK
    elif kind == stat.S_IFBLK:
        mode |= _GO_DEVICE
    elif kind == stat.S_IFCHR:
        mode |= _GO_DEVICE | _GO_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        mode |= _GO_NAMED_PIPE
    elif kind == stat.S_IFSOCK:
        mode |= _GO_SOCKET
    if st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


@dataclass(frozen=True)
class PathStat:
    """A path in a container: the API's X-Docker-Container-Path-Stat."""

    name: str
    size: int
    mode: int           # st_mode
    mtime_ns: int
    link_target: str = ""   # a symlink's target, resolved inside the container

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    def to_api(self) -> dict:
        return {"name": self.name, "size": self.size, "mode": go_file_mode(self.mode),
                "mtime": format_rfc3339_nano(self.mtime_ns), "linkTarget": self.link_target}

    @classmethod
    def from_stat(cls, name: str, st: os.stat_result, link_target: str = "") -> PathStat:
        return cls(name, st.st_size, st.st_mode, st.st_mtime_ns, link_target)


@dataclass(frozen=True)
class CopyInfo:
    """The source or destination of a copy (pkg/archive's CopyInfo)."""

    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


def prepare_archive_copy(src: CopyInfo, dst: CopyInfo) -> tuple[str, list[tuple[str, str]]]:
    """Where to unpack an archive of `src` so that it lands as `dst`, and how to
    rename its entries on the way (PrepareArchiveCopy).

    Returns (directory to unpack into, [(old, new)]): each member name's first
    `old` becomes `new`, as RebaseArchiveEntries renames them.
    """
    dst_dir, dst_base = split_path_dir_entry(dst.path)
    _, src_base = split_path_dir_entry(src.path)
    if src.rebase_name:
        src_base = src.rebase_name
    if dst.exists and dst.is_dir:
        return dst.path, []
    if dst.exists and src.is_dir:
        raise InvalidArgument("cannot copy directory")
    if not dst.exists and not src.is_dir and asserts_directory(dst.path):
        raise InvalidArgument("no such directory")
    return dst_dir, [(src_base, dst_base)]


# ----------------------------------------------------------------------------
# The host side: packing and unpacking local paths


def _go_error(op: str, path: str, e: OSError) -> BerthError:
    """An OSError as Go prints a *PathError: "lstat /x: no such file or directory"."""
    text = os.strerror(e.errno) if e.errno else str(e)
    text = text[:1].lower() + text[1:]
    kind = NotFound if e.errno == errno.ENOENT else InvalidArgument if e.errno == errno.ENOTDIR else BerthError
    return kind(f"{op} {path}: {text}")


def resolve_local_path(path: str) -> str:
    """An absolute local path, keeping a trailing "/" or "/."."""
    return preserve_trailing_dot_or_separator(go_clean(os.path.abspath(path)), path)


def _eval_symlinks(path: str) -> str:
    try:
        return go_clean(os.path.realpath(path, strict=True))
    except OSError as e:
        raise _go_error("lstat", e.filename or path, e) from None


def copy_info_source_path(path: str, follow_link: bool) -> CopyInfo:
    """A local copy source: links before its last element resolved, the last one
    too with `follow_link` (CopyInfoSourcePath).  It must exist."""
    rebase = ""
    if follow_link:
        resolved, rebase = get_rebase_name(path, _eval_symlinks(path))
    else:
        head, base = path[:path.rfind("/") + 1], path[path.rfind("/") + 1:]
        resolved_dir = _eval_symlinks(head or ".")
        resolved = resolved_dir.rstrip("/") + "/" + base
        if has_trailing_separator(path) and go_base(path) != go_base(resolved):
            rebase = go_base(path)
    try:
        st = os.lstat(resolved)
    except OSError as e:
        raise _go_error("lstat", resolved, e) from None
    return CopyInfo(resolved, exists=True, is_dir=stat.S_ISDIR(st.st_mode), rebase_name=rebase)


def copy_info_destination_path(path: str) -> CopyInfo:
    """A local copy destination, its final symlinks followed; when it does not
    exist its parent must (CopyInfoDestinationPath)."""
    original = path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _go_error("lstat", path, e) from None
    links = 0
    while st is not None and stat.S_ISLNK(st.st_mode):
        links += 1
        if links > MAX_DESTINATION_LINKS:
            raise InvalidArgument(f"too many symlinks in {original}")
        target = os.readlink(path)
        if not target.startswith("/"):
            target = go_join(split_path_dir_entry(path)[0], target)
        path = target
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is None:
        parent, _ = split_path_dir_entry(path)
        try:
            parent_st = os.stat(parent)
        except OSError as e:
            raise _go_error("stat", parent, e) from None
        if not stat.S_ISDIR(parent_st.st_mode):
            raise InvalidArgument("not a directory")
        return CopyInfo(path)
    return CopyInfo(path, exists=True, is_dir=stat.S_ISDIR(st.st_mode))


def validate_output_path(path: str) -> None:
    """docker/cli's ValidateOutputPath: the parent exists, and the path is a
    directory or a regular file if it exists."""
    parent = go_dir(go_clean(path))
    if parent not in ("", ".") and not os.path.exists(parent):
        raise InvalidArgument(f'invalid output path: directory "{parent}" does not exist')
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _go_error("stat", path, e) from None
    if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
        return
    problem = validate_output_path_file_mode(st.st_mode)
    if problem:
        raise InvalidArgument(f'invalid output path: "{path}" must be a directory or a regular file: {problem}')


def validate_output_path_file_mode(st_mode: int) -> str:
    """Why a copy cannot write to a file of this type, or "" (docker/cli's
    ValidateOutputPathFileMode; Go calls only unknown types irregular)."""
    if stat.S_ISBLK(st_mode) or stat.S_ISCHR(st_mode):
        return "got a device"
    return ""


def local_content_size(path: str) -> int:
    """The size of the regular files' content at `path` (for the summary line)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                fst = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if stat.S_ISREG(fst.st_mode):
                total += fst.st_size
    return total


def tar_resource(src: CopyInfo, out: BinaryIO, renames: Sequence[tuple[str, str]] = ()) -> None:
    """A tar of the local `src` (TarResource), entries renamed by `renames`
    afterwards (what RebaseArchiveEntries would do to the stream)."""
    source_dir, base = split_path_dir_entry(src.path)
    rebases = [(base, src.rebase_name)] if src.rebase_name else []
    fd = os.open(source_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        write_tar(out, fd, base, lambda rel: _rename(_rename(rel, rebases), renames))
    finally:
        os.close(fd)


def copy_to(content: Readable, src: CopyInfo, dst_path: str) -> None:
    """Unpack an archive of `src` on the host so that it lands as `dst_path`
    (CopyTo).  Like Docker's client, no ownership is applied: what it writes
    belongs to whoever runs the copy."""
    dst = copy_info_destination_path(dst_path)
    dst_dir, renames = prepare_archive_copy(src, dst)
    if src.rebase_name:
        _, src_base = split_path_dir_entry(src.path)
        renames = [(src_base, src.rebase_name)] + renames
    with RootDir(dst_dir) as root:
        Unpacker(root, "", dst_dir, owner=NO_CHOWN, renames=renames).unpack(content)


# ----------------------------------------------------------------------------
# Packing: Docker's Tarballer for one included path


def write_tar(out: BinaryIO, dir_fd: int, include: str, name_of: Callable[[str], str] = lambda rel: rel) -> None:
    """Write a tar of `include` in the directory `dir_fd` to `out`.

    `include` is an entry of the directory or "." for the directory itself;
    members are named as Docker's archive names them (`include`,
    `include/a`, ... or `.`, `./a`, ...) and then passed through `name_of`.
    Nothing is followed: a symlink is archived as a symlink, and a directory
    is descended through its own fd, so a tree that changes underneath (a
    running container's) cannot lead the walk elsewhere.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        writer = _TarWriter(tar, name_of)
        if include == ".":
            writer.tree(os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd), ".")
            return
        try:
            st = os.stat(include, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return  # Docker's tarballer logs this and sends an empty archive
        if stat.S_ISDIR(st.st_mode):
            writer.tree(os.open(include, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                dir_fd=dir_fd), include)
        else:
            writer.entry(dir_fd, include, include, st)


class _TarWriter:
    def __init__(self, tar: tarfile.TarFile, name_of: Callable[[str], str]):
        self.tar = tar
        self.name_of = name_of
        self.seen: dict[tuple[int, int], str] = {}   # hard links: inode -> first name

    def tree(self, top_fd: int, rel: str) -> None:
        """`top_fd` (which this closes) and everything below it, parents first."""
        self.entry(top_fd, None, rel, os.fstat(top_fd))
        stack = [(top_fd, rel, iter(sorted(os.listdir(top_fd))))]
        try:
            while stack:
                fd, base, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(fd)
                    stack.pop()
                    continue
                child = f"{base}/{name}"
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone meanwhile
                if not stat.S_ISDIR(st.st_mode):
                    self.entry(fd, name, child, st)
                    continue
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        raise
                    continue  # replaced meanwhile
                self.entry(sub, None, child, os.fstat(sub))
                stack.append((sub, child, iter(sorted(os.listdir(sub)))))
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    def entry(self, dir_fd: int, name: str | None, rel: str, st: os.stat_result) -> None:
        """One member; `name` in `dir_fd`, or None when `dir_fd` is the entry itself."""
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            return  # Go's tar cannot hold sockets; Docker skips them
        ti = tarfile.TarInfo(self.name_of(rel))
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = st.st_mtime_ns // 1_000_000_000   # Docker truncates to the second
        if kind == stat.S_IFDIR:
            ti.type = tarfile.DIRTYPE
            self.tar.addfile(ti)
            return
        inode = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and inode in self.seen:
            ti.type, ti.linkname = tarfile.LNKTYPE, self.seen[inode]
            self.tar.addfile(ti)
            return
        if kind == stat.S_IFREG:
            if not self._file(dir_fd, name, ti):
                return
        else:
            if kind == stat.S_IFLNK:
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
            elif kind == stat.S_IFIFO:
                ti.type = tarfile.FIFOTYPE
            else:
                ti.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(ti)
        if st.st_nlink > 1:
            self.seen[inode] = ti.name

    def _file(self, dir_fd: int, name: str, ti: tarfile.TarInfo) -> bool:
        """Write a regular file's member; False if it is no longer one."""
        # O_NONBLOCK: should the file have become a fifo since it was
        # listed, opening must not wait for a writer.
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return False
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            try:
                ti.pax_headers = {_XATTR_PREFIX + "security.capability":
                                  os.getxattr(fd, "security.capability").decode("utf-8", "surrogateescape")}
            except OSError:
                pass
            with os.fdopen(fd, "rb", closefd=False) as f:
                self.tar.addfile(ti, _Exactly(f, st.st_size))
            return True
        finally:
            os.close(fd)


class _Exactly:
    """Exactly `size` bytes of a file that may change while it is read: a file
    that shrinks is padded with zeros, so the archive stays well formed."""

    def __init__(self, f: BinaryIO, size: int):
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        data = self.f.read(n)
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= n
        return data


# ----------------------------------------------------------------------------
# Unpacking: Docker's Untar, every path resolved under a RootDir


class _NoChown:
    def __repr__(self) -> str:
        return "NO_CHOWN"


NO_CHOWN = _NoChown()   # as Docker's NoLchown: leave ownership to whoever unpacks


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _join_display(dest: str, rel: str) -> str:
    return go_join(dest, rel) if rel else dest


class Unpacker:
    """Docker's Untar with NoOverwriteDirNonDir, into `base` under `root`.

    `owner` is None to keep each member's uid/gid, (uid, gid) to give
    everything to one owner (ChownOpts), or NO_CHOWN.  `display` is how
    `base` is named in messages.  Member names are cleaned and must stay
    inside `base` lexically, as Docker requires; beyond that, resolving
    through `root` keeps every symlink, the archive's own included, inside
    the root.
    """

    def __init__(self, root: RootDir, base: str, display: str, *, owner=None,
                 allow_overwrite_dir_with_file: bool = False, renames: Sequence[tuple[str, str]] = ()):
        self.root = root
        self.base = base.strip("/")
        self.display = display
        self.owner = owner
        self.no_overwrite = not allow_overwrite_dir_with_file
        self.renames = list(renames)
        self.dir_times: list[tuple[str, tuple[int, int]]] = []

    def unpack(self, content: Readable) -> None:
        reader, _ = open_layer_stream(content)
        tar = TarStream(reader)
        try:
            for ti in tar:
                self._member(tar, ti)
        except DataCorrupt as e:
            # TarStream speaks of layers; here the archive is the user's.
            raise DataCorrupt(str(e).replace("invalid layer tar", "invalid tar archive", 1)) from None
        self.root.restore_times(self.dir_times)

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}" if self.base and rel else (self.base or rel)

    def _member(self, tar: TarStream, ti: tarfile.TarInfo) -> None:
        if ti.type not in _TYPES:
            raise InvalidArgument(f"unhandled tar header type {ti.type[0]}")
        name = go_clean(_rename(ti.name, self.renames))
        if "\0" in name:
            raise DataCorrupt(f"invalid tar archive: member {quote(ti.name)} has a NUL byte in its name")
        if name == ".." or name.startswith("../"):
            raise DataCorrupt(f'"{name}" is outside of "{self.display}"')
        rel = name.lstrip("/")
        if rel == ".":
            rel = ""
        dst_display = _join_display(self.display, rel)
        path = self._path(rel)
        if not path:
            return  # the extraction directory itself: Docker leaves it as it is
        try:
            pfd, entry = self.root.split(path, create=True)
        except NotADirectory:
            raise Conflict(f"mkdir {_join_display(self.display, go_dir(rel))}: not a directory") from None
        try:
            existing = _lstat(pfd, entry)
            is_dir = ti.type == tarfile.DIRTYPE
            if existing is not None:
                was_dir = stat.S_ISDIR(existing.st_mode)
                if self.no_overwrite and was_dir and not is_dir:
                    raise Conflict(f"cannot overwrite directory {quote(dst_display)} with non-directory "
                                   f"{quote(self.display)}")
                if self.no_overwrite and not was_dir and is_dir:
                    raise Conflict(f"cannot overwrite non-directory {quote(dst_display)} with directory "
                                   f"{quote(self.display)}")
                if not rel and was_dir:
                    return
                if not (was_dir and is_dir):
                    self._remove(pfd, entry, existing)
            merge = existing is not None and stat.S_ISDIR(existing.st_mode) and is_dir
            self._create(tar, ti, rel, pfd, entry, dst_display, merge=merge)
        finally:
            os.close(pfd)
        if ti.type == tarfile.DIRTYPE:
            self.dir_times.append((path, member_times(ti)))

    def _remove(self, pfd: int, name: str, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        self.root.invalidate()

    def _create(self, tar: TarStream, ti: tarfile.TarInfo, rel: str, pfd: int, name: str,
                dst_display: str, *, merge: bool) -> None:
        mode = ti.mode & 0o7777
        if ti.type == tarfile.DIRTYPE:
            if not merge:
                os.mkdir(name, 0o700, dir_fd=pfd)
        elif ti.isreg():
            self._file(tar, ti, pfd, name)
        elif ti.type == tarfile.SYMTYPE:
            target = go_join(go_dir(go_join(self.display, rel)), ti.linkname)
            if not _inside(target, self.display):
                raise DataCorrupt(f"invalid symlink {quote(dst_display)} -> {quote(ti.linkname)}")
            os.symlink(ti.linkname, name, dir_fd=pfd)
        elif ti.type == tarfile.LNKTYPE:
            self._hardlink(ti, pfd, name)
        elif ti.type == tarfile.FIFOTYPE:
            os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if ti.type == tarfile.CHRTYPE else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(ti.devmajor, ti.devminor), dir_fd=pfd)
        self._chown(ti, pfd, name, dst_display)
        entry = f"/proc/self/fd/{pfd}/{name}"
        for key, value in ti.pax_headers.items():
            if key.startswith(_XATTR_PREFIX) and not key[len(_XATTR_PREFIX):].startswith(_PRIVATE_XATTR_PREFIX):
                try:
                    os.setxattr(entry, key[len(_XATTR_PREFIX):], value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
                except PermissionError:
                    pass   # as Docker: not allowed to set it (a user namespace)
        # chmod(2) cannot be told not to follow a link: go through an O_PATH fd
        # of the entry itself, so that nothing swapped in meanwhile is followed.
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            is_link = stat.S_ISLNK(os.fstat(fd).st_mode)
            if not is_link:
                os.chmod(f"/proc/self/fd/{fd}", mode)
        finally:
            os.close(fd)
        if ti.type != tarfile.DIRTYPE and not (ti.type == tarfile.LNKTYPE and is_link):
            os.utime(name, ns=member_times(ti), dir_fd=pfd, follow_symlinks=False)

    def _file(self, tar: TarStream, ti: tarfile.TarInfo, pfd: int, name: str) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=pfd)
        try:
            end = 0
            for offset, data in tar.read_file(ti):
                if offset != end:
                    os.lseek(fd, offset, os.SEEK_SET)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                end = offset + len(data)
            if end != ti.size:
                os.ftruncate(fd, ti.size)
        finally:
            os.close(fd)

    def _hardlink(self, ti: tarfile.TarInfo, pfd: int, name: str) -> None:
        link = go_clean(_rename(ti.linkname, self.renames))
        if link == ".." or link.startswith("../"):
            raise DataCorrupt(f"invalid hardlink {quote(go_join(self.display, link))} -> {quote(ti.linkname)}")
        target = self._path(link.lstrip("/"))
        try:
            tfd, tname = self.root.split(target)
        except (FileNotFoundError, NotADirectory):
            raise NotFound(f"link {go_join(self.display, link)}: no such file or directory") from None
        try:
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _chown(self, ti: tarfile.TarInfo, pfd: int, name: str, dst_display: str) -> None:
        if self.owner is NO_CHOWN:
            return
        uid, gid = self.owner if self.owner is not None else (ti.uid, ti.gid)
        try:
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise BerthError(f"failed to Lchown {quote(dst_display)} for UID {ti.uid}, GID {ti.gid}: "
                             f"{e.strerror}") from None


def _inside(path: str, base: str) -> bool:
    rel = posixpath.relpath(go_clean(path), go_clean(base))
    return rel != ".." and not rel.startswith("../")


# ----------------------------------------------------------------------------
# A container's filesystem as Docker's openContainerFS shows it


class _View:
    """Paths resolved inside the container's root, as a chrooted process sees them."""

    def __init__(self, root: RootDir):
        self.root = root

    def _lstat_in(self, parent: str, name: str) -> os.stat_result | None:
        try:
            fd = self.root.open_dir(parent)
        except FileNotFoundError:
            return None
        except NotADirectory:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        try:
            return _lstat(fd, name)
        finally:
            os.close(fd)

    def _readlink(self, parent: str, name: str) -> str:
        fd = self.root.open_dir(parent)
        try:
            return os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def follow(self, path: str) -> str:
        """FollowSymlinkInScope(path, "/"): every symlink resolved inside the
        root, as a clean absolute path; missing elements are kept as written."""
        resolved: list[str] = []
        pending = path.split("/")
        pending.reverse()
        links = 0
        while pending:
            comp = pending.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            parent = "/".join(resolved)
            st = self._lstat_in(parent, comp)
            if st is not None and stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                target = self._readlink(parent, comp)
                if target.startswith("/"):
                    resolved.clear()
                more = target.split("/")
                more.reverse()
                pending.extend(more)
                continue
            resolved.append(comp)
        return "/" + "/".join(resolved)

    def lstat(self, path: str) -> tuple[os.stat_result, str]:
        """lstat(2) of `path` inside the root and the entry's resolved path:
        links before the last element are followed, the last one only when
        the path ends in "/" or "/."."""
        clean = go_clean("/" + path)
        if clean == "/":
            return os.fstat(self.root.fd), "/"
        if asserts_directory(path):
            resolved = self.follow(clean)
            if resolved == "/":
                return os.fstat(self.root.fd), "/"
            parent, name = go_dir(resolved), go_base(resolved)
        else:
            parent, name = self.follow(go_dir(clean)), go_base(clean)
            resolved = go_join(parent, name)
        st = self._lstat_in(parent.lstrip("/"), name)
        if st is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        if asserts_directory(path) and not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return st, resolved

    def open_dir(self, resolved: str) -> int:
        """A readable fd of the directory at resolved path `resolved`."""
        pfd = self.root.open_dir(resolved.strip("/"))
        try:
            return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        finally:
            os.close(pfd)


@dataclass(frozen=True)
class _Bind:
    source: str
    destination: str
    readonly: bool = False
    recursive: bool = True


@dataclass
class _Plan:
    """What the child needs, worked out by the parent before forking."""

    container: Container
    ref: str                      # the container as the user named it (for messages)
    rootfs: str
    mount: Mount | None           # set when the root filesystem is not mounted yet
    binds: list[_Bind] = field(default_factory=list)


def _binds(manager, c: Container, resolved: list[vol.ResolvedMount]) -> list[_Bind]:
    """The container's volumes, bind mounts and network files, parents first.

    tmpfs mounts live only in the container's own namespace; like Docker, a
    copy sees (and writes) the root filesystem underneath them.
    """
    out = [_Bind(r.source, r.destination, r.readonly, "rbind" in r.mount.options)
           for r in resolved if r.point.type in (vol.BIND, vol.VOLUME)]
    taken = {b.destination for b in out}
    paths = manager.paths(c.id)
    for source, destination in ((paths.resolv_conf, "/etc/resolv.conf"), (paths.hostname, "/etc/hostname"),
                                (paths.hosts, "/etc/hosts")):
        if destination not in taken and source.exists():
            out.append(_Bind(str(source), destination, bool(c.host_config.get("ReadonlyRootfs")), False))
    # Docker's sortMounts: fewer path elements first, so a parent is mounted before its children.
    out.sort(key=lambda b: len(go_clean(b.destination).strip("/").split("/")))
    return out


class _Child:
    """The parent's handle on a child running in the container's filesystem."""

    def __init__(self, pid: int, control: int, data: int | None):
        self.pid = pid
        self.control = os.fdopen(control, "rb")
        self.data = data
        self._reaped = False

    def message(self) -> dict:
        line = self.control.readline()
        if not line:
            self.wait()
            raise BerthError("copying failed: the helper process exited unexpectedly")
        msg = json.loads(line)
        if "error" in msg:
            raise _decode_error(msg)
        return msg

    def wait(self) -> None:
        if not self._reaped:
            self._reaped = True
            os.waitpid(self.pid, 0)

    def close(self) -> None:
        if self.data is not None:
            try:
                os.close(self.data)
            except OSError:
                pass
            self.data = None
        self.control.close()
        if not self._reaped:
            # Still running: an error of ours, or a reader that stopped early.
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()


_ERRORS = {cls.__name__: cls for cls in (NotFound, Conflict, InvalidArgument, DataCorrupt, Unavailable)}


def _encode_error(e: BaseException) -> dict:
    if isinstance(e, BerthError):
        kind = next((c.__name__ for c in type(e).__mro__ if c.__name__ in _ERRORS), "BerthError")
        return {"error": kind, "message": str(e)}
    if isinstance(e, OSError):
        return {"error": "BerthError", "message": e.strerror or str(e)}
    return {"error": "BerthError", "message": f"{type(e).__name__}: {e}"}


def _decode_error(msg: dict) -> BerthError:
    return _ERRORS.get(msg["error"], BerthError)(msg["message"])


def _send(fd: int, msg: dict) -> None:
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


# task(view, plan, data fd or None, send) -> the result the parent receives
Task = Callable[[_View, _Plan, int | None, Callable[[dict], None]], dict]


def _spawn(manager, ref: str, task: Task, direction: str | None) -> tuple[_Child, Callable[[], None]]:
    """Fork a child that runs `task(view, plan, data_fd, send)` in the container's filesystem.

    `direction` is "out" when the child writes data for the parent, "in"
    when it reads data from the parent, None for no data.  `send` passes a
    message to the parent ahead of the task's result.  Returns the child's
    handle and a release function for what the parent acquired (volume
    mounts) on the container's behalf; call it once the child is done.
    """
    c = manager.get(ref)
    paths = manager.paths(c.id)
    rootfs = str(paths.rootfs)
    mount = None if is_mounted(rootfs) else manager.rootfs_mount(c)
    points = [vol.MountPoint.from_record(r) for r in c.spec.get("MountPoints") or []]
    holder = vol.process_ref()
    resolved = vol.activate_mounts(manager.state, points, holder)

    def release() -> None:
        vol.deactivate_mounts(manager.state, points, holder)

    try:
        plan = _Plan(c, ref, rootfs, mount, _binds(manager, c, resolved))
        control_r, control_w = os.pipe2(os.O_CLOEXEC)
        data_r, data_w = os.pipe2(os.O_CLOEXEC) if direction else (-1, -1)
        child_end = data_w if direction == "out" else data_r
        parent_end = data_r if direction == "out" else data_w
        pid = os.fork()
        if pid == 0:  # pragma: no cover - reports through the control pipe
            os.close(control_r)
            if direction:
                os.close(parent_end)
            _child_main(plan, task, control_w, child_end if direction else None)
        os.close(control_w)
        if direction:
            os.close(child_end)
        return _Child(pid, control_r, parent_end if direction else None), release
    except BaseException:
        release()
        raise


def _child_main(plan: _Plan, task: Task, control: int, data: int | None) -> None:  # pragma: no cover
    code = 1
    try:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        linux.unshare(linux.CLONE_NEWNS)
        # Private, not slave: a container stopping meanwhile must not unmount our view.
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        if plan.mount is not None:
            mount_rootfs(plan.mount, plan.rootfs)
        with RootDir(plan.rootfs) as root:
            view = _View(root)
            for b in plan.binds:
                _bind(view, b)
            root.invalidate()
            if plan.container.host_config.get("ReadonlyRootfs"):
                linux.mount(None, plan.rootfs, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
            result = task(view, plan, data, lambda msg: _send(control, msg))
        _send(control, {"ok": result})
        code = 0
    except BaseException as e:
        try:
            _send(control, _encode_error(e))
        except BaseException:
            pass
    finally:
        os._exit(code)


def _bind(view: _View, b: _Bind) -> None:
    """Mount `b.source` over its destination, created if missing, resolved in the root."""
    target = view.follow(b.destination)
    if target == "/":
        return
    is_dir = os.path.isdir(b.source)
    parent, name = target.strip("/").rpartition("/")[::2]
    pfd = view.root.open_dir(parent, create=True)
    try:
        st = _lstat(pfd, name)
        if st is None:
            if is_dir:
                os.mkdir(name, 0o755, dir_fd=pfd)
            else:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o755, dir_fd=pfd))
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            flags = linux.MS_BIND | (linux.MS_REC if b.recursive else 0)
            linux.mount(b.source, f"/proc/self/fd/{fd}", None, flags)
        finally:
            os.close(fd)
        if b.readonly:
            # Reopened by name, the fd is the new mount's root: remount works on it.
            top = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                linux.mount(None, f"/proc/self/fd/{top}", None,
                            linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
            finally:
                os.close(top)
    finally:
        os.close(pfd)


# ----------------------------------------------------------------------------
# The daemon's side: stat, archive, extract


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


def _stat_in(view: _View, lookup: str, plan: _Plan, asked: str) -> tuple[PathStat, str]:
    """The PathStat of `lookup` and its resolved path; `asked` is the path as
    the caller gave it, which Docker's not-found message repeats."""
    try:
        st, resolved = view.lstat(lookup)
    except FileNotFoundError:
        raise _not_found(asked, plan.ref) from None
    except OSError as e:
        raise _go_error("lstat", lookup, e) from None
    link = view.follow(resolved) if stat.S_ISLNK(st.st_mode) else ""
    return PathStat.from_stat(go_base(lookup), st, link), resolved


def _stat_message(ps: PathStat) -> dict:
    return {"name": ps.name, "size": ps.size, "mode": ps.mode, "mtime_ns": ps.mtime_ns,
            "link_target": ps.link_target}


def _stat_of(msg: dict) -> PathStat:
    return PathStat(msg["name"], msg["size"], msg["mode"], msg["mtime_ns"], msg["link_target"])


def stat_path(manager, ref: str, path: str) -> PathStat:
    """What `path` is in the container (HEAD /containers/{id}/archive).

    Raises NotFound, in Docker's words, when it does not exist.
    """
    def task(view: _View, plan: _Plan, _data, _send) -> dict:
        return _stat_message(_stat_in(view, path, plan, path)[0])

    child, release = _spawn(manager, ref, task, None)
    try:
        result = child.message()["ok"]
        child.wait()
    finally:
        child.close()
        release()
    return _stat_of(result)


@contextmanager
def archive_path(manager, ref: str, path: str) -> Iterator[tuple[PathStat, BinaryIO]]:
    """A tar of `path` in the container (GET /containers/{id}/archive).

    Yields the path's stat and a stream of the archive.  As in Docker, a
    directory's entries are named under the directory's base name ("." for
    a path ending in "/.", none for "/"), anything else by its own name, and
    a symlink is archived as itself.  Errors met while archiving are raised
    when the block ends.
    """
    abs_path = preserve_trailing_dot_or_separator(go_join("/", path), path)

    def task(view: _View, plan: _Plan, data: int, send) -> dict:
        ps, resolved = _stat_in(view, abs_path, plan, path)
        send({"stat": _stat_message(ps)})
        if ps.is_dir:
            source, include = view.open_dir(resolved), "."
        else:
            source, include = view.open_dir(go_dir(resolved)), go_base(resolved)
        # The root's entries are named "/x": its base name "/" stands for none.
        rebase = "" if go_base(abs_path) == "/" else go_base(abs_path)
        try:
            with os.fdopen(data, "wb") as out:
                write_tar(out, source, include, lambda rel: rel.replace(include, rebase, 1))
        finally:
            os.close(source)
        return {}

    child, release = _spawn(manager, ref, task, "out")
    try:
        ps = _stat_of(child.message()["stat"])
        with os.fdopen(child.data, "rb") as stream:
            child.data = None
            yield ps, stream
            abandoned = bool(stream.read(_CHUNK))
        if not abandoned:
            child.message()
            child.wait()
        # else the caller stopped reading early: closing kills the child
    finally:
        child.close()
        release()


def extract_to_dir(manager, ref: str, path: str, content: Readable | Callable[[BinaryIO], None], *,
                   copy_uid_gid: bool = False, allow_overwrite_dir_with_file: bool = False) -> None:
    """Unpack the tar `content` (possibly compressed) into the directory `path`
    of the container (PUT /containers/{id}/archive).

    `content` is a stream to read, or a function that writes the archive
    to the stream it is given (so a local tree is packed straight into the
    container without a pipe and a thread in between).

    Members keep the uid/gid the archive gives them; with `copy_uid_gid`
    they belong to the container's configured user, when it has one.  Both
    as Docker does (its documentation promises root without `-a`, which its
    code has not done since 17.06).
    """
    def task(view: _View, plan: _Plan, data: int, _send) -> dict:
        c = plan.container
        lookup = go_join("/", path)
        try:
            resolved = view.follow(lookup)
            view.lstat(resolved)
        except FileNotFoundError:
            raise _not_found(path, plan.ref) from None
        except OSError as e:
            raise _go_error("lstat", lookup, e) from None
        abs_path = preserve_trailing_dot_or_separator(resolved, path)
        try:
            st, _ = view.lstat(abs_path)
        except OSError as e:
            raise _go_error("lstat", abs_path, e) from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument("extraction point is not a directory")
        check_writable_path(c, resolved)
        owner = None
        user = c.config.get("User") or ""
        if copy_uid_gid and user:
            u = resolve_user(plan.rootfs, user)
            owner = (u.uid, u.gid)
        with os.fdopen(data, "rb") as stream:
            Unpacker(view.root, resolved, resolved, owner=owner,
                     allow_overwrite_dir_with_file=allow_overwrite_dir_with_file).unpack(stream)
        return {}

    child, release = _spawn(manager, ref, task, "in")
    try:
        sink = os.fdopen(child.data, "wb")
        child.data = None
        try:
            if callable(content):
                content(sink)
            else:
                while data := content.read(_CHUNK):
                    sink.write(data)
            sink.flush()
        except BrokenPipeError:
            pass  # the child stopped reading: its message says why
        finally:
            try:
                sink.close()
            except BrokenPipeError:
                pass
        child.message()
        child.wait()
    finally:
        child.close()
        release()


def check_writable_path(c: Container, abs_path: str) -> None:
    """Docker's checkWritablePath: a read-only volume or root filesystem refuses a copy."""
    points = [vol.MountPoint.from_record(r) for r in c.spec.get("MountPoints") or []]
    # The deepest mount holding the path decides (Docker's map order is random).
    for p in sorted(points, key=lambda p: len(go_clean(p.destination)), reverse=True):
        if _inside(abs_path, p.destination):
            if p.rw:
                return
            raise InvalidArgument("mounted volume is marked read-only")
    if c.host_config.get("ReadonlyRootfs"):
        raise InvalidArgument("container rootfs is marked read-only")
