"""Choosing the OCI runtime a container runs under: berth's own, runc or crun."""

from __future__ import annotations

import shutil
from pathlib import Path

from berth.errors import InvalidArgument
from berth.runtime.oci import OCIRuntime

DEFAULT_RUNTIME = "berth"
EXTERNAL = ("runc", "crun")


def validate(name: str | None) -> str:
    name = name or DEFAULT_RUNTIME
    if name != DEFAULT_RUNTIME and name not in EXTERNAL:
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")
    if name in EXTERNAL and not shutil.which(name):
        raise InvalidArgument(f"unknown or invalid runtime name: {name} (not installed)")
    return name


def runtime_for(name: str | None, state_root: Path) -> OCIRuntime:
    """Each runtime keeps its state under its own directory of the run dir."""
    name = name or DEFAULT_RUNTIME
    if name == DEFAULT_RUNTIME:
        return OCIRuntime.builtin(state_root / DEFAULT_RUNTIME)
    return OCIRuntime(name, state_root=state_root / name)
