"""Image archives: Docker's `docker save` format and the OCI image layout.

What `save` writes is both at once, as Docker 25+ does: an OCI layout
(`oci-layout`, `index.json`, `blobs/sha256/...`) plus the legacy
`manifest.json` and `repositories` that older `docker load` reads.  Layer
blobs are written as stored: plain tar as Docker writes them, gzip for
layers pulled that way (`docker load` takes both).

What `load` reads is either: Docker's archives of any age (`manifest.json`,
layers as `<id>/layer.tar` or blobs), or an OCI layout without manifest.json
(skopeo, buildkit).
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from berth.errors import DataCorrupt
from berth.image import config as cfgmod
from berth.image import mediatypes as mt
from berth.image.reference import Reference
from berth.store import digest as dg
from berth.store.blobs import BlobStore

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass
class ArchivedImage:
    config: bytes
    layer_members: list[str]                  # archive member holding each layer, bottom first
    tags: list[str] = field(default_factory=list)
    manifest: bytes | None = None             # the OCI layout's own manifest, if any
    manifest_media_type: str | None = None
    layer_digests: list[str] | None = None    # blob digests the manifest names


class ArchiveReader:
    """Random access over a (seekable, uncompressed) image archive."""

    def __init__(self, fileobj: BinaryIO):
        try:
            self._tar = tarfile.open(fileobj=fileobj, mode="r:")
            self._members = {posixpath.normpath(m.name.lstrip("./") or "."): m
                             for m in self._tar.getmembers()}
        except tarfile.ReadError as e:
            raise DataCorrupt(f"invalid tar archive: {e}") from None
        except EOFError:
            raise DataCorrupt("invalid tar archive: unexpected end of data") from None
        if "manifest.json" in self._members:
            self.images = self._docker_images()
        elif "index.json" in self._members:
            self.images = self._oci_images()
        else:
            raise DataCorrupt("invalid image archive: no manifest.json or index.json found")

    def open_member(self, name: str) -> BinaryIO:
        member = self._members.get(posixpath.normpath(name.lstrip("./")))
        if member is None:
            raise DataCorrupt(f"invalid image archive: {name} is missing")
        try:
            f = self._tar.extractfile(member)
        except (KeyError, tarfile.TarError) as e:
            raise DataCorrupt(f"invalid image archive: {name}: {e}") from None
        if f is None:
            raise DataCorrupt(f"invalid image archive: {name} is not a file")
        return f

    def read_member(self, name: str) -> bytes:
        try:
            return self.open_member(name).read()
        except (tarfile.ReadError, EOFError, OSError) as e:
            raise DataCorrupt(f"invalid image archive: reading {name}: {e}") from None

    def _json(self, name: str):
        try:
            return json.loads(self.read_member(name))
        except ValueError as e:
            raise DataCorrupt(f"invalid image archive: {name}: {e}") from None

    def _blob(self, digest: str) -> bytes:
        data = self.read_member("blobs/sha256/" + dg.hex_of(digest))
        if dg.of_bytes(data) != digest:
            raise DataCorrupt(f"digest mismatch for blob {digest}")
        return data

    def _docker_images(self) -> list[ArchivedImage]:
        manifest = self._json("manifest.json")
        if not isinstance(manifest, list):
            raise DataCorrupt("invalid image archive: manifest.json is not a list")
        images = []
        for entry in manifest:
            try:
                config_name, layers = entry["Config"], entry["Layers"]
            except (KeyError, TypeError):
                raise DataCorrupt("invalid image archive: manifest.json entry lacks Config or Layers") from None
            config = self.read_member(config_name)
            base = posixpath.basename(config_name)
            # Modern archives name the config by its digest; check it.
            stem = base[:-5] if base.endswith(".json") else base
            if len(stem) == 64 and dg.of_bytes(config) != "sha256:" + stem:
                raise DataCorrupt(f"digest mismatch for image config {config_name}")
            images.append(ArchivedImage(config=config, layer_members=list(layers),
                                        tags=list(entry.get("RepoTags") or [])))
        return images

    def _oci_images(self) -> list[ArchivedImage]:
        index = self._json("index.json")
        images = []
        for desc, name in self._walk_index(index, None):
            manifest = self._blob(desc["digest"])
            m = cfgmod.parse_manifest(manifest)
            config = self._blob(m["config"]["digest"])
            for layer in m["layers"]:
                if layer.get("mediaType") in mt.FOREIGN_LAYERS:
                    raise DataCorrupt(f"foreign layer {layer['digest']} is not in the archive")
            images.append(ArchivedImage(
                config=config,
                layer_members=["blobs/sha256/" + dg.hex_of(d["digest"]) for d in m["layers"]],
                tags=[name] if name else [],
                manifest=manifest,
                manifest_media_type=m.get("mediaType") or desc.get("mediaType") or mt.OCI_MANIFEST,
                layer_digests=[d["digest"] for d in m["layers"]]))
        return images

    def _walk_index(self, index: dict, name: str | None):
        for desc in index.get("manifests") or []:
            ann = desc.get("annotations") or {}
            ref_name = ann.get(mt.ANNOTATION_CONTAINERD_NAME) or _full_ref_name(
                ann.get(mt.ANNOTATION_REF_NAME)) or name
            media_type = desc.get("mediaType")
            if media_type in mt.INDEXES:
                yield from self._walk_index(json.loads(self._blob(desc["digest"])), ref_name)
            elif media_type in mt.MANIFESTS or media_type is None:
                platform = desc.get("platform") or {}
                if platform and (platform.get("os") != "linux"
                                 or platform.get("architecture") != cfgmod.host_arch()):
                    continue
                yield desc, ref_name


def _full_ref_name(value: str | None) -> str | None:
    """ref.name may be a bare tag ("latest"), which names no repository."""
    if value and ("/" in value or ":" in value):
        return value
    return None


@dataclass
class SaveItem:
    image_id: str
    manifest_digest: str
    manifest_media_type: str
    layer_digests: list[str]
    tags: list[Reference]


def write_archive(out: BinaryIO, items: list[SaveItem], blobs: BlobStore) -> None:
    """Stream a docker-archive + OCI layout of `items` to `out`."""
    mtime = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(ti)

        def add_bytes(name, data):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, mtime
            tar.addfile(ti, io.BytesIO(data))

        written: set[str] = set()

        def add_blob(digest):
            if digest in written:
                return
            written.add(digest)
            ti = tarfile.TarInfo("blobs/sha256/" + dg.hex_of(digest))
            ti.size, ti.mode, ti.mtime = blobs.size(digest), 0o444, mtime
            with blobs.open(digest) as f:
                tar.addfile(ti, f)

        add_dir("blobs")
        add_dir("blobs/sha256")
        index, legacy, repositories = [], [], {}
        for item in items:
            for digest in (item.image_id, *item.layer_digests, item.manifest_digest):
                add_blob(digest)
            manifest_desc = {"mediaType": item.manifest_media_type, "digest": item.manifest_digest,
                             "size": blobs.size(item.manifest_digest)}
            for ref in item.tags or [None]:
                desc = dict(manifest_desc)
                if ref is not None:
                    desc["annotations"] = {mt.ANNOTATION_CONTAINERD_NAME: str(ref),
                                           mt.ANNOTATION_REF_NAME: ref.tag}
                index.append(desc)
            legacy.append({
                "Config": "blobs/sha256/" + dg.hex_of(item.image_id),
                "RepoTags": [ref.familiar() for ref in item.tags] or None,
                "Layers": ["blobs/sha256/" + dg.hex_of(d) for d in item.layer_digests],
            })
            for ref in item.tags:
                if item.layer_digests:
                    repositories.setdefault(ref.familiar_name, {})[ref.tag] = dg.hex_of(
                        item.layer_digests[-1])
        add_bytes("index.json", cfgmod.canonical_json(
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index}))
        add_bytes("manifest.json", cfgmod.canonical_json(legacy))
        add_bytes("oci-layout", OCI_LAYOUT)
        if repositories:
            add_bytes("repositories", cfgmod.canonical_json(repositories))
