"""Volumes for the CLI and the API: `volume create/ls/inspect/rm/prune`,
the volume half of `system df`, and the mount steps of a container's life."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from berth.container import volumes as vol
from berth.container.volumes import MountPoint, VolumeStore
# The flag parsers a client runs before it sends a create request.
from berth.container.volumes import check_volume_flag, parse_mount_spec, parse_tmpfs_spec  # noqa: F401
from berth.runtime import spec as rs
from berth.store.state import State


class VolumeService:
    def __init__(self, state: State):
        self.state = state
        self.store = VolumeStore(state)

    # -- volume commands -------------------------------------------------------------

    def create(self, name: str | None = None, *, driver: str = vol.LOCAL_DRIVER,
               labels: Mapping[str, str] | None = None, options: Mapping[str, str] | None = None) -> dict:
        """POST /volumes/create; an existing name returns that volume unchanged."""
        return self.store.create(name or None, driver or vol.LOCAL_DRIVER, labels, options).inspect()

    def inspect(self, name: str) -> dict:
        return self.store.inspect(name)

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
        """GET /volumes' "Volumes", by name."""
        return [v.inspect() for v in self.store.list(filters)]

    def remove(self, name: str, *, force: bool = False) -> None:
        self.store.remove(name, force=force)

    def prune(self, *, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None
              ) -> tuple[list[str], int]:
        """(names deleted, bytes reclaimed)."""
        return self.store.prune(all=all, filters=filters)

    def disk_usage(self) -> list[dict]:
        """`system df`'s Volumes: local volumes without mount options, with UsageData."""
        return [{**u.volume.inspect(), "UsageData": {"Size": u.size, "RefCount": u.links}}
                for u in self.store.usage()]

    # -- a container's mounts ----------------------------------------------------------

    def plan(self, container_id: str, config: Mapping, host_config: Mapping) -> list[dict]:
        """At create, after the container's row exists: its mount point records.

        Creates the volumes it names and anonymous ones for Config.Volumes
        (the image's VOLUMEs and `-v /path`) that no mount covers.
        """
        points = vol.plan_mounts(self.state, vol.specs_from_host_config(host_config),
                                 config.get("Volumes") or {}, container_id,
                                 tmpfs=host_config.get("Tmpfs") or {},
                                 volume_driver=host_config.get("VolumeDriver") or "")
        return [p.to_record() for p in points]

    def populate(self, records: Iterable[Mapping], rootfs_dir) -> None:
        """Copy-up into empty volumes; once, with the root filesystem mounted, before the first start."""
        vol.populate_volumes(self.state, _points(records), rootfs_dir)

    def activate(self, records: Iterable[Mapping], container_id: str) -> list[rs.Mount]:
        """At each start: the OCI mounts of the container's binds, volumes and tmpfs mounts."""
        return [r.mount for r in vol.activate_mounts(self.state, _points(records), container_id)]

    def deactivate(self, records: Iterable[Mapping], container_id: str) -> None:
        """At each stop (and when a dead supervisor is noticed)."""
        vol.deactivate_mounts(self.state, _points(records), container_id)

    def remove_anonymous(self, container) -> list[str]:
        """`rm -v` / `run --rm`: the container's anonymous volumes go, named ones stay.

        Takes the container record (its spec's "MountPoints") or the records
        themselves.  Safe after the container's row is gone.
        """
        records = container if isinstance(container, (list, tuple)) else container.spec.get("MountPoints") or []
        container_id = getattr(container, "id", "")
        return vol.remove_anonymous_volumes(self.state, _points(records), container_id)

    def release(self, container_id: str) -> None:
        """Drop the container's references without removing anything (plain `rm`)."""
        self.store.release_container(container_id)


def mounts_for_inspect(records: Iterable[Mapping]) -> list[dict]:
    """Inspect's "Mounts" from the stored records."""
    return [MountPoint.from_record(r).inspect() for r in records]


def _points(records: Iterable[Mapping]) -> list[MountPoint]:
    return [MountPoint.from_record(r) for r in records]
