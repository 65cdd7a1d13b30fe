"""Images in the metadata database: records, names, lookups.

Write order keeps the store consistent through a crash: blobs first (each
atomically), then one transaction that adds the image, its blobs and its
tags together.  Deletion is the reverse: rows first, then the blobs no
remaining image references.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.image import config as cfgmod
from berth.image import mediatypes as mt
from berth.image.reference import Reference, parse
from berth.store import digest as dg
from berth.store.state import State

_HEX_PREFIX = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")


@dataclass
class Image:
    id: str
    manifest_digest: str
    manifest_media_type: str
    size: int
    created: str | None
    parent_id: str | None
    added_at: float
    last_tag_time: float | None
    tags: list[str] = field(default_factory=list)          # normalised name:tag
    repo_digests: list[str] = field(default_factory=list)  # normalised name@digest

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]


class ImageStore:
    def __init__(self, state: State):
        self.state = state
        self.db = state.db
        self.blobs = state.blobs

    # -- writing -------------------------------------------------------------

    @contextmanager
    def ingestion(self) -> Iterator[list[str]]:
        """Collects the blobs an operation adds; removes them if it fails.

        Held from the first blob write until the rows that own the blobs are
        committed.  The removal takes the exclusive GC lock, which waits for
        concurrent ingesters to commit, so a blob another process has started
        to reference in the meantime is kept.
        """
        added: list[str] = []
        try:
            with self.state.ingesting():
                yield added
        except BaseException:
            self.remove_unreferenced(added)
            raise

    def remove_unreferenced(self, digests: list[str]) -> None:
        if not digests:
            return
        with self.state.collecting():
            referenced = self.referenced_blobs()
            for d in digests:
                if d not in referenced:
                    self.blobs.delete(d)

    def add(self, config_bytes: bytes, layers: list[cfgmod.LayerDescriptor], *,
            tags: list[Reference] = (), parent_id: str | None = None,
            manifest: bytes | None = None, manifest_media_type: str = mt.OCI_MANIFEST,
            repo_digest: Reference | None = None) -> Image:
        """Record an image whose layer blobs are already stored.

        The caller holds `state.ingesting()` from its first blob write until
        this returns, so no sweep can remove blobs not yet referenced.
        """
        cfg = cfgmod.parse_config(config_bytes)
        if [layer.diff_id for layer in layers] != cfgmod.diff_ids(cfg):
            raise InvalidArgument("layers do not match the image config's diff_ids")
        for layer in layers:
            if not self.blobs.exists(layer.digest):
                raise NotFound(f"layer blob not found: {layer.digest}")
        image_id = self.blobs.put(config_bytes)
        if manifest is None:
            manifest = cfgmod.build_manifest(config_bytes, layers, manifest_media_type)
        manifest_digest = self.blobs.put(manifest)
        size = sum(layer.size for layer in layers)
        now = time.time()
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO layers(digest, diff_id, size, media_type) VALUES (?,?,?,?)",
                [(lay.digest, lay.diff_id, lay.size, lay.media_type) for lay in layers])
            existing = conn.execute("SELECT id FROM images WHERE id=?", (image_id,)).fetchone()
            if existing is None:
                conn.execute(
                    "INSERT INTO images(id, manifest_digest, manifest_media_type, size, created,"
                    " parent_id, added_at) VALUES (?,?,?,?,?,?,?)",
                    (image_id, manifest_digest, manifest_media_type, size, cfg.get("created"),
                     parent_id, now))
            elif repo_digest is not None:
                # A pull of the same config under the registry's own manifest:
                # keep the registry's bytes so RepoDigests match theirs.
                conn.execute("UPDATE images SET manifest_digest=?, manifest_media_type=? WHERE id=?",
                             (manifest_digest, manifest_media_type, image_id))
            blobs = {image_id, manifest_digest, *(lay.digest for lay in layers)}
            conn.executemany("INSERT OR IGNORE INTO image_blobs(image_id, digest) VALUES (?,?)",
                             [(image_id, b) for b in blobs])
            for ref in tags:
                self._tag(conn, image_id, ref, now)
            if repo_digest is not None:
                conn.execute("INSERT OR REPLACE INTO repo_digests(ref, image_id) VALUES (?,?)",
                             (str(repo_digest), image_id))
        return self.get(image_id)

    def relayer(self, image: Image, layers: list[cfgmod.LayerDescriptor]) -> tuple[Image, list[str]]:
        """Point `image` at other blobs of the same layers (a compressed copy, for
        a registry) under a new manifest of its manifest's media type; also
        returns the blobs it no longer names, for `remove_unreferenced` once
        the caller's `ingestion()` (held around writing the new blobs) ends.
        """
        if [layer.diff_id for layer in layers] != cfgmod.diff_ids(self.config(image)):
            raise InvalidArgument("layers do not match the image config's diff_ids")
        manifest = cfgmod.build_manifest(self.blobs.read(image.id), layers, image.manifest_media_type)
        manifest_digest = self.blobs.put(manifest)
        keep = {image.id, manifest_digest, *(lay.digest for lay in layers)}
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO layers(digest, diff_id, size, media_type) VALUES (?,?,?,?)",
                [(lay.digest, lay.diff_id, lay.size, lay.media_type) for lay in layers])
            conn.execute("UPDATE images SET manifest_digest=? WHERE id=?", (manifest_digest, image.id))
            dropped = [r[0] for r in conn.execute("SELECT digest FROM image_blobs WHERE image_id=?", (image.id,))
                       if r[0] not in keep]
            conn.executemany("DELETE FROM image_blobs WHERE image_id=? AND digest=?",
                             [(image.id, d) for d in dropped])
            conn.executemany("INSERT OR IGNORE INTO image_blobs(image_id, digest) VALUES (?,?)",
                             [(image.id, d) for d in keep])
            conn.executemany("DELETE FROM layers WHERE digest=? AND NOT EXISTS"
                             " (SELECT 1 FROM image_blobs WHERE digest=?)", [(d, d) for d in dropped])
        return self.get(image.id), dropped

    def tag(self, image_id: str, ref: Reference) -> None:
        with self.db.transaction() as conn:
            self._tag(conn, image_id, ref, time.time())

    @staticmethod
    def _tag(conn, image_id: str, ref: Reference, now: float) -> None:
        ref = ref.tagged_or_latest()
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        conn.execute("INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?,?)", (str(ref), image_id))
        conn.execute("UPDATE images SET last_tag_time=? WHERE id=?", (now, image_id))

    def untag(self, ref: str) -> None:
        with self.db.transaction() as conn:
            table = "repo_digests" if "@" in ref else "tags"
            conn.execute(f"DELETE FROM {table} WHERE ref=?", (ref,))

    def delete(self, image_id: str) -> list[str]:
        """Remove the image's rows; return the blobs nothing references now."""
        with self.db.transaction() as conn:
            blobs = [r[0] for r in conn.execute(
                "SELECT digest FROM image_blobs WHERE image_id=?", (image_id,))]
            conn.execute("DELETE FROM images WHERE id=?", (image_id,))
            conn.execute("UPDATE images SET parent_id=NULL WHERE parent_id=?", (image_id,))
            orphans = [b for b in blobs if conn.execute(
                "SELECT 1 FROM image_blobs WHERE digest=? LIMIT 1", (b,)).fetchone() is None]
            conn.executemany("DELETE FROM layers WHERE digest=?", [(b,) for b in orphans])
        return orphans

    # -- reading -------------------------------------------------------------

    def _load(self, rows) -> list[Image]:
        images = [Image(**dict(r)) for r in rows]
        if not images:
            return images
        by_id = {img.id: img for img in images}
        marks = ",".join("?" * len(by_id))
        for r in self.db.query(f"SELECT ref, image_id FROM tags WHERE image_id IN ({marks}) ORDER BY ref",
                               list(by_id)):
            by_id[r["image_id"]].tags.append(r["ref"])
        for r in self.db.query(
                f"SELECT ref, image_id FROM repo_digests WHERE image_id IN ({marks}) ORDER BY ref",
                list(by_id)):
            by_id[r["image_id"]].repo_digests.append(r["ref"])
        return images

    def list(self) -> list[Image]:
        return self._load(self.db.query("SELECT * FROM images ORDER BY added_at DESC"))

    def get(self, image_id: str) -> Image:
        found = self._load(self.db.query("SELECT * FROM images WHERE id=?", (image_id,)))
        if not found:
            raise NotFound(f"No such image: {image_id}")
        return found[0]

    def find(self, name: str) -> Image | None:
        """Docker's lookup order: full ID, then name, then unique ID prefix."""
        if dg.is_digest(name):
            row = self.db.query_one("SELECT id FROM images WHERE id=?", (name,))
            return self.get(row["id"]) if row else None
        ref = None
        try:
            ref = parse(name)
        except InvalidArgument:
            if not _HEX_PREFIX.match(name):
                raise
        if ref is not None:
            if ref.digest:
                row = self.db.query_one("SELECT image_id FROM repo_digests WHERE ref=?",
                                        (f"{ref.name}@{ref.digest}",))
                if row is None:
                    # Any local image whose manifest has that digest will do.
                    row = self.db.query_one(
                        "SELECT id AS image_id FROM images WHERE manifest_digest=?", (ref.digest,))
            else:
                row = self.db.query_one("SELECT image_id FROM tags WHERE ref=?",
                                        (str(ref.tagged_or_latest()),))
            if row is not None:
                return self.get(row["image_id"])
        m = _HEX_PREFIX.match(name)
        if m:
            rows = self.db.query("SELECT id FROM images WHERE id LIKE ?", (f"sha256:{m.group(1)}%",))
            if len(rows) == 1:
                return self.get(rows[0]["id"])
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {m.group(1)}")
        return None

    def resolve(self, name: str) -> Image:
        img = self.find(name)
        if img is None:
            raise NotFound(f"No such image: {_display(name)}")
        return img

    def config_bytes(self, image: Image) -> bytes:
        return self.blobs.read(image.id)

    def config(self, image: Image) -> dict:
        return cfgmod.parse_config(self.config_bytes(image))

    def manifest(self, image: Image) -> dict:
        return cfgmod.parse_manifest(self.blobs.read(image.manifest_digest))

    def layers(self, image: Image) -> list[cfgmod.LayerDescriptor]:
        """The image's layers in order, bottom first."""
        manifest = self.manifest(image)
        diff_ids = cfgmod.diff_ids(self.config(image))
        out = []
        for desc, diff_id in zip(manifest["layers"], diff_ids):
            row = self.db.query_one("SELECT size FROM layers WHERE digest=?", (desc["digest"],))
            out.append(cfgmod.LayerDescriptor(
                digest=desc["digest"], diff_id=diff_id, size=row["size"] if row else 0,
                compressed_size=desc["size"], media_type=desc["mediaType"]))
        return out

    def children(self, image_id: str) -> list[str]:
        return [r["id"] for r in self.db.query("SELECT id FROM images WHERE parent_id=?", (image_id,))]

    def referenced_blobs(self) -> set[str]:
        return {r[0] for r in self.db.query("SELECT DISTINCT digest FROM image_blobs")}

    def shared_size(self, image: Image) -> int:
        """Bytes of the image's layers that other images use too (for system df)."""
        row = self.db.query_one(
            "SELECT COALESCE(SUM(l.size),0) FROM image_blobs b JOIN layers l ON l.digest=b.digest"
            " WHERE b.image_id=? AND EXISTS (SELECT 1 FROM image_blobs o"
            " WHERE o.digest=b.digest AND o.image_id<>b.image_id)", (image.id,))
        return row[0]


def _display(name: str) -> str:
    """How Docker names a missing image in its error: with the implied tag."""
    try:
        ref = parse(name)
    except InvalidArgument:
        return name
    if _HEX_PREFIX.match(name) and ref.familiar() == name:
        return name
    return ref.tagged_or_latest().familiar()
