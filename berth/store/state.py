"""The state root: where a berth instance keeps everything."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from berth.store.blobs import BlobStore
from berth.store.db import Database
from berth.store.events import EventLog
from berth.store.locks import file_lock

DEFAULT_ROOT = Path("/var/lib/berth")
# Staging files older than this belong to a writer that died.
STALE_STAGING_SECONDS = 3600


@dataclass
class State:
    root: Path
    db: Database = field(init=False)
    blobs: BlobStore = field(init=False)
    events: EventLog = field(init=False)

    def __post_init__(self):
        self.root = Path(self.root).absolute()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.blobs = BlobStore(self.root)
        self.db = Database(self.root / "berth.db")
        self.events = EventLog(self.root)

    def subdir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextmanager
    def ingesting(self):
        """Held while blobs are written ahead of the rows that will own them."""
        with file_lock(self.root / "gc.lock", exclusive=False):
            yield

    @contextmanager
    def collecting(self):
        """Held while unreferenced blobs are swept; excludes all ingestion."""
        with file_lock(self.root / "gc.lock", exclusive=True):
            yield
