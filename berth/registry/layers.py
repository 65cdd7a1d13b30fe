"""A registry layer into the blob store, verified and validated in one pass.

The bytes go, as received, into a blob writer that expects the manifest's
digest (so the stored blob is the registry's blob and nothing is published
under that name unless it matches), while the decompressed tar is hashed
into the diff ID and checked member by member by the same checker every
ingested layer passes (`check_layer_stream`).  A download killed midway
leaves only a staging file.
"""

from __future__ import annotations

import hashlib
from typing import Callable

from berth.errors import DataCorrupt
from berth.image.config import LayerDescriptor
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


def _consume(src: Readable, desc: Descriptor, sink, on_bytes) -> tuple[_Tee, _Hashing]:
    tee = _Tee(src, sink, desc.size, on_bytes, desc.digest)
    plain, _compression = open_layer_stream(tee)
    tar = _Hashing(plain)
    check_layer_stream(tar)
    while tar.read(CHUNK):
        pass
    while tee.read(CHUNK):   # a compressor's trailer or padding after the tar
        pass
    if tee.count != desc.size:
        raise DataCorrupt(f"layer {desc.digest} is {tee.count} bytes, its manifest declares {desc.size}")
    return tee, tar


def fetch_layer(src: Readable, blobs: BlobStore, desc: Descriptor,
                on_bytes: Callable[[int], None] = lambda n: None) -> tuple[LayerDescriptor, bool]:
    """Store the layer streamed from `src`; returns it and whether the blob is new."""
    with blobs.writer(expected=desc.digest) as writer:
        _tee, tar = _consume(src, desc, writer.write, on_bytes)
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
