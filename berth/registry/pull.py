"""Pulling an image: manifest negotiation, parallel verified layer downloads,
and one store transaction that records the registry's own bytes.

The manifest and config are kept byte for byte, so the image ID is the
config's digest and RepoDigests name the digest the registry serves (the
index's for a multi-platform image), as Docker's do.  Every blob is written
under `ImageStore.ingestion()`: a failed pull removes what it brought in,
and a killed one leaves only staging files.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from berth.errors import BerthError, DataCorrupt, NotFound, Unauthorized, Unavailable
from berth.image import config as cfgmod
from berth.image import mediatypes as mt
from berth.image.config import LayerDescriptor
from berth.image.reference import Reference
from berth.image.store import Image, ImageStore
from berth.layer.snapshots import LayerCache
from berth.registry.client import Cancelled, Fetched, RegistryClient
from berth.registry.layers import fetch_layer, inspect_stored_layer
from berth.registry.manifests import (MAX_CONFIG_BYTES, Descriptor, ImageManifest, Platform,
                                      config_platform, host_platform, media_type_of, parse_image_manifest,
                                      parse_index, platform_matches, select_platform)
from berth.registry.progress import Progress, ProgressSink, discard, short_id
from berth.store import digest as dg


@dataclass
class PullResult:
    reference: Reference     # as pulled: with its tag, or its digest
    image: Image
    digest: str              # what the registry serves for the reference
    downloaded: bool         # False when the name already meant this image


class Puller:
    def __init__(self, store: ImageStore, client: RegistryClient, *, platform: Platform | None = None,
                 progress: ProgressSink = discard, concurrency: int = 3, layers: LayerCache | None = None):
        """With `layers`, downloaded layers are also unpacked for overlayfs as
        they arrive (a container's first start then has nothing to unpack)."""
        self.store = store
        self.blobs = store.blobs
        self.client = client
        self.platform = platform
        self.emit = progress
        self.concurrency = max(1, concurrency)
        self.layers = layers
        self._unpack: dict[str, tuple[str, str]] = {}   # layer digest -> (chain ID, diff ID)

    def pull(self, ref: Reference) -> PullResult:
        if ref.tag is None and ref.digest is None:
            ref = ref.tagged_or_latest()
        top = self._manifest(ref, ref.digest or ref.tag)
        self.emit(Progress(f"Pulling from {ref.path}", id=ref.tag or ref.digest))
        kind = media_type_of(top.data, top.media_type)
        chosen, chosen_kind = top, kind
        if kind in mt.INDEXES:
            entry = select_platform(parse_index(top.data), self.platform or host_platform())
            chosen = self._manifest(ref, entry.digest)
            chosen_kind = media_type_of(chosen.data, chosen.media_type)
            if chosen_kind not in mt.MANIFESTS:
                raise DataCorrupt(f"manifest list entry {entry.digest} is not an image manifest")
        manifest = parse_image_manifest(chosen.data, chosen_kind)
        _refuse_foreign(manifest)
        config_bytes = self._config(ref, manifest.config)
        config = cfgmod.parse_config(config_bytes)
        if self.platform is not None and kind not in mt.INDEXES \
                and not platform_matches(self.platform, config_platform(config)):
            raise NotFound(f"image with reference {ref.familiar()} was found but does not match the "
                           f"specified platform: wanted {self.platform}, actual: {config_platform(config)}")
        diff_ids = cfgmod.diff_ids(config)
        if len(diff_ids) != len(manifest.layers):
            raise DataCorrupt(f"invalid image {ref.familiar()}: the manifest lists {len(manifest.layers)} "
                              f"layers, the config {len(diff_ids)}")
        self._unpack = {}
        for chain, desc, diff_id in zip(cfgmod.chain_ids(diff_ids), manifest.layers, diff_ids):
            self._unpack.setdefault(desc.digest, (chain, diff_id))
        before = self.store.find(str(ref))
        with self.store.ingestion() as added:
            layers, fetched_any = self._layers(ref, manifest, diff_ids, added)
            image = self.store.add(config_bytes, layers, tags=[ref] if ref.tag else [],
                                   manifest=chosen.data, manifest_media_type=chosen_kind,
                                   repo_digest=ref.with_digest(top.digest))
        downloaded = fetched_any or before is None or before.id != image.id
        self.emit(Progress(f"Digest: {top.digest}"))
        self.emit(Progress(("Status: Downloaded newer image for " if downloaded
                            else "Status: Image is up to date for ") + ref.familiar()))
        return PullResult(ref, image, top.digest, downloaded)

    def _manifest(self, ref: Reference, reference: str) -> Fetched:
        try:
            fetched = self.client.get_manifest(ref.path, reference)
        except Unauthorized as e:
            if self.client.auth.missing_credentials is not None:
                raise
            raise Unauthorized(f"pull access denied for {ref.familiar_name}, repository does not exist "
                               f"or may require 'docker login': {e}") from None
        if fetched is None:
            raise NotFound(f"manifest for {ref.familiar()} not found: manifest unknown: manifest unknown")
        return fetched

    def _config(self, ref: Reference, desc: Descriptor) -> bytes:
        if self.blobs.exists(desc.digest):
            data = self.blobs.read(desc.digest)
            if dg.of_bytes(data) == desc.digest:
                return data
        try:
            return self.client.get_blob(ref.path, desc.digest, MAX_CONFIG_BYTES)
        except NotFound:
            raise NotFound(f"error pulling image configuration: blob {desc.digest} of "
                           f"{ref.familiar()} not found: blob unknown to registry") from None

    # -- layers ----------------------------------------------------------------

    def _layers(self, ref: Reference, manifest: ImageManifest, diff_ids: list[str],
                added: list[str]) -> tuple[list[LayerDescriptor], bool]:
        found: dict[str, LayerDescriptor] = {}
        todo: list[Descriptor] = []
        for desc in manifest.layers:
            if desc.digest in found or any(d.digest == desc.digest for d in todo):
                continue
            known = self._stored(desc)
            if known is not None:
                found[desc.digest] = known
            else:
                todo.append(desc)
        # Like Docker, say nothing per layer when the image is already here whole.
        if todo or self.store.find(manifest.config.digest) is None:
            for digest in dict.fromkeys(d.digest for d in manifest.layers):
                if digest in found:
                    self.emit(Progress("Already exists", short_id(digest)))
            for desc in todo:
                self.emit(Progress("Pulling fs layer", short_id(desc.digest)))
        for desc in todo[self.concurrency:]:
            self.emit(Progress("Waiting", short_id(desc.digest)))
        if todo:
            found.update(self._download_all(ref, todo, added))
        out = []
        for desc, diff_id in zip(manifest.layers, diff_ids):
            layer = found[desc.digest]
            if layer.diff_id != diff_id:
                raise DataCorrupt(f"layer {desc.digest}: its content digest {layer.diff_id} does not "
                                  f"match the image config's diff_id {diff_id}")
            out.append(layer)
        for desc in todo:
            self.emit(Progress("Pull complete", short_id(desc.digest)))
        return out, bool(todo)

    def _stored(self, desc: Descriptor) -> LayerDescriptor | None:
        if not self.blobs.exists(desc.digest):
            return None
        row = self.store.db.query_one("SELECT diff_id, size FROM layers WHERE digest=?", (desc.digest,))
        if row is not None:
            return LayerDescriptor(digest=desc.digest, diff_id=row["diff_id"], size=row["size"],
                                   compressed_size=desc.size, media_type=desc.media_type)
        # A blob without a record (left by an interrupted operation): check it, don't trust it.
        try:
            return inspect_stored_layer(self.blobs, desc)
        except DataCorrupt:
            return None

    def _download_all(self, ref: Reference, todo: list[Descriptor],
                      added: list[str]) -> dict[str, LayerDescriptor]:
        cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="berth-pull")
        futures: dict[Future, Descriptor] = {}
        try:
            futures = {pool.submit(self._download, ref, desc, cancel): desc for desc in todo}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                cancel.set()
        except BaseException:
            cancel.set()
            raise
        finally:
            pool.shutdown(wait=True)
            # Blobs of downloads that finished are the operation's even if another failed.
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is None and f.result()[1]:
                    added.append(f.result()[0].digest)
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, Cancelled)]
        if real or errors:
            raise (real or errors)[0]
        return {desc.digest: f.result()[0] for f, desc in futures.items()}

    def _download(self, ref: Reference, desc: Descriptor, cancel: threading.Event):
        if cancel.is_set():
            raise Cancelled("cancelled")
        sid = short_id(desc.digest)

        def on_bytes(count: int) -> None:
            self.emit(Progress("Downloading", sid, count, desc.size or 1))

        chain, diff_id = self._unpack.get(desc.digest, ("", ""))
        staged = self.layers.staging() if self.layers is not None and chain and not self.layers.has(chain) \
            else None
        try:
            with self.client.open_blob(ref.path, desc.digest, desc.size, cancel) as reader:
                layer, created = fetch_layer(reader, self.blobs, desc, on_bytes, unpack_into=staged)
            if staged is not None and layer.diff_id == diff_id:
                self.layers.adopt(staged, chain)
                staged = None
        except NotFound:
            raise NotFound(f"layer {desc.digest} of {ref.familiar()} not found in the registry: "
                           "blob unknown to registry") from None
        except DataCorrupt as e:
            raise DataCorrupt(f"layer {desc.digest} of {ref.familiar()}: {e}") from None
        except (Cancelled, BerthError):
            raise
        except OSError as e:
            raise Unavailable(f"failed to store layer {desc.digest}: {e.strerror or e}") from None
        finally:
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
        self.emit(Progress("Verifying Checksum", sid))
        self.emit(Progress("Download complete", sid))
        return layer, created


def _refuse_foreign(manifest: ImageManifest) -> None:
    for layer in manifest.layers:
        if layer.media_type in mt.FOREIGN_LAYERS:
            where = f" (it is served from {layer.urls[0]})" if layer.urls else ""
            raise Unavailable(f"layer {layer.digest} is a foreign layer ({layer.media_type}){where}; "
                              "berth pulls only layers the registry distributes")
        if layer.media_type and not layer.media_type.startswith(
                ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")):
            raise DataCorrupt(f"unsupported layer media type {layer.media_type} for {layer.digest}")
