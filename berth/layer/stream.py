"""Forward-only reading of layer blobs: buffering, peeking, decompression.

Layers arrive from pipes, sockets and tees that hash what passes through, so
nothing here ever seeks the source backwards or reads it twice.
"""

from __future__ import annotations

import bz2
import enum
import gzip
import io
import lzma
import zlib
from typing import BinaryIO, Protocol

from berth.errors import DataCorrupt, Unavailable

CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZSTD = "zstd"


_MAGIC = (
    (b"\x1f\x8b", Compression.GZIP),
    (b"BZh", Compression.BZIP2),
    (b"\xfd7zXZ\x00", Compression.XZ),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
)


def detect_compression(head: bytes) -> Compression:
    """The compression of a blob starting with `head` (at least 6 bytes if available)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return Compression.NONE


class SequentialReader:
    """A buffered reader over a non-seekable source with peek and forward seek.

    tarfile wants tell() and seek(); when members are read in order it only
    ever seeks forward, which this provides by reading and discarding, so the
    source sees every byte exactly once.  read(n) returns n bytes unless the
    source ends first (sources such as sockets may return short reads).
    """

    def __init__(self, source: Readable, chunk: int = CHUNK):
        self._src = source
        self._chunk = chunk
        self._buf = b""
        self._off = 0
        self._pos = 0
        self._eof = False

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def _fill(self, n: int) -> bytes:
        if self._eof:
            return b""
        data = self._src.read(max(n, self._chunk))
        if not data:
            self._eof = True
        return data

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._off:]]
            self._buf, self._off = b"", 0
            while chunk := self._fill(self._chunk):
                parts.append(chunk)
            data = b"".join(parts)
            self._pos += len(data)
            return data
        avail = len(self._buf) - self._off
        if n <= avail:
            data = self._buf[self._off:self._off + n]
            self._off += n
            self._pos += n
            return data
        parts = [self._buf[self._off:]] if avail else []
        need = n - avail
        self._buf, self._off = b"", 0
        while need > 0:
            chunk = self._fill(need)
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._off = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        data = b"".join(parts) if len(parts) != 1 else parts[0]
        self._pos += len(data)
        return data

    def peek(self, n: int) -> bytes:
        """Up to n bytes ahead, without consuming them."""
        avail = len(self._buf) - self._off
        if avail < n:
            parts = [self._buf[self._off:]]
            while avail < n and (chunk := self._fill(n - avail)):
                parts.append(chunk)
                avail += len(chunk)
            self._buf, self._off = b"".join(parts), 0
        return self._buf[self._off:self._off + n]

    def skip(self, n: int) -> int:
        """Discard up to n bytes; returns how many were there."""
        avail = len(self._buf) - self._off
        if n <= avail:
            self._off += n
            self._pos += n
            return n
        done = avail
        self._buf, self._off = b"", 0
        while done < n:
            chunk = self._fill(min(n - done, self._chunk))
            if not chunk:
                break
            if len(chunk) > n - done:
                self._buf, self._off = chunk, n - done
                done = n
            else:
                done += len(chunk)
        self._pos += done
        return done

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("layer streams can only seek forward")
        if pos < self._pos:
            raise io.UnsupportedOperation("layer streams can only seek forward")
        # Seeking past the end leaves the position at the end, so a following
        # read() comes back empty as it would on a truncated file.
        self.skip(pos - self._pos)
        return self._pos

    def drain(self) -> int:
        """Consume the source to its end; returns the number of bytes discarded."""
        n = len(self._buf) - self._off
        self._buf, self._off = b"", 0
        while chunk := self._fill(self._chunk):
            n += len(chunk)
        self._pos += n
        return n


class _SourceError(Exception):
    """Carries an I/O error of the raw source through a decompressor, so that
    it is not mistaken for corrupt compressed data."""


class _Guarded:
    def __init__(self, source: Readable):
        self._src = source

    def read(self, n: int = -1) -> bytes:
        try:
            return self._src.read(n)
        except Exception as e:
            raise _SourceError() from e


class _ZstdFrames:
    """zstd frames decompressed with a bound on memory and a check for a cut
    frame, which zstandard's own readers take for a clean end."""

    # One zstd block of a few bytes can expand to 128 KiB, so input is fed
    # in small slices to keep each call's output bounded.
    _SLICE = 1024

    def __init__(self, src: Readable, zstandard):
        self._src = src
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._d = self._new()
        self._in_frame = False
        self._pending = memoryview(b"")
        self._out = b""

    def read(self, n: int = -1) -> bytes:
        while not self._out:
            if not self._pending:
                raw = self._src.read(CHUNK)
                if not raw:
                    if self._in_frame:
                        raise DataCorrupt("invalid zstd layer data: unexpected end of data")
                    return b""
                self._pending = memoryview(raw)
            piece, self._pending = self._pending[:self._SLICE], self._pending[self._SLICE:]
            self._in_frame = True
            self._out = self._d.decompress(piece)
            if self._d.eof:
                # Concatenated frames are one stream, as zstd(1) treats them.
                rest = self._d.unused_data
                self._d, self._in_frame = self._new(), False
                if rest:
                    self._pending = memoryview(rest + bytes(self._pending))
        if n < 0 or n >= len(self._out):
            data, self._out = self._out, b""
        else:
            data, self._out = self._out[:n], self._out[n:]
        return data


class _Decompressing:
    """Decompressed bytes of a raw stream; bad or truncated data is DataCorrupt."""

    def __init__(self, raw: Readable, kind: Compression):
        self.kind = kind
        src = _Guarded(raw)
        if kind is Compression.GZIP:
            self._f: BinaryIO = gzip.GzipFile(fileobj=src, mode="rb")
            self._errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
        elif kind is Compression.BZIP2:
            self._f = bz2.BZ2File(src, mode="rb")
            self._errors = (OSError, EOFError)
        elif kind is Compression.XZ:
            self._f = lzma.LZMAFile(src, mode="rb", format=lzma.FORMAT_XZ)
            self._errors = (lzma.LZMAError, EOFError)
        else:
            try:
                import zstandard
            except ImportError:
                raise Unavailable("zstd-compressed layers need the Python 'zstandard' package") from None
            self._f = _ZstdFrames(src, zstandard)
            self._errors = (zstandard.ZstdError,)

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._f.read(n)
        except _SourceError as e:
            raise e.__cause__ from None
        except self._errors as e:
            raise DataCorrupt(f"invalid {self.kind.value} layer data: {e}") from None
        return data


def open_layer_stream(source: Readable) -> tuple[SequentialReader, Compression]:
    """A forward-only reader of the uncompressed tar in `source`.

    The compression is sniffed from the magic bytes, as `docker load` does,
    so plain tar and gzip/bzip2/xz (zstd with the optional package) are all
    accepted.  Reading the returned stream to its end reads `source` to its
    end.
    """
    raw = SequentialReader(source)
    kind = detect_compression(raw.peek(6))
    if kind is Compression.NONE:
        return raw, kind
    return SequentialReader(_Decompressing(raw, kind)), kind
