"""Image operations: the engine's one API for the CLI and the daemon."""

from __future__ import annotations

import bz2
import fnmatch
import io
import lzma
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from berth.build.instructions import apply_changes
from berth.errors import Conflict, DataCorrupt, InvalidArgument, NotFound, Unavailable
from berth.image import config as cfgmod
from berth.image import mediatypes as mt
from berth.image.archive import ArchiveReader, SaveItem, write_archive
from berth.image.reference import Reference, parse, parse_normalized_named
from berth.image.store import Image, ImageStore
from berth.layer.ingest import ingest_layer
from berth.store.state import STALE_STAGING_SECONDS, State

SPOOL_CHUNK = 1 << 20


@dataclass
class ImageSummary:
    """One image as `images` and GET /images/json show it."""
    id: str
    parent_id: str
    repo_tags: list[str]        # familiar name:tag
    repo_digests: list[str]     # familiar name@digest
    created: float
    size: int
    shared_size: int
    labels: dict
    containers: int
    intermediate: bool          # untagged with children: hidden without -a


@dataclass
class HistoryEntry:
    id: str                     # image ID or "<missing>"
    created: float
    created_by: str
    size: int
    comment: str
    tags: list[str] = field(default_factory=list)


@dataclass
class PruneReport:
    deleted: list[dict]
    space_reclaimed: int


def _open_source(source: str, stdin: BinaryIO | None) -> tuple[BinaryIO, str]:
    """A readable stream for `import`/`insert` sources: -, a file or a URL."""
    if source == "-":
        if stdin is None:
            raise InvalidArgument("no standard input to read the archive from")
        return stdin, "-"
    if source.startswith(("http://", "https://")):
        try:
            return urllib.request.urlopen(source, timeout=60), source  # noqa: S310 (user's URL)
        except (urllib.error.URLError, OSError) as e:
            raise Unavailable(f"Get \"{source}\": {getattr(e, 'reason', e)}") from None
    try:
        # Docker's CLI streams a local file as the request body, so the
        # daemon records it as "-"; so do we.
        return open(source, "rb"), "-"
    except FileNotFoundError:
        raise NotFound(f"open {source}: no such file or directory") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{source} is a directory, not an archive") from None


def _decompressed(src: BinaryIO) -> BinaryIO:
    """Docker accepts bzip2 and xz archives besides gzip; turn those into plain tar."""
    head = src.peek(6)[:6] if hasattr(src, "peek") else b""
    if head.startswith(b"BZh"):
        return bz2.BZ2File(src)
    if head.startswith(b"\xfd7zXZ"):
        return lzma.LZMAFile(src)
    return src


