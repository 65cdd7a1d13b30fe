"""berth.engine: one Python API over the store, images, containers and volumes.

The CLI and the API server call only this.
"""

from __future__ import annotations

from pathlib import Path

from berth.container.manager import ContainerManager
from berth.engine.containers import Filesystems
from berth.engine.images import ImageService
from berth.engine.system import SystemService
from berth.engine.volumes import VolumeService
from berth.store.state import State


class Engine:
    def __init__(self, root: Path):
        self.state = State(root)
        self.images = ImageService(self.state, containers_using=self.containers_using)
        self.volumes = VolumeService(self.state)
        self.containers = ContainerManager(self.state, self.images.store)
        self.filesystems = Filesystems(self.containers)
        self.system = SystemService(self.state, self.images.store)

    def containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(container ID, running) of every container created from the image."""
        return self.containers.using_image(image_id)

    def close(self) -> None:
        self.state.db.close()
