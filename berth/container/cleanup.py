"""Releasing what a container holds, on every exit path.

Called by the supervisor when the process exits, by `rm`, and by
`reconcile` when a supervisor died: each step is idempotent, so a crash in
the middle of one call is finished by the next.
"""

from __future__ import annotations

import os
import shutil

from berth.container.paths import ContainerPaths
from berth.container.record import Container
from berth.container.sandbox import run_release_hook
from berth.container.store import ContainerStore
from berth.errors import BerthError, NotFound
from berth.runtime.builtin.linux import umount2
from berth.lazy import lazy_import
from berth.store.state import State

vol = lazy_import("berth.container.volumes")  # loaded only for containers with volumes

MNT_DETACH = 2


def is_mounted(path) -> bool:
    target = os.fspath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def unmount(path) -> None:
    """Unmount `path` and anything below it; lazily if something still holds it."""
    target = os.fspath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p == target or p.startswith(target + "/")), reverse=True):
        try:
            umount2(point, 0)
        except OSError:
            umount2(point, MNT_DETACH)


def mount_points(c: Container) -> list[vol.MountPoint]:
    return [vol.MountPoint.from_record(r) for r in c.spec.get("MountPoints") or []]


def release_resources(state: State, c: Container, runtime) -> None:
    """Kill and delete the runtime's container, unmount its filesystems."""
    paths = ContainerPaths(state.root, c.id)
    try:
        runtime.delete(c.id, force=True)
    except NotFound:
        pass
    points = mount_points(c)
    if points:
        vol.deactivate_mounts(state, points, c.id)
    if paths.rootfs.exists():
        unmount(paths.rootfs)
    run_release_hook(c.spec.get("ReleaseHook"), state.root, c.id)


def remove_container(state: State, store: ContainerStore, c: Container, runtime, *,
                     anonymous_volumes: bool = False) -> None:
    """Everything `rm` removes: resources, files, sockets and the record."""
    paths = ContainerPaths(state.root, c.id)
    release_resources(state, c, runtime)
    if paths.rootfs.exists() and is_mounted(paths.rootfs):
        # Never delete through a mount: that would reach into what it shows.
        raise BerthError(f"cannot remove container {c.id[:12]}: its root filesystem is still mounted")
    store.delete(c.id)
    if anonymous_volumes and c.spec.get("MountPoints"):
        vol.remove_anonymous_volumes(state, mount_points(c), c.id)
    shutil.rmtree(paths.run, ignore_errors=True)
    shutil.rmtree(paths.dir, ignore_errors=True)
