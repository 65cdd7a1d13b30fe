"""The build context: what a Dockerfile's ADD and COPY can see.

A directory context is used in place, filtered by its .dockerignore exactly
as the Docker CLI filters what it sends (berth.build.dockerignore); a tar
context (`berth build - < ctx.tar`) is unpacked once.  Both are served as a
`SourceTree`, as is an image's root filesystem for `COPY --from`.

Cache keys for ADD/COPY hash file *content and metadata*, never mtimes,
the way Docker's tarsum does: per entry, the tar header fields name, mode,
uid, gid, size, type, link target and device numbers, then the content.
Directories hash the sorted sums of everything in them.  Identical inputs
give Docker's own `file:<hex>`/`dir:<hex>` strings, so `history` matches.
"""

from __future__ import annotations

import errno
import functools
import grp
import hashlib
import io
import os
import pwd
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from berth.build import dockerignore
from berth.build.gopath import clean
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.layer.rootfs import RootDir

__all__ = ["BuildContext", "DirectoryTree", "Entry", "SourceTree", "context_from_archive",
           "context_from_directory", "human_size", "is_archive"]

DEFAULT_DOCKERFILE = "Dockerfile"
MAX_SYMLINKS = 255          # FollowSymlinkInScope's limit
_BLOCK = 512
_CHUNK = 1 << 20
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
          stat.S_IFCHR: "char", stat.S_IFBLK: "block"}
_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO,
              "char": stat.S_IFCHR, "block": stat.S_IFBLK, "socket": stat.S_IFSOCK}
_TYPEFLAGS = {"file": "0", "symlink": "2", "char": "3", "block": "4", "dir": "5", "fifo": "6",
              "socket": "0"}


@functools.cache
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.cache
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


@dataclass(frozen=True)
class Entry:
    """One file of a source tree, as the tar header Docker hashes describes it."""

    kind: str             # file, dir, symlink, fifo, char, block or socket
    mode: int             # permission bits with setuid, setgid and sticky
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str = ""
    rdev: int = 0

    @classmethod
    def of(cls, st: os.stat_result, linkname: str = "", owner: tuple[int, int] | None = None) -> Entry:
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "socket")
        uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
        return cls(kind=kind, mode=stat.S_IMODE(st.st_mode), uid=uid, gid=gid,
                   size=st.st_size if kind == "file" else 0, mtime_ns=st.st_mtime_ns,
                   linkname=linkname, rdev=st.st_rdev if kind in ("char", "block") else 0)

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    def typeflag(self) -> str:
        return _TYPEFLAGS[self.kind]