class ImageService:
    def __init__(self, state: State, containers_using: Callable[[str], list[tuple[str, bool]]]):
        self.state = state
        self.store = ImageStore(state)
        self.blobs = state.blobs
        # (container id, running) of containers created from an image; the
        # container service provides it so that rmi can refuse.
        self._containers_using = containers_using

    # -- ingestion ------------------------------------------------------------

    def _ingest(self, stream: BinaryIO, added: list[str]) -> cfgmod.LayerDescriptor:
        return ingest_layer(_decompressed(_buffered(stream)), self.blobs, added=added)

    def import_image(self, source: str, *, stdin: BinaryIO | None = None, repository: str | None = None,
                     changes: list[str] = (), message: str = "") -> Image:
        tag = parse_normalized_named(repository) if repository else None
        if tag is not None and tag.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        container_config = apply_changes({}, list(changes))
        stream, shown = _open_source(source, stdin)
        with self.store.ingestion() as added:
            try:
                layer = self._ingest(stream, added)
            finally:
                if stream is not stdin:
                    stream.close()
            comment = message or f"Imported from {shown}"
            created = cfgmod.now_rfc3339()
            config = cfgmod.new_config(
                diff_ids=[layer.diff_id], container_config=container_config, created=created,
                comment=comment, history=[{"created": created, "comment": comment}])
            image = self.store.add(cfgmod.canonical_json(config), [layer], tags=[tag] if tag else [])
        self._event("import", image.id, name=tag.familiar() if tag else image.id)
        return image

    def insert(self, name: str, source: str, path: str, *, stdin: BinaryIO | None = None) -> Image:
        """Docker 0.7's `insert`: a new image with one file added at `path`."""
        if not path.startswith("/"):
            raise InvalidArgument(f"insert: destination must be an absolute path: {path}")
        base = self.store.resolve(name)
        base_config = self.store.config(base)
        stream, shown = _open_source(source, stdin)
        with tempfile.TemporaryFile(dir=self.state.subdir("tmp")) as data:
            try:
                shutil.copyfileobj(stream, data, SPOOL_CHUNK)
            finally:
                if stream is not stdin:
                    stream.close()
            size = data.tell()
            data.seek(0)
            layer_tar = tempfile.TemporaryFile(dir=self.state.subdir("tmp"))
            with layer_tar, tarfile.open(fileobj=layer_tar, mode="w", format=tarfile.PAX_FORMAT) as tar:
                parts = [p for p in path.strip("/").split("/") if p]
                for i in range(1, len(parts)):
                    d = tarfile.TarInfo("/".join(parts[:i]))
                    d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    tar.addfile(d)
                ti = tarfile.TarInfo("/".join(parts))
                ti.size, ti.mode, ti.mtime = size, 0o644, int(time.time())
                tar.addfile(ti, data)
                tar.close()
                layer_tar.seek(0)
                with self.store.ingestion() as added:
                    layer = self._ingest(layer_tar, added)
                    created = cfgmod.now_rfc3339()
                    history = list(base_config.get("history") or [])
                    history.append({"created": created,
                                    "created_by": f"/bin/sh -c #(nop) ADD file:{layer.diff_id[7:]} in {path} ",
                                    "comment": f"Inserted from {shown}"})
                    config = cfgmod.new_config(
                        diff_ids=cfgmod.diff_ids(base_config) + [layer.diff_id],
                        container_config=dict(base_config.get("config") or {}), created=created,
                        history=history, author=base_config.get("author", ""), parent=base_config)
                    return self.store.add(cfgmod.canonical_json(config),
                                          self.store.layers(base) + [layer], parent_id=base.id)

    def load(self, src: BinaryIO) -> list[str]:
        """Load every image of a docker-archive or OCI-layout tarball.

        All layers are ingested and checked before any image is recorded, and
        all images are recorded in one transaction: a bad archive changes
        nothing.  Returns Docker's `Loaded image: ...` lines.
        """
        with self._spooled(src) as archive:
            reader = ArchiveReader(archive)
            with self.store.ingestion() as added:
                staged = []
                for item in reader.images:
                    config = cfgmod.parse_config(item.config)
                    expected = cfgmod.diff_ids(config)
                    if len(expected) != len(item.layer_members):
                        raise DataCorrupt("invalid image archive: layer count does not match the config")
                    layers = []
                    for i, (member, diff_id) in enumerate(zip(item.layer_members, expected)):
                        known = self._known_layer(diff_id, item.layer_digests[i] if item.layer_digests else None)
                        if known is None:
                            known = self._ingest(reader.open_member(member), added)
                            if known.diff_id != diff_id:
                                raise DataCorrupt(
                                    f"layer {member}: content digest {known.diff_id} does not match "
                                    f"the config's diff_id {diff_id}")
                        layers.append(known)
                    tags = [parse_normalized_named(t) for t in item.tags]
                    keep_manifest = item.manifest is not None and item.layer_digests == [
                        layer.digest for layer in layers]
                    staged.append((item, layers, tags, keep_manifest))
                lines = []
                with self.state.db.transaction():
                    for item, layers, tags, keep_manifest in staged:
                        image = self.store.add(
                            item.config, layers, tags=tags,
                            manifest=item.manifest if keep_manifest else None,
                            manifest_media_type=(item.manifest_media_type if keep_manifest
                                                 else mt.OCI_MANIFEST))
                        lines += ([f"Loaded image: {t.familiar()}" for t in tags]
                                  or [f"Loaded image ID: {image.id}"])
                        self._event("load", image.id, name=tags[0].familiar() if tags else image.id)
                return lines

    def _known_layer(self, diff_id: str, digest: str | None) -> cfgmod.LayerDescriptor | None:
        """A layer already stored, so loading it again can be skipped."""
        row = self.state.db.query_one(
            "SELECT * FROM layers WHERE diff_id=? AND (? IS NULL OR digest=?) LIMIT 1",
            (diff_id, digest, digest))
        if row is None or not self.blobs.exists(row["digest"]):
            return None
        return cfgmod.LayerDescriptor(digest=row["digest"], diff_id=row["diff_id"], size=row["size"],
                                      compressed_size=self.blobs.size(row["digest"]),
                                      media_type=row["media_type"])

    @contextmanager
    def _spooled(self, src: BinaryIO) -> Iterator[BinaryIO]:
        """A seekable, uncompressed copy of `src` (itself when it already is one)."""
        src = _buffered(src)
        head = src.peek(6)[:6]
        seekable = False
        try:
            seekable = src.seekable() and os.path.isfile(getattr(src.raw, "name", "") or "")
        except (AttributeError, TypeError, ValueError):
            pass
        compressed = head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))
        if seekable and not compressed:
            yield src
            return
        if head.startswith(b"\x1f\x8b"):
            import gzip
            reader: BinaryIO = gzip.GzipFile(fileobj=src)
        else:
            reader = _decompressed(src)
        with tempfile.TemporaryFile(dir=self.state.subdir("tmp")) as spool:
            try:
                shutil.copyfileobj(reader, spool, SPOOL_CHUNK)
            except (OSError, EOFError, lzma.LZMAError) as e:
                raise DataCorrupt(f"invalid archive: {e}") from None
            spool.seek(0)
            yield spool

    # -- names ----------------------------------------------------------------

    def resolve(self, name: str) -> Image:
        return self.store.resolve(name)

    def tag(self, source: str, target: str) -> None:
        image = self.store.resolve(source)
        ref = parse_normalized_named(target)
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        self.store.tag(image.id, ref)
        self._event("tag", image.id, name=ref.familiar())

    def remove(self, name: str, *, force: bool = False, prune: bool = True) -> list[dict]:
        """Docker's image delete: untag by name, delete when nothing names it."""
        image = self.store.resolve(name)
        named_by_ref = not _names_by_id(name, image)
        report: list[dict] = []
        users = self._containers_using(image.id)
        if named_by_ref:
            ref = _matching_ref(name, image)
            others = [r for r in image.tags + image.repo_digests if r != ref]
            if users and not others and not force:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {users[0][0][:12]} is using its referenced image {image.short_id}")
            self._untag(image.id, ref)
            report.append({"Untagged": _familiar(ref)})
            if "@" not in ref:
                # As Docker: when a repository's last tag goes, the digest
                # references of that repository (from pull or push) go too.
                repo = parse(ref).name
                if not any(parse(r).name == repo for r in others if "@" not in r):
                    for d in [r for r in others if "@" in r and parse(r).name == repo]:
                        self._untag(image.id, d)
                        report.append({"Untagged": _familiar(d)})
                        others.remove(d)
            if others:
                return report
        else:
            repos = {parse(r).name for r in image.tags + image.repo_digests}
            if len(repos) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                               "image is referenced in multiple repositories")
        running = [c for c, is_running in users if is_running]
        if running:
            raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                           f"image is being used by running container {running[0][:12]}")
        if users and not force:
            raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                           f"image is being used by stopped container {users[0][0][:12]}")
        if self.store.children(image.id):
            if named_by_ref:
                return report
            raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                           "image has dependent child images")
        image = self.store.get(image.id)
        for ref in image.tags + image.repo_digests:
            self._untag(image.id, ref)
            report.append({"Untagged": _familiar(ref)})
        report += self._delete(image)
        parent = image.parent_id
        while prune and parent:
            try:
                p = self.store.get(parent)
            except NotFound:
                break
            if p.tags or p.repo_digests or self.store.children(p.id) or self._containers_using(p.id):
                break
            report += self._delete(p)
            parent = p.parent_id
        return report

    def _untag(self, image_id: str, ref: str) -> None:
        self.store.untag(ref)
        self._event("untag", image_id, name=_familiar(ref))

    def _event(self, action: str, image_id: str, **attributes) -> None:
        self.state.events.emit("image", action, image_id, **attributes)

    def _delete(self, image: Image) -> list[dict]:
        chains = cfgmod.chain_ids(cfgmod.diff_ids(self.store.config(image)))
        layers = [layer.digest for layer in self.store.layers(image)]
        orphans = set(self.store.delete(image.id))
        report = [{"Deleted": image.id}]
        self._event("delete", image.id, name=image.id)
        for chain, digest in reversed(list(zip(chains, layers))):
            if digest not in orphans:
                break
            report.append({"Deleted": chain})
        self.store.remove_unreferenced(list(orphans))
        if not self._containers_using(image.id):
            self._drop_unpacked(chains)
        return report

    def _drop_unpacked(self, chains: list[str]) -> None:
        """Remove the unpacked layers of `chains` that no remaining image has."""
        from berth.layer.snapshots import LayerCache
        in_use = {chain for img in self.store.list()
                  for chain in cfgmod.chain_ids(cfgmod.diff_ids(self.store.config(img)))}
        cache = LayerCache(self.state.root)
        for chain in chains:
            if chain not in in_use:
                cache.remove(chain)

    # -- listing ----------------------------------------------------------------

    def list(self, *, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[ImageSummary]:
        filters = filters or {}
        _check_filters(filters, {"dangling", "label", "before", "since", "reference"})
        images = self.store.list()
        with_children = {img.parent_id for img in images if img.parent_id}
        anchors = {k: self.store.resolve(v[0]).added_at for k, v in filters.items()
                   if k in ("before", "since")}
        out = []
        for img in images:
            cfg = self.store.config(img)
            labels = (cfg.get("config") or {}).get("Labels") or {}
            untagged = not img.tags and not img.repo_digests
            intermediate = untagged and img.id in with_children
            if "dangling" in filters:
                want = filters["dangling"][0].lower() in ("true", "1")
                if want != (untagged and not intermediate):
                    continue
            if not _labels_match(labels, filters.get("label", [])):
                continue
            if "before" in anchors and not img.added_at < anchors["before"]:
                continue
            if "since" in anchors and not img.added_at > anchors["since"]:
                continue
            tags = [parse(t) for t in img.tags]
            if "reference" in filters:
                tags = [t for t in tags if any(_ref_matches(t, pat) for pat in filters["reference"])]
                if not tags:
                    continue
            if intermediate and not all and "dangling" not in filters:
                continue
            out.append(ImageSummary(
                id=img.id, parent_id=img.parent_id or "",
                repo_tags=[t.familiar() for t in tags],
                repo_digests=[parse(d).familiar() for d in img.repo_digests],
                created=cfgmod.parse_time(img.created), size=img.size,
                shared_size=self.store.shared_size(img), labels=labels,
                containers=len(self._containers_using(img.id)), intermediate=intermediate))
        return out

    def history(self, name: str) -> list[HistoryEntry]:
        image = self.store.resolve(name)
        cfg = self.store.config(image)
        layers = self.store.layers(image)
        # Which local image each prefix of the history belongs to.
        owners: dict[int, Image] = {}
        cursor: Image | None = image
        while cursor is not None:
            owners.setdefault(len(self.store.config(cursor).get("history") or []), cursor)
            try:
                cursor = self.store.get(cursor.parent_id) if cursor.parent_id else None
            except NotFound:
                cursor = None
        entries, layer_index = [], 0
        history = cfg.get("history") or [{"created": cfg.get("created"), "created_by": ""}] * len(layers)
        for i, h in enumerate(history):
            size = 0
            if not h.get("empty_layer") and layer_index < len(layers):
                size = layers[layer_index].size
                layer_index += 1
            owner = owners.get(i + 1)
            entries.append(HistoryEntry(
                id=owner.id if owner else "<missing>", created=cfgmod.parse_time(h.get("created")),
                created_by=h.get("created_by", ""), size=size, comment=h.get("comment", ""),
                tags=[parse(t).familiar() for t in owner.tags] if owner else []))
        return list(reversed(entries))

    def inspect(self, name: str) -> dict:
        image = self.store.resolve(name)
        cfg = self.store.config(image)
        layer_dir = self.state.root / "layers"
        return {
            "Id": image.id,
            "RepoTags": [parse(t).familiar() for t in image.tags],
            "RepoDigests": [parse(d).familiar() for d in image.repo_digests],
            "Parent": image.parent_id or "",
            "Comment": cfg.get("comment", ""),
            "Created": cfg.get("created") or "0001-01-01T00:00:00Z",
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": cfgmod.docker_container_config(cfg.get("config") or {}),
            "Architecture": cfg.get("architecture", ""),
            **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
            "Os": cfg.get("os", ""),
            **({"OsVersion": cfg["os.version"]} if cfg.get("os.version") else {}),
            "Size": image.size,
            "GraphDriver": {"Data": {"LowerDir": str(layer_dir)}, "Name": "overlay"},
            "RootFS": {"Type": "layers", "Layers": cfgmod.diff_ids(cfg)},
            "Metadata": {"LastTagTime": _rfc3339(image.last_tag_time) if image.last_tag_time
                         else "0001-01-01T00:00:00Z"},
        }

    def save(self, names: list[str], out: BinaryIO) -> None:
        if not names:
            raise InvalidArgument("save requires at least one image")
        items: dict[str, SaveItem] = {}
        for name in names:
            for image, tags in self._save_targets(name):
                item = items.get(image.id)
                if item is None:
                    items[image.id] = SaveItem(
                        image_id=image.id, manifest_digest=image.manifest_digest,
                        manifest_media_type=image.manifest_media_type,
                        layer_digests=[layer.digest for layer in self.store.layers(image)], tags=tags)
                else:
                    item.tags += [t for t in tags if t not in item.tags]
        write_archive(out, list(items.values()), self.blobs)

    def _save_targets(self, name: str) -> list[tuple[Image, list[Reference]]]:
        """What `save NAME` writes: by ID untagged, by name:tag that tag, and by
        a bare repository name every tag of it (as Docker does)."""
        image = self.store.find(name)
        if image is not None and _names_by_id(name, image):
            return [(image, [])]
        ref = parse(name)
        if ref.tag is None and ref.digest is None:
            found = []
            for img in self.store.list():
                tags = [parse(t) for t in img.tags if parse(t).name == ref.name]
                if tags:
                    found.append((img, tags))
            if found:
                return found
        image = self.store.resolve(name)
        return [(image, [ref.tagged_or_latest()] if not ref.digest else [])]

    def prune(self, *, all: bool = False, filters: dict[str, list[str]] | None = None) -> PruneReport:
        filters = filters or {}
        _check_filters(filters, {"dangling", "label", "until"})
        until = None
        if "until" in filters:
            until = time.time() - _parse_until(filters["until"][0])
        deleted: list[dict] = []
        reclaimed = 0
        changed = True
        while changed:  # deleting a child can leave its parent prunable
            changed = False
            for img in self.store.list():
                if self._containers_using(img.id) or self.store.children(img.id):
                    continue
                if not all and (img.tags or img.repo_digests):
                    continue
                if until is not None and img.added_at > until:
                    continue
                labels = (self.store.config(img).get("config") or {}).get("Labels") or {}
                if not _labels_match(labels, filters.get("label", [])):
                    continue
                before = self._store_bytes()
                for ref in img.tags + img.repo_digests:
                    self._untag(img.id, ref)
                    deleted.append({"Untagged": _familiar(ref)})
                deleted += self._delete(self.store.get(img.id))
                reclaimed += max(0, before - self._store_bytes())
                changed = True
        self.sweep()
        return PruneReport(deleted=deleted, space_reclaimed=reclaimed)

    def _store_bytes(self) -> int:
        return sum(self.blobs.size(d) for d in self.blobs)

    def sweep(self) -> list[str]:
        """Remove blobs and staging files nothing references (left by crashes)."""
        with self.state.collecting():
            referenced = self.store.referenced_blobs()
            removed = [d for d in self.blobs if d not in referenced]
            for d in removed:
                self.blobs.delete(d)
            for p in stale_staging(self.state):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        return removed


# -- helpers -----------------------------------------------------------------

def stale_staging(state: State) -> list[Path]:
    """What crashed writers left: blob staging files and half-unpacked layers."""
    from berth.layer.snapshots import LayerCache
    cutoff = time.time() - STALE_STAGING_SECONDS
    return state.blobs.stale_staging(cutoff) + LayerCache(state.root).stale_staging(cutoff)


def _buffered(stream: BinaryIO) -> BinaryIO:
    if hasattr(stream, "peek"):
        return stream
    return io.BufferedReader(stream, SPOOL_CHUNK) if isinstance(stream, io.RawIOBase) else _PeekWrapper(stream)


class _PeekWrapper(io.RawIOBase):
    """Gives any file-like object the peek() that compression sniffing needs."""

    def __init__(self, src):
        self._src = src
        self._head = b""

    def readable(self):
        return True

    def peek(self, n=1):
        if len(self._head) < n:
            self._head += self._src.read(n - len(self._head)) or b""
        return self._head

    def read(self, n=-1):
        if self._head:
            head, self._head = self._head, b""
            if n is None or n < 0:
                return head + (self._src.read() or b"")
            if len(head) > n:
                self._head = head[n:]
                return head[:n]
            return head + (self._src.read(n - len(head)) or b"")
        return self._src.read(n)

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def _names_by_id(name: str, image: Image) -> bool:
    """Whether `name` addressed the image by (a prefix of) its ID, not a reference."""
    bare = name.split(":", 1)[1] if name.startswith("sha256:") else name
    if not image.id[7:].startswith(bare):
        return False
    try:
        ref = parse(name).tagged_or_latest()
    except InvalidArgument:
        return True
    return str(ref) not in image.tags


def _matching_ref(name: str, image: Image) -> str:
    ref = parse(name)
    if ref.digest:
        return f"{ref.name}@{ref.digest}"
    return str(ref.tagged_or_latest())


def _familiar(ref: str) -> str:
    return parse(ref).familiar()


def _rfc3339(epoch: float) -> str:
    return cfgmod.rfc3339_nano(int(epoch * 1e9))


def _check_filters(filters: dict, allowed: set[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")


def _labels_match(labels: dict, wanted: list[str]) -> bool:
    for spec in wanted:
        key, sep, value = spec.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _ref_matches(ref: Reference, pattern: str) -> bool:
    """Docker's reference filter: path.Match on the familiar name (and tag)."""
    name_pat, _, tag_pat = pattern.partition(":") if ":" in pattern.rsplit("/", 1)[-1] else (pattern, "", "")
    if not fnmatch.fnmatchcase(ref.familiar_name, name_pat) and not fnmatch.fnmatchcase(ref.name, name_pat):
        return False
    return not tag_pat or fnmatch.fnmatchcase(ref.tag or "", tag_pat)


def _parse_until(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return float(value[:-1]) * units[value[-1]]
    if value.replace(".", "", 1).isdigit():
        return time.time() - float(value)
    t = cfgmod.parse_time(value)
    if not t:
        raise InvalidArgument(f"invalid value for until filter: {value}")
    return time.time() - t
