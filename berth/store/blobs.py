"""Content-addressed blob storage.

A blob becomes visible under `blobs/sha256/<hex>` only by an atomic rename
after its bytes were hashed, checked against the expected digest and
fsynced, so a crash at any point leaves either no blob or a whole one.
Staging files live in the store's tmp/ directory on the same filesystem.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from berth.errors import DataCorrupt, NotFound
from berth.lazy import lazy_import
from berth.store import digest as dg

# OpenSSL's SHA-256 is the fastest over big blobs, but loading it costs
# every command milliseconds; most commands only read blobs.
hashlib = lazy_import("hashlib")

COPY_CHUNK = 1 << 20


class BlobWriter:
    """Streams bytes into a staging file; `commit()` publishes it by digest."""

    def __init__(self, store: "BlobStore", expected: str | None = None):
        self._store = store
        self._expected = dg.validate(expected) if expected else None
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = name
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None
        self.created = False  # whether commit() added a blob that was not there

    def write(self, data) -> int:
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def commit(self) -> str:
        digest = "sha256:" + self._hash.hexdigest()
        if self._expected and digest != self._expected:
            self.abort()
            raise DataCorrupt(f"digest mismatch: expected {self._expected}, got {digest}")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        dest = self._store.path(digest)
        if dest.exists():
            os.unlink(self._tmp)
        else:
            os.chmod(self._tmp, 0o444)
            os.rename(self._tmp, dest)
            self.created = True
        self.digest = digest
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.digest is None:
            self.abort()


class BlobStore:
    def __init__(self, root: Path):
        self.dir = Path(root) / "blobs" / "sha256"
        self.tmp_dir = Path(root) / "tmp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / dg.hex_of(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def writer(self, expected: str | None = None) -> BlobWriter:
        return BlobWriter(self, expected)

    def put(self, data: bytes, expected: str | None = None) -> str:
        with self.writer(expected) as w:
            w.write(data)
            return w.commit()

    def put_stream(self, src: BinaryIO, expected: str | None = None) -> tuple[str, int]:
        with self.writer(expected) as w:
            while chunk := src.read(COPY_CHUNK):
                w.write(chunk)
            return w.commit(), w.size

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def __iter__(self) -> Iterator[str]:
        for entry in os.scandir(self.dir):
            yield "sha256:" + entry.name

    def verify(self, digest: str) -> bool:
        h = hashlib.sha256()
        with self.open(digest) as f:
            while chunk := f.read(COPY_CHUNK):
                h.update(chunk)
        return "sha256:" + h.hexdigest() == digest

    def copy_to(self, digest: str, dest: BinaryIO) -> None:
        with self.open(digest) as f:
            shutil.copyfileobj(f, dest, COPY_CHUNK)

    def stale_staging(self, older_than: float) -> list[Path]:
        """Staging files left by crashed writers (older than the given epoch)."""
        return [p for p in self.tmp_dir.iterdir() if p.stat().st_mtime < older_than]
