"""berth.engine: one Python API over the store, images, containers and volumes.

The CLI and the API server call only this.  Services are built on first
use, so a command loads only the modules it needs (a CLI's start-up time is
part of every `berth run`).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from berth.store.state import State


class Engine:
    def __init__(self, root: Path):
        self.state = State(root)

    @cached_property
    def images(self):
        from berth.engine.images import ImageService
        return ImageService(self.state, containers_using=self.containers_using)

    @cached_property
    def volumes(self):
        from berth.engine.volumes import VolumeService
        return VolumeService(self.state)

    @cached_property
    def sandboxes(self):
        from berth.network.provider import BridgeSandboxes
        # Containers are looked up through the manager, whose get() notices dead supervisors.
        return BridgeSandboxes(self.state, lookup=lambda ref: self.containers.get(ref))

    @cached_property
    def containers(self):
        from berth.container.manager import ContainerManager
        from berth.image.store import ImageStore
        manager = ContainerManager(self.state, ImageStore(self.state), self.sandboxes)
        # An engine start: give back what crashed starts and dead supervisors left in the kernel.
        self.sandboxes.recover(manager.get)
        return manager

    @cached_property
    def networks(self):
        from berth.engine.networks import NetworkService
        return NetworkService(self.state, self.containers, self.sandboxes)

    @cached_property
    def filesystems(self):
        from berth.engine.containers import Filesystems
        return Filesystems(self.containers)

    @cached_property
    def system(self):
        from berth.engine.system import SystemService
        from berth.image.store import ImageStore
        return SystemService(self.state, ImageStore(self.state))

    @cached_property
    def registry(self):
        from berth.engine.registry import RegistryService
        from berth.image.store import ImageStore
        return RegistryService(ImageStore(self.state))

    @cached_property
    def build(self):
        from berth.engine.build import BuildService
        # FROM and COPY --from take local images, pulling missing ones as Docker does.
        return BuildService(self.state, lambda: self.containers,
                            resolve_image=lambda name: self.registry.ensure_image(name))

    def containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(container ID, running) of every container created from the image."""
        return self.containers.using_image(image_id)

    def update_container(self, ref: str, update: dict) -> list[str]:
        """Docker's `update` (restart policy, resources); the warnings."""
        from berth.engine.containers import update_container
        return update_container(self.containers, ref, update)

    def use_fork_server(self, log=None):
        """Have supervisors forked by a fork server (berth.container.forkserver):
        for a multi-threaded process (the daemon), which cannot fork them
        itself.  Returns the server, started; close it when done."""
        from berth.container.forkserver import ForkServer
        server = ForkServer(log=log)
        self.containers.fork_server = server
        server.start()
        return server

    def close(self) -> None:
        self.state.db.close()