class SourceTree:
    """Files that ADD/COPY read: lookups confined to the tree, symlinks resolved in it."""

    root: Path
    # Docker hashes a context from the tar the CLI sent (permission bits,
    # no owner names) but an image or a download from the files themselves
    # (file type bits in the mode, owner names looked up on the host).
    typed_modes = False
    owner_names = False

    def __init__(self) -> None:
        self._sums: dict[str, str] = {}

    def lookup(self, rel: str) -> Entry | None:
        """The entry at `rel` (clean, relative, no symlinks on the way; "" is the root)."""
        raise NotImplementedError

    def children(self, rel: str) -> list[str]:
        """Names in directory `rel`, in byte order."""
        raise NotImplementedError

    def open(self, rel: str) -> BinaryIO:
        raise NotImplementedError

    def resolve(self, rel: str) -> str:
        """`rel` with every symlink followed, staying inside the tree (Docker's
        FollowSymlinkInScope: `..` and absolute targets stop at the root)."""
        pending = [p for p in rel.split("/") if p not in ("", ".")]
        pending.reverse()
        resolved: list[str] = []
        links = 0
        while pending:
            comp = pending.pop()
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, comp])
            entry = self.lookup(candidate)
            if entry is not None and entry.kind == "symlink":
                links += 1
                if links > MAX_SYMLINKS:
                    raise InvalidArgument(f"too many links in {rel}")
                if entry.linkname.startswith("/"):
                    resolved = []
                more = [p for p in entry.linkname.split("/") if p not in ("", ".")]
                pending.extend(reversed(more))
                continue
            resolved.append(comp)
        return "/".join(resolved)

    def walk(self, rel: str) -> Iterator[str]:
        """`rel` and everything below it, a directory before its content."""
        yield rel
        entry = self.lookup(rel)
        if entry is not None and entry.is_dir:
            for name in self.children(rel):
                yield from self.walk(f"{rel}/{name}" if rel else name)

    def entry_sum(self, rel: str) -> str:
        """tarsum v1 of one entry: its header fields, then its content."""
        cached = self._sums.get(rel)
        if cached is not None:
            return cached
        entry = self.lookup(rel)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), rel)
        h = hashlib.sha256()
        name = rel + "/" if entry.is_dir else rel
        major, minor = (os.major(entry.rdev), os.minor(entry.rdev)) if entry.rdev else (0, 0)
        mode = entry.mode | (_TYPE_BITS[entry.kind] if self.typed_modes else 0)
        uname, gname = (_user_name(entry.uid), _group_name(entry.gid)) if self.owner_names else ("", "")
        for key, value in (("name", name), ("mode", mode), ("uid", entry.uid), ("gid", entry.gid),
                           ("size", entry.size), ("typeflag", entry.typeflag()),
                           ("linkname", entry.linkname), ("uname", uname), ("gname", gname),
                           ("devmajor", major), ("devminor", minor)):
            h.update(f"{key}{value}".encode("utf-8", "surrogateescape"))
        if entry.kind == "file" and entry.size:
            with self.open(rel) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        digest = h.hexdigest()
        self._sums[rel] = digest
        return digest

    def content_hash(self, rel: str) -> str:
        """Docker's hash of one path: the sum of what a symlink leads to;
        a path leading out of the tree hashes as itself."""
        target = self.resolve(rel)
        if self.lookup(target) is None:
            return rel
        return self.entry_sum(target)

    def source_hash(self, rel: str) -> str:
        """The cache key of a COPY source: `file:<sum>` or `dir:<sum of sums>`."""
        target = self.resolve(rel)
        entry = self.lookup(target)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, "file does not exist", rel)
        if not entry.is_dir:
            return "file:" + self.content_hash(rel)
        sums = sorted(self.content_hash(p) for p in self.walk(target) if p)
        return "dir:" + hashlib.sha256(",".join(sums).encode()).hexdigest()


class ContextTree(SourceTree):
    """A build context: the entries a walk admitted, over a real directory.

    Every admitted path exists under `root` with no symlink on the way (the
    walk never follows one), so content is read by plain path.
    """

    def __init__(self, root: Path, entries: dict[str, Entry]):
        super().__init__()
        self.root = root
        self.entries = entries
        children: dict[str, set[str]] = {"": set()}
        for rel, entry in entries.items():
            if entry.is_dir:
                children.setdefault(rel, set())
            # Parents the walk did not admit still hold what it re-included.
            while rel:
                parent, _, name = rel.rpartition("/")
                known = parent in children
                children.setdefault(parent, set()).add(name)
                if known:
                    break
                rel = parent
        self._children = {k: sorted(v, key=os.fsencode) for k, v in children.items()}

    def lookup(self, rel: str) -> Entry | None:
        if rel == "":
            return _ROOT_DIR
        entry = self.entries.get(rel)
        if entry is None and rel in self._children:
            return _IMPLIED_DIR  # a parent of re-included files, created on unpack
        return entry

    def children(self, rel: str) -> list[str]:
        return list(self._children.get(rel, ()))

    def open(self, rel: str) -> BinaryIO:
        return open(os.open(self.root / rel, _READ), "rb")


_ROOT_DIR = Entry(kind="dir", mode=0o755, uid=0, gid=0, size=0, mtime_ns=0)
# Docker's unpacker makes a missing parent directory 0755 root:root.
_IMPLIED_DIR = _ROOT_DIR


