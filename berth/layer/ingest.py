"""Bringing a layer tar into the blob store in one pass.

Whatever arrives (plain tar, gzip, from a file, an archive member or a
socket) is read once: the uncompressed bytes are hashed into the diff ID and
checked member by member for hostile paths while the blob is written.  Gzip
input is stored as received, so pulled blobs keep their registry digest.
Plain input (build steps, commit, import, load) is stored plain, as Docker's
layer store keeps it: compressing a build step's layer cost more than
running most steps, and only a registry wants it compressed, so push
compresses (`compress_layer`), as Docker's push does.
"""

from __future__ import annotations

import hashlib
import threading
import queue
import zlib
from typing import BinaryIO

from berth.errors import DataCorrupt
from berth.image import mediatypes as mt
from berth.image.config import LayerDescriptor
from berth.layer.safety import check_layer_stream
from berth.store.blobs import BlobStore

CHUNK = 1 << 20
# Level 1 costs a few percent of size and is several times faster than 6;
# layers are compressed only on their way to a registry.
GZIP_LEVEL = 1
_GZIP_MAGIC = b"\x1f\x8b"
_UNSUPPORTED = {b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


class _Peekable:
    def __init__(self, src: BinaryIO):
        self._src = src
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self._src.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if n < 0:
                return head + self._src.read()
            if len(head) >= n:
                self._head = head[n:]
                return head[:n]
            return head + self._src.read(n - len(head))
        return self._src.read(n)


class _Background:
    """Runs a byte sink in a thread so compression overlaps parsing.

    zlib and sha256 release the GIL, so on two cores the copy is split
    between the reader and this writer.
    """

    def __init__(self, sink):
        self._q: queue.Queue = queue.Queue(maxsize=16)
        self._sink = sink
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while (chunk := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._sink(chunk)
                except BaseException as e:  # surfaced in close()
                    self._error = e

    def put(self, chunk: bytes):
        self._q.put(chunk)

    def close(self):
        self._q.put(None)
        self._thread.join()
        if self._error:
            raise self._error


class _PlainTee:
    """Reads plain tar bytes into the blob writer (whose digest is the diff ID)."""

    media_type = mt.OCI_LAYER

    def __init__(self, src, writer):
        self._src = src
        self.size = 0
        self._writer = writer
        self._bg = _Background(writer.write)

    @property
    def diff_id(self) -> str:
        return self._writer.digest

    def read(self, n=-1):
        data = self._src.read(n if n and n > 0 else CHUNK)
        if data:
            self.size += len(data)
            self._bg.put(data)
        return data

    def drain(self):
        while self.read(CHUNK):
            pass
        self.close()

    def close(self):
        if self._bg is not None:
            bg, self._bg = self._bg, None
            bg.close()


class _GzipTee:
    """Reads gzip bytes into the blob writer, yielding the decompressed tar."""

    media_type = mt.OCI_LAYER_GZIP

    def __init__(self, src, writer):
        self._src = src
        self._writer = writer
        self._dec = zlib.decompressobj(31)
        self._buf = b""
        self.diff = hashlib.sha256()
        self.size = 0
        self._eof = False

    def _fill(self, want):
        while len(self._buf) < want and not self._eof:
            raw = self._src.read(CHUNK)
            if not raw:
                if not self._dec.eof:
                    raise DataCorrupt("unexpected EOF in compressed layer")
                self._eof = True
                break
            self._writer.write(raw)
            while raw:
                if self._dec.eof:
                    # A multi-member gzip (pigz, concatenated streams).
                    raw = self._dec.unused_data
                    self._dec = zlib.decompressobj(31)
                    if not raw:
                        break
                try:
                    out = self._dec.decompress(raw)
                except zlib.error as e:
                    raise DataCorrupt(f"invalid gzip data in layer: {e}") from None
                self.diff.update(out)
                self.size += len(out)
                self._buf += out
                raw = self._dec.unused_data if self._dec.eof else b""

    def read(self, n=-1):
        want = n if n and n > 0 else CHUNK
        self._fill(want)
        out, self._buf = self._buf[:want], self._buf[want:]
        return out

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.diff.hexdigest()

    def drain(self):
        while self.read(CHUNK):
            pass

    def close(self):
        pass


def ingest_layer(src: BinaryIO, blobs: BlobStore, added: list[str] | None = None) -> LayerDescriptor:
    """Store one layer tar (plain or gzip) as it comes; validate it on the way.

    The digest is appended to `added` when the blob was not stored before, so
    that a caller whose operation fails later can remove what it brought in.
    """
    src = _Peekable(src)
    head = src.peek(6)
    for magic, name in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise DataCorrupt(f"unsupported layer compression: {name}")
    with blobs.writer() as writer:
        tee = (_GzipTee if head.startswith(_GZIP_MAGIC) else _PlainTee)(src, writer)
        try:
            check_layer_stream(tee)
            tee.drain()
        finally:
            tee.close()
        digest = writer.commit()
        if added is not None and writer.created:
            added.append(digest)
        return LayerDescriptor(digest=digest, diff_id=tee.diff_id, size=tee.size,
                               compressed_size=writer.size, media_type=tee.media_type)


def compress_layer(layer: LayerDescriptor, blobs: BlobStore, added: list[str] | None = None) -> LayerDescriptor:
    """A gzip copy of a layer stored plain, as a blob of its own (for a registry).

    `added` as for `ingest_layer`.
    """
    comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    with blobs.open(layer.digest) as src, blobs.writer() as writer:
        while chunk := src.read(CHUNK):
            writer.write(comp.compress(chunk))
        writer.write(comp.flush())
        digest = writer.commit()
        if added is not None and writer.created:
            added.append(digest)
    return LayerDescriptor(digest=digest, diff_id=layer.diff_id, size=layer.size,
                           compressed_size=writer.size, media_type=mt.OCI_LAYER_GZIP)
