"""berth.engine: one Python API over the store and images.

The CLI and the API server call only this.
"""

from __future__ import annotations

from pathlib import Path

from berth.engine.images import ImageService
from berth.engine.system import SystemService
from berth.store.state import State


class Engine:
    def __init__(self, root: Path):
        self.state = State(root)
        self.images = ImageService(self.state, containers_using=self.containers_using)
        self.system = SystemService(self.state, self.images.store)

    def containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(container ID, running) of every container created from the image."""
        return []

    def close(self) -> None:
        self.state.db.close()
