"""Strict, single-pass iteration over the members of a tar stream.

tarfile is lenient where a layer must not be: past the first member it takes
a bad header, a short header or a stream cut inside file data for the end of
the archive and stops quietly.  A layer that ends early is a corrupt layer
(and would otherwise get a digest that no registry has), so every such case
here is DataCorrupt.  The end of the stream is judged as Go's archive/tar
judges it, since that is what produced and what Docker accepts: an
end-of-archive block, or the source ending exactly between members.
"""

from __future__ import annotations

import json
import tarfile
from decimal import Decimal
from collections.abc import Iterator

from berth.errors import DataCorrupt
from berth.layer.stream import CHUNK, SequentialReader

BLOCK = tarfile.BLOCKSIZE

# Go's archive/tar refuses PAX and GNU long-name records above 1 MiB; without
# a bound a header could make us buffer gigabytes.
MAX_SPECIAL_SIZE = 1 << 20
_SPECIAL_TYPES = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                            tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK})


def _ns(ti: tarfile.TarInfo, key: str) -> int | None:
    """A time in nanoseconds, exactly where PAX gives more than tarfile's float."""
    value = ti.pax_headers.get(key)
    if value is None:
        if key != "mtime":
            return None
        value = ti.mtime
    try:
        ns = int(Decimal(str(value)).scaleb(9))
    except (ArithmeticError, ValueError):
        return 0 if key == "mtime" else None
    # What the kernel's 64-bit timestamps can take; beyond it a time is noise.
    return max(-(1 << 63), min(ns, (1 << 63) - 1))


def member_times(ti: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) of a member in nanoseconds, for os.utime(ns=...)."""
    mtime = _ns(ti, "mtime") or 0
    atime = _ns(ti, "atime")
    # As Docker: an access time older than the modification time is not kept.
    if atime is None or atime < mtime:
        atime = mtime
    return atime, mtime


def quote(name: str) -> str:
    """A member name for a one-line message, control characters escaped."""
    return json.dumps(name)


class _Corrupt(Exception):
    """Raised from inside tarfile's parsing, which swallows its own header errors."""


class _StrictTarInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tf):
        fileobj = tf.fileobj
        buf = fileobj.read(BLOCK)
        if not buf:
            # Between members this is Go's clean end; inside a PAX or
            # long-name sequence tarfile reports it as a broken header.
            raise tarfile.EmptyHeaderError("unexpected end of data")
        if len(buf) != BLOCK:
            raise _Corrupt("unexpected end of data")
        try:
            obj = cls.frombuf(buf, tf.encoding, tf.errors)
        except tarfile.EOFHeaderError:
            # One zero block ends the archive; Go insists that a second one,
            # if present, is zero too.
            following = fileobj.read(BLOCK)
            if following.count(0) != len(following):
                raise _Corrupt("invalid tar header after end-of-archive block") from None
            raise
        except tarfile.HeaderError as e:
            raise _Corrupt(f"invalid tar header ({e})") from None
        obj.offset = fileobj.tell() - BLOCK
        if obj.type in _SPECIAL_TYPES and obj.size > MAX_SPECIAL_SIZE:
            raise _Corrupt(f"extended header of {obj.size} bytes is too large")
        try:
            return obj._proc_member(tf)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError,
                tarfile.EmptyHeaderError, tarfile.EOFHeaderError) as e:
            raise _Corrupt(f"invalid tar header ({e})") from None


class TarStream:
    """The members of one tar stream, in order, read in a single pass.

    Iterate to get each TarInfo; while a member is current, `read_file`
    yields its data.  Iterating to the end also consumes the source to its
    end, padding and trailing bytes included, so a caller hashing the source
    sees all of it.
    """

    def __init__(self, reader: SequentialReader):
        self._r = reader
        self._last = ""

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        if self._r.peek(1):
            try:
                tf = tarfile.open(fileobj=self._r, mode="r:", tarinfo=_StrictTarInfo,
                                  encoding="utf-8", errors="surrogateescape")
                while True:
                    ti = tf.next()
                    if ti is None:
                        break
                    # tarfile keeps every member for random access we never do.
                    tf.members.clear()
                    self._last = ti.name
                    yield ti
            except tarfile.ReadError as e:
                # tarfile finds a short member when advancing past its data.
                where = "in" if str(e) == "unexpected end of data" else "after"
                raise DataCorrupt(self._message(str(e), where)) from None
            except _Corrupt as e:
                raise DataCorrupt(self._message(str(e), "after")) from None
        self._r.drain()

    def _message(self, problem: str, where: str) -> str:
        member = f" {where} member {quote(self._last)}" if self._last else ""
        return f"invalid layer tar: {problem}{member}"

    def read_file(self, ti: tarfile.TarInfo) -> Iterator[tuple[int, bytes]]:
        """(offset, data) pieces of a regular member's content, holes of sparse
        members left out."""
        self._r.seek(ti.offset_data)
        pieces = ti.sparse if ti.sparse is not None else [(0, ti.size)]
        for offset, size in pieces:
            while size > 0:
                data = self._r.read(min(size, CHUNK))
                if not data:
                    raise DataCorrupt(f"invalid layer tar: unexpected end of data in member {quote(ti.name)}")
                yield offset, data
                offset += len(data)
                size -= len(data)