class DirectoryTree(SourceTree):
    """A whole directory, resolved as under chroot: an image's root filesystem
    for `COPY --from`, or a downloaded file for `ADD <url>`."""

    typed_modes = True
    owner_names = True

    def __init__(self, root: Path):
        super().__init__()
        self.root = Path(root)
        self.dir = RootDir(self.root)

    def close(self) -> None:
        self.dir.close()

    def __enter__(self) -> DirectoryTree:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def changed(self) -> None:
        """Forget cached lookups after the tree was written to."""
        self.dir.invalidate()
        self._sums.clear()

    def _parent(self, rel: str) -> tuple[int, str]:
        return self.dir.split(rel)

    def lookup(self, rel: str) -> Entry | None:
        if rel == "":
            return Entry.of(os.stat(self.dir.fd))
        try:
            dfd, name = self._parent(rel)
        except (OSError, BerthError):
            return None
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            link = os.readlink(name, dir_fd=dfd) if stat.S_ISLNK(st.st_mode) else ""
        except OSError:
            return None
        finally:
            os.close(dfd)
        return Entry.of(st, link)

    def children(self, rel: str) -> list[str]:
        fd = self.dir.open_dir(rel)
        try:
            dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            return sorted(os.listdir(dfd), key=os.fsencode)
        finally:
            os.close(dfd)

    def open(self, rel: str) -> BinaryIO:
        dfd, name = self._parent(rel)
        try:
            return open(os.open(name, _READ, dir_fd=dfd), "rb")
        finally:
            os.close(dfd)


