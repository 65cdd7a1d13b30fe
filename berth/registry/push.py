"""Pushing an image: layers the registry lacks, then the config, then the
manifest exactly as stored, so the digest the registry reports is the one
berth already knows.

Each layer is checked with HEAD first; a layer the same registry holds in
another repository is mounted from there when the registry allows it; the
rest are uploaded, in one PUT or in PATCH chunks by size.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Mapping

from berth.errors import DataCorrupt, InvalidArgument
from berth.image import config as cfgmod
from berth.image.config import LayerDescriptor
from berth.image.reference import Reference
from berth.image.store import Image, ImageStore
from berth.registry.client import Cancelled, RegistryClient
from berth.registry.progress import Progress, ProgressSink, discard, short_id
from berth.store import digest as dg

# A registry may refuse a mount; trying a few candidate sources is enough.
MAX_MOUNT_ATTEMPTS = 3


@dataclass
class PushResult:
    reference: Reference   # the tag pushed
    digest: str            # the manifest digest the registry now serves
    size: int              # manifest bytes


class Pusher:
    def __init__(self, store: ImageStore, client: RegistryClient, *, progress: ProgressSink = discard,
                 concurrency: int = 5, chunk_size: int = 64 << 20,
                 mount_sources: Mapping[str, list[str]] | None = None):
        self.store = store
        self.blobs = store.blobs
        self.client = client
        self.emit = progress
        self.concurrency = max(1, concurrency)
        self.chunk_size = max(1, chunk_size)
        self.mount_sources = mount_sources or {}

    def push(self, ref: Reference, image: Image) -> PushResult:
        if not ref.tag or ref.digest:
            raise InvalidArgument("cannot push a digest reference")
        layers = self.store.layers(image)
        manifest = self.blobs.read(image.manifest_digest)
        described = cfgmod.parse_manifest(manifest)
        if described["config"].get("digest") != image.id:
            raise DataCorrupt(f"the stored manifest of {image.id} describes another config")
        unique: dict[str, LayerDescriptor] = {}
        for layer in layers:
            unique.setdefault(layer.digest, layer)
        for layer in unique.values():
            self.emit(Progress("Preparing", short_id(layer.diff_id)))
        for layer in list(unique.values())[self.concurrency:]:
            self.emit(Progress("Waiting", short_id(layer.diff_id)))
        self._push_layers(ref, list(unique.values()))
        self._push_blob(ref, image.id)
        digest = self.client.put_manifest(ref.path, ref.tag, manifest, image.manifest_media_type)
        self.emit(Progress(f"{ref.tag}: digest: {digest} size: {len(manifest)}"))
        return PushResult(ref, digest, len(manifest))

    def _push_layers(self, ref: Reference, layers: list[LayerDescriptor]) -> None:
        cancel = threading.Event()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="berth-push") as pool:
            futures = [pool.submit(self._push_layer, ref, layer, cancel) for layer in layers]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:
                cancel.set()
                raise
            if any(f.exception() is not None for f in done):
                cancel.set()
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, Cancelled)]
        if errors:
            raise (real or errors)[0]

    def _push_layer(self, ref: Reference, layer: LayerDescriptor, cancel: threading.Event) -> None:
        if cancel.is_set():
            raise Cancelled("cancelled")
        sid = short_id(layer.diff_id)
        if self.client.blob_size(ref.path, layer.digest) is not None:
            self.emit(Progress("Layer already exists", sid))
            return
        location = None
        for source in self.mount_sources.get(layer.digest, [])[:MAX_MOUNT_ATTEMPTS]:
            mounted, location = self.client.start_upload(ref.path, mount=layer.digest, source=source)
            if mounted:
                self.emit(Progress(f"Mounted from {source}", sid))
                return
            break   # the registry opened an upload session instead; use it
        size = self.blobs.size(layer.digest)
        pushed = 0

        def on_bytes(n: int) -> None:
            nonlocal pushed
            pushed += n
            self.emit(Progress("Pushing", sid, pushed, size or 1))

        self._upload(ref, layer.digest, size, on_bytes, cancel, location)
        self.emit(Progress("Pushed", sid))

    def _push_blob(self, ref: Reference, digest: str) -> None:
        if self.client.blob_size(ref.path, digest) is None:
            self._upload(ref, digest, self.blobs.size(digest), lambda n: None, None, None)

    def _upload(self, ref, digest, size, on_bytes, cancel, location) -> None:
        if location is None:
            _, location = self.client.start_upload(ref.path)
        try:
            self.client.upload(location, dg.validate(digest), size, lambda: self.blobs.open(digest),
                               on_bytes, self.chunk_size, cancel)
        except BaseException:
            self.client.cancel_upload(location)
            raise
