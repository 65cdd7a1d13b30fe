"""What a layer tar may contain, decided member by member.

Every layer is checked by the same rules when it is ingested
(`check_layer_stream`) and again when it is unpacked (`apply_layer`), so an
archive that slipped past one still cannot write outside its root.  The rules
follow Docker's archive package (paths and hard links must stay under the
root, relative symlinks may not point above it, only regular files,
directories, links, devices and fifos are allowed) and add two where Docker
leans on extracting inside a chroot: absolute names are refused rather than
taken as relative, and no member may be reached through a symlink that the
same layer created.
"""

from __future__ import annotations

import enum
import tarfile
from dataclasses import dataclass

from berth.errors import DataCorrupt
from berth.layer.stream import Compression, Readable, open_layer_stream
from berth.layer.tarstream import TarStream, quote

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"
    WHITEOUT = "whiteout"   # path names the entry to delete
    OPAQUE = "opaque"       # path names the directory whose lower content goes
    ROOT = "root"           # "." — Docker leaves the root's attributes alone
    IGNORED = "ignored"     # AUFS bookkeeping at the top level


_TYPES = {
    tarfile.REGTYPE: Kind.FILE,
    tarfile.AREGTYPE: Kind.FILE,
    tarfile.GNUTYPE_SPARSE: Kind.FILE,
    tarfile.DIRTYPE: Kind.DIR,
    tarfile.SYMTYPE: Kind.SYMLINK,
    tarfile.LNKTYPE: Kind.HARDLINK,
    tarfile.CHRTYPE: Kind.CHAR,
    tarfile.BLKTYPE: Kind.BLOCK,
    tarfile.FIFOTYPE: Kind.FIFO,
}


# (uid_t)-1 means "leave unchanged" to chown, so it cannot be an owner.
_MAX_ID = (1 << 32) - 2
_MAX_DEV = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class Member:
    """One admitted tar member, its name reduced to a clean relative path."""

    path: str        # "a/b/c", "" for the root
    kind: Kind
    info: tarfile.TarInfo
    link: str = ""   # hard link target as a clean path, or symlink target verbatim


@dataclass(frozen=True, slots=True)
class LayerStats:
    members: int         # tar members, whiteouts included
    file_bytes: int      # uncompressed size of regular files' content
    compression: Compression


class _Escape(Exception):
    pass


def clean_path(name: str) -> str:
    """`name` with `.` and `..` resolved lexically, as Go's filepath.Clean does.

    Raises _Escape if `..` climbs above the root.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if not parts:
                raise _Escape
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _refuse(name: str, why: str) -> DataCorrupt:
    return DataCorrupt(f"invalid layer: member {quote(name)} {why}")


class MemberChecker:
    """Admits the members of one layer, in archive order.

    Stateful because one rule spans members: a symlink created by this layer
    must not be a directory component of a later member.
    """

    def __init__(self) -> None:
        self._symlinks: set[str] = set()

    def admit(self, ti: tarfile.TarInfo) -> Member:
        name = ti.name
        if "\0" in name or "\0" in ti.linkname:
            raise _refuse(name, "has a NUL byte in its name")
        if name.startswith("/"):
            raise _refuse(name, "has an absolute path")
        try:
            path = clean_path(name)
        except _Escape:
            raise _refuse(name, "is outside of the layer root") from None

        if not (0 <= ti.uid <= _MAX_ID and 0 <= ti.gid <= _MAX_ID):
            raise _refuse(name, f"has invalid owner {ti.uid}:{ti.gid}")

        parent, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            return self._whiteout(ti, path, parent, base)

        kind = _TYPES.get(ti.type)
        if kind is None:
            raise _refuse(name, f"has unsupported tar type {ti.type.decode('latin-1')!r}")
        if kind in (Kind.CHAR, Kind.BLOCK) and not (0 <= ti.devmajor <= _MAX_DEV and 0 <= ti.devminor <= _MAX_DEV):
            raise _refuse(name, f"has invalid device number {ti.devmajor}:{ti.devminor}")
        if path == "":
            if kind is not Kind.DIR:
                raise _refuse(name, "would replace the layer root")
            return Member("", Kind.ROOT, ti)
        self._check_parents(name, path)

        link = ""
        if kind is Kind.HARDLINK:
            link = self._hardlink_target(ti, path)
        elif kind is Kind.SYMLINK:
            link = self._symlink_target(ti, parent)

        if kind is Kind.SYMLINK or (kind is Kind.HARDLINK and link in self._symlinks):
            self._symlinks.add(path)
        elif self._symlinks:
            self._symlinks.discard(path)
        return Member(path, kind, ti, link)

    def _whiteout(self, ti: tarfile.TarInfo, path: str, parent: str, base: str) -> Member:
        if base == OPAQUE_MARKER:
            self._check_parents(ti.name, path)
            return Member(parent, Kind.OPAQUE, ti)
        if base.startswith(WHITEOUT_META_PREFIX) and parent == "":
            return Member(path, Kind.IGNORED, ti)
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise _refuse(ti.name, "is a whiteout of nothing")
        self._check_parents(ti.name, path)
        target = f"{parent}/{victim}" if parent else victim
        self._symlinks.discard(target)
        return Member(target, Kind.WHITEOUT, ti)

    def _check_parents(self, name: str, path: str) -> None:
        if not self._symlinks:
            return
        i = path.find("/")
        while i != -1:
            if path[:i] in self._symlinks:
                raise _refuse(name, f"would be written through symlink {quote(path[:i])}")
            i = path.find("/", i + 1)

    def _hardlink_target(self, ti: tarfile.TarInfo, path: str) -> str:
        target = ti.linkname
        if target.startswith("/"):
            raise _refuse(ti.name, f"is a hard link to absolute path {quote(target)}")
        try:
            link = clean_path(target)
        except _Escape:
            raise _refuse(ti.name, f"is a hard link to {quote(target)}, outside of the layer root") from None
        if link == "" or link == path:
            raise _refuse(ti.name, f"is a hard link to {quote(target)}")
        i = link.find("/")
        while self._symlinks and i != -1:
            if link[:i] in self._symlinks:
                raise _refuse(ti.name, f"is a hard link through symlink {quote(link[:i])}")
            i = link.find("/", i + 1)
        return link

    def _symlink_target(self, ti: tarfile.TarInfo, parent: str) -> str:
        target = ti.linkname
        if target == "":
            raise _refuse(ti.name, "is a symlink to nothing")
        if not target.startswith("/"):
            try:
                clean_path(f"{parent}/{target}")
            except _Escape:
                raise _refuse(ti.name, f"is a symlink to {quote(target)}, outside of the layer root") from None
        return target


def check_layer_stream(fileobj: Readable) -> LayerStats:
    """Validate a layer tar in one pass, reading `fileobj` to its very end.

    Meant to run while the caller hashes and stores the bytes it hands over:
    file data is skipped, not inspected, and the stream is never seeked.
    Compressed input is recognised by its magic bytes.  Raises DataCorrupt,
    naming the member, for anything `apply_layer` would refuse.
    """
    reader, compression = open_layer_stream(fileobj)
    checker = MemberChecker()
    members = file_bytes = 0
    for ti in TarStream(reader):
        member = checker.admit(ti)
        members += 1
        if member.kind is Kind.FILE:
            file_bytes += ti.size
    return LayerStats(members, file_bytes, compression)