@dataclass
class BuildContext:
    """A build context ready for the builder: its files and its Dockerfile."""

    tree: SourceTree
    dockerfile: str                 # the Dockerfile's text
    dockerfile_name: str            # as Docker names it in messages
    size: int                       # bytes the Docker CLI would send
    _cleanup: Callable[[], None] | None = None

    def close(self) -> None:
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def _tar_entry_size(rel: str, entry: Entry) -> int:
    """Bytes Go's tar writer spends on one entry (USTAR, PAX for long names)."""
    name = rel + "/" if entry.is_dir else rel
    size = _BLOCK + (-(-entry.size // _BLOCK) * _BLOCK if entry.kind == "file" else 0)
    if not _fits_ustar(name) or len(entry.linkname) > 100 or not entry.linkname.isascii():
        records = _pax_record("path", name) + (_pax_record("linkpath", entry.linkname)
                                                if len(entry.linkname) > 100 else "")
        size += _BLOCK + -(-len(records.encode()) // _BLOCK) * _BLOCK
    return size


def _fits_ustar(name: str) -> bool:
    if not name.isascii():
        return False
    if len(name) <= 100:
        return True
    cut = name.rfind("/", 0, 156)
    while cut > 0:
        if len(name) - cut - 1 <= 100:
            return True
        cut = name.rfind("/", 0, cut)
    return False


def _pax_record(key: str, value: str) -> str:
    body = f" {key}={value}\n"
    n = len(body.encode())
    length = n + len(str(n))
    if len(str(length)) != len(str(n)):
        length += 1
    return f"{length}{body}"


def context_from_directory(path: str, dockerfile: str | None = None,
                           dockerfile_text: str | None = None) -> BuildContext:
    """A directory context, as the Docker CLI prepares it.

    `dockerfile` is relative to the current directory (not the context),
    as with `docker build -f`; `dockerfile_text` is a Dockerfile read from
    standard input (`-f -`).
    """
    if not os.path.exists(path):
        raise NotFound(f'unable to prepare context: path "{path}" not found')
    try:
        root = Path(os.path.realpath(path, strict=True))
    except OSError as e:
        raise InvalidArgument(f"unable to prepare context: unable to evaluate symlinks in context path: "
                              f"{e.strerror.lower()}: {path}") from None
    if not root.is_dir():
        raise InvalidArgument(f"unable to prepare context: context must be a directory: {root}")
    name = DEFAULT_DOCKERFILE
    if dockerfile_text is None:
        if dockerfile:
            df = Path(os.path.abspath(dockerfile))
        else:
            df = root / DEFAULT_DOCKERFILE
            if not os.path.lexists(df) and os.path.lexists(root / DEFAULT_DOCKERFILE.lower()):
                df = root / DEFAULT_DOCKERFILE.lower()
        try:
            df = Path(os.path.realpath(df, strict=True))
            dockerfile_text = _read_text(df)
        except FileNotFoundError:
            raise NotFound("unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                           f"lstat {df}: no such file or directory") from None
        except IsADirectoryError:
            raise InvalidArgument(f"unable to prepare context: {df} is a directory") from None
        name = os.path.relpath(df, root) if df.is_relative_to(root) else df.name
    matcher = None
    ignore = root / ".dockerignore"
    if ignore.is_file():
        try:
            matcher = dockerignore.PatternMatcher(dockerignore.read_patterns(_read_text(ignore)))
        except InvalidArgument as e:
            raise InvalidArgument(f"failed to parse .dockerignore: {e}") from None
    entries: dict[str, Entry] = {}
    size = 2 * _BLOCK
    for rel, st in dockerignore.walk(root, matcher):
        link = os.readlink(root / rel) if stat.S_ISLNK(st.st_mode) else ""
        # The CLI sends everything as root:root.
        entry = Entry.of(st, link, owner=(0, 0))
        entries[rel] = entry
        size += _tar_entry_size(rel, entry)
    # The CLI sends the Dockerfile and .dockerignore even when they are
    # ignored (the daemon drops them), and a Dockerfile from elsewhere too.
    if name not in entries:
        size += _tar_entry_size(name, Entry("file", 0o600, 0, 0, len(dockerfile_text.encode()), 0))
    if matcher is not None and ".dockerignore" not in entries and name != ".dockerignore":
        size += _tar_entry_size(".dockerignore", Entry.of(ignore.stat(), owner=(0, 0)))
    return BuildContext(ContextTree(root, entries), dockerfile_text, name, size)


def is_archive(head: bytes) -> bool:
    """Whether the first bytes of a stream start a (compressed) tar (the CLI's IsArchive)."""
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")):
        return True
    if len(head) < _BLOCK:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:_BLOCK], "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


class _Counting(io.RawIOBase):
    def __init__(self, src: BinaryIO, head: bytes):
        self._src, self._head, self.count = src, head, len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._src.read(len(b))
        b[:len(data)] = data
        self.count += len(data)
        return len(data)


def context_from_archive(stream: BinaryIO, workdir: Path, dockerfile: str | None = None) -> BuildContext:
    """A context read from a stream: a tar (plain or compressed) to unpack,
    or, as with `docker build - < Dockerfile`, a lone Dockerfile.

    `workdir` is a fresh directory that the context owns: closing the
    context removes it.
    """
    from berth.layer.apply import apply_layer

    def cleanup() -> None:
        shutil.rmtree(workdir, ignore_errors=True)

    try:
        head = stream.read(_BLOCK)
        while len(head) < _BLOCK:
            more = stream.read(_BLOCK - len(head))
            if not more:
                break
            head += more
        if not is_archive(head):
            if dockerfile == "-":
                raise InvalidArgument("build context is not an archive")
            text = (head + stream.read()).decode("utf-8", "replace")
            entry = Entry("file", 0o600, 0, 0, len(text.encode()), 0)
            return BuildContext(ContextTree(workdir, {}), text, DEFAULT_DOCKERFILE,
                                2 * _BLOCK + _tar_entry_size(DEFAULT_DOCKERFILE, entry), cleanup)
        root = workdir / "context"
        root.mkdir()
        counting = _Counting(stream, head)
        apply_layer(io.BufferedReader(counting, _CHUNK), root)
        name = dockerfile or DEFAULT_DOCKERFILE
        candidates = [name] if dockerfile else [name, name.lower()]
        found = next((c for c in candidates if (root / clean(c)).is_file()), None)
        if found is None:
            raise NotFound(f"Cannot locate specified Dockerfile: {name}")
        found = clean(found)
        text = _read_text(root / found)
        entries = {rel: Entry.of(st, os.readlink(root / rel) if stat.S_ISLNK(st.st_mode) else "")
                   for rel, st in dockerignore.walk(root, None)}
        ignore = root / ".dockerignore"
        if ignore.is_file():
            # The daemon drops the Dockerfile and .dockerignore when they are ignored.
            matcher = dockerignore.PatternMatcher(dockerignore.read_patterns(_read_text(ignore)))
            for rel in (".dockerignore", found):
                if matcher.matches(rel):
                    entries.pop(rel, None)
    except BaseException:
        cleanup()
        raise
    return BuildContext(ContextTree(root, entries), text, found, counting.count, cleanup)


def human_size(n: float) -> str:
    """go-units' HumanSize: four significant digits, decimal units (`2.048kB`)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"
