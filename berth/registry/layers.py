"""A registry layer into the blob store, verified and validated in one pass.

The bytes go, as received, into a blob writer that expects the manifest's
digest (so the stored blob is the registry's blob and nothing is published
under that name unless it matches), while the decompressed tar is hashed
into the diff ID and checked member by member by the same checker every
ingested layer passes (`check_layer_stream`), or, when the caller asks,
unpacked as it arrives (`apply_layer` admits members with that checker),
as Docker extracts while it pulls.  A helper thread reads,
stores and inflates; the caller's thread parses.  A download killed midway
leaves only a staging file.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path
from typing import Callable

from berth.errors import DataCorrupt
from berth.image.config import LayerDescriptor
from berth.layer.apply import apply_layer
from berth.layer.safety import check_layer_stream
from berth.layer.stream import Readable, open_layer_stream
from berth.registry.manifests import Descriptor
from berth.store.blobs import BlobStore

CHUNK = 1 << 20


class _Tee:
    """Raw bytes on their way to a sink, counted and capped at the declared size."""

    def __init__(self, src: Readable, sink: Callable[[bytes], object], limit: int,
                 on_bytes: Callable[[int], None], digest: str):
        self._src = src
        self._sink = sink
        self._limit = limit
        self._on_bytes = on_bytes
        self._digest = digest
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self.count += len(data)
            if self.count > self._limit:
                raise DataCorrupt(f"layer {self._digest} is larger than the {self._limit} bytes "
                                  "its manifest declares")
            self._sink(data)
            self._on_bytes(self.count)
        return data


class _Hashing:
    def __init__(self, src: Readable):
        self._src = src
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_EOF = object()


class _Pipe:
    """Decompressed chunks handed from the thread that downloads and inflates
    a layer to the one that parses it: zlib and sha256 release the GIL, the
    tar parser does not, so on two cores the two halves overlap."""

    def __init__(self):
        self._q: queue.Queue = queue.Queue(maxsize=8)
        self._abandoned = threading.Event()
        self._buf = b""
        self._eof = False

    def put(self, item) -> bool:
        """Hand over a chunk; False once the reader has given up."""
        while not self._abandoned.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def abandon(self) -> None:
        self._abandoned.set()

    def read(self, n: int = -1) -> bytes:
        if not self._buf and not self._eof:
            item = self._q.get()
            if item is _EOF:
                self._eof = True
            elif isinstance(item, _Failed):
                self._eof = True
                raise item.error
            else:
                self._buf = item
        if n is None or n < 0 or n >= len(self._buf):
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def _consume(src: Readable, desc: Descriptor, sink, on_bytes,
             unpack_into: Path | None = None) -> tuple[_Tee, _Hashing]:
    tee = _Tee(src, sink, desc.size, on_bytes, desc.digest)
    pipe = _Pipe()

    def inflate() -> None:
        try:
            plain, _compression = open_layer_stream(tee)
            while chunk := plain.read(CHUNK):
                if not pipe.put(chunk):
                    return
            while tee.read(CHUNK):   # a compressor's trailer or padding after the tar
                pass
            pipe.put(_EOF)
        except BaseException as e:   # handed to the parsing thread, which raises it
            pipe.put(_Failed(e))

    worker = threading.Thread(target=inflate, name="berth-layer-inflate", daemon=True)
    worker.start()
    tar = _Hashing(pipe)
    try:
        if unpack_into is None:
            check_layer_stream(tar)
        else:
            apply_layer(tar, unpack_into, whiteout_mode="overlay")
        while tar.read(CHUNK):
            pass
    finally:
        pipe.abandon()
        worker.join()
    if tee.count != desc.size:
        raise DataCorrupt(f"layer {desc.digest} is {tee.count} bytes, its manifest declares {desc.size}")
    return tee, tar


def fetch_layer(src: Readable, blobs: BlobStore, desc: Descriptor,
                on_bytes: Callable[[int], None] = lambda n: None, *,
                unpack_into: Path | None = None) -> tuple[LayerDescriptor, bool]:
    """Store the layer streamed from `src`; returns it and whether the blob is
    new.  With `unpack_into` (an empty directory), the layer is also unpacked
    there for overlayfs, to be trusted only once this returns."""
    with blobs.writer(expected=desc.digest) as writer:
        _tee, tar = _consume(src, desc, writer.write, on_bytes, unpack_into)
        writer.commit()
    return LayerDescriptor(digest=desc.digest, diff_id="sha256:" + tar.hash.hexdigest(), size=tar.size,
                           compressed_size=desc.size, media_type=desc.media_type), writer.created


def inspect_stored_layer(blobs: BlobStore, desc: Descriptor) -> LayerDescriptor:
    """A layer blob already in the store but not recorded: verify it and read its diff ID."""
    raw = hashlib.sha256()
    with blobs.open(desc.digest) as f:
        _tee, tar = _consume(f, desc, raw.update, lambda n: None)
    if "sha256:" + raw.hexdigest() != desc.digest:
        raise DataCorrupt(f"stored blob {desc.digest} does not match its digest")
    return LayerDescriptor(digest=desc.digest, diff_id="sha256:" + tar.hash.hexdigest(), size=tar.size,
                           compressed_size=desc.size, media_type=desc.media_type)
