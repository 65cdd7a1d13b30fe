"""Where a container's network comes from: the seam between containers and
the network layer above them.

The container layer knows only this protocol.  The engine hands the
container manager a provider (berth.network's bridge-and-user-networks
provider, or `LocalSandboxes` when networking is off); the manager asks it
for a placement before each start and tells it to release after each exit.
A supervisor, which runs in its own process and knows no provider, runs the
release named in the container's record (a "module:function" path) so that
a container exiting on its own gives back its addresses and port rules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from berth.container.record import Container
from berth.errors import Conflict
from berth.runtime import spec as rs


@dataclass
class Placement:
    netns: str                                   # rs.PRIVATE, rs.HOST or a netns path to join
    hosts: list[tuple[str, str]] = field(default_factory=list)   # (address, "name alias ...")
    resolv_conf: str | None = None               # None: the host's, as Docker filters it
    env: list[str] = field(default_factory=list)  # Docker's link variables
    release_hook: str | None = None              # "module:function(root, container_id)"
    host_gateway: str | None = None              # what `--add-host NAME:host-gateway` names


class SandboxProvider(Protocol):
    def prepare(self, c: Container) -> Placement:
        """Before a start: the network namespace to join, made ready."""

    def release(self, c: Container) -> None:
        """After the last exit (or rm): give back addresses, links, port rules. Idempotent."""

    def settings(self, c: Container) -> dict:
        """inspect's NetworkSettings."""

    def ports(self, c: Container) -> list[dict]:
        """ps's Ports: [{IP, PrivatePort, PublicPort, Type}]."""


class LocalSandboxes:
    """none, host and container:ID; everything else gets a private, empty namespace."""

    def __init__(self, lookup):
        self._lookup = lookup  # ref -> running Container

    def prepare(self, c: Container) -> Placement:
        mode = c.host_config.get("NetworkMode") or "default"
        if mode == "host":
            return Placement(rs.HOST)
        if mode.startswith("container:"):
            other = self._lookup(mode.split(":", 1)[1])
            if not other.state.get("Running") or not other.state.get("Pid"):
                raise Conflict(f"cannot join network of a non running container: {other.short_id}")
            return Placement(f"/proc/{other.state['Pid']}/ns/net")
        return Placement(rs.PRIVATE)

    def release(self, c: Container) -> None:
        return None

    def settings(self, c: Container) -> dict:
        return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "Ports": {}, "SandboxKey": "",
                "Networks": {}}

    def ports(self, c: Container) -> list[dict]:
        return []


def run_release_hook(hook: str | None, root: Path, container_id: str) -> None:
    """Call a provider's release by name (used where no provider object exists)."""
    if not hook:
        return
    module, _, function = hook.partition(":")
    getattr(importlib.import_module(module), function)(root, container_id)
