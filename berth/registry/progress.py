"""Progress of a pull or push, as the lines of Docker's JSON message stream.

The registry layer only reports what happens; the CLI draws bars or prints
lines, and an API server can forward the same records as Docker's
`{"status", "id", "progressDetail"}` objects.  Sinks are called from worker
threads, so they must be thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Progress:
    status: str          # Docker's words: "Pulling fs layer", "Pushed", "Digest: sha256:..."
    id: str = ""         # a layer's short ID or a tag; empty for the operation's own lines
    current: int = 0     # bytes transferred, for "Downloading" and "Pushing"
    total: int = 0       # 0 when the line carries no byte count

    @property
    def is_transfer(self) -> bool:
        """A byte-count update, which Docker shows only as a bar on a terminal."""
        return self.total > 0

    def line(self) -> str:
        return f"{self.id}: {self.status}" if self.id else self.status


ProgressSink = Callable[[Progress], None]


def discard(_event: Progress) -> None:
    pass


def short_id(digest: str) -> str:
    """Docker's TruncateID: the first 12 hex digits."""
    return digest.split(":", 1)[-1][:12]
