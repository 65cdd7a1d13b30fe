"""The engine's container operations that need more than the container layer.

Most container calls go straight to `engine.containers` (the container
layer's manager); `commit` also needs the Dockerfile instruction parser to
apply `-c` changes, which lives in the build layer above the containers.
"""

from __future__ import annotations

from berth.build.instructions import apply_changes
from berth.container.manager import ContainerFilesystem
from berth.image.reference import parse_normalized_named


class Filesystems(ContainerFilesystem):
    def commit(self, ref: str, *, repository: str | None = None, changes: list[str] = (),
               message: str = "", author: str = "", pause: bool = True):
        tag = parse_normalized_named(repository) if repository else None
        return super().commit(ref, tag=tag, message=message, author=author, pause=pause,
                              change_config=lambda config: apply_changes(config, list(changes)))
