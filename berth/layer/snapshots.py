"""Image layers unpacked once, for overlayfs; container filesystems on top.

Like containerd's snapshotters, this module prepares directories and returns
the mount that assembles them; it never mounts.  Whoever runs the container
mounts it and unmounts it on every exit path.

Layout under the state root:
    layers/<chain-id hex>/          one layer's content, overlay whiteouts
    containers/<id>/fs/upper, work  the container's writable layer
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from berth.store import digest as dg


@dataclass(frozen=True)
class Mount:
    """A mount as the OCI runtime spec writes it (type, source, options)."""
    type: str
    source: str
    options: tuple[str, ...]
    # overlay lowerdirs are given relative to this directory, so that deep
    # images fit in mount(2)'s one-page option string; mount from there.
    cwd: str | None = None

    def data(self) -> str:
        return ",".join(self.options)


class LayerCache:
    def __init__(self, root: Path):
        self.dir = Path(root) / "layers"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._empty = self.dir / "empty"
        self._empty.mkdir(exist_ok=True)

    def path(self, chain_id: str) -> Path:
        return self.dir / dg.hex_of(chain_id)

    def ensure(self, layers: list[tuple[str, Callable[[], BinaryIO]]]) -> list[Path]:
        """Unpack each (chain id, opener) not yet unpacked; bottom layer first.

        Each layer is unpacked into a private temporary directory and renamed
        into place, so concurrent callers and crashes never expose half a layer.
        """
        out = []
        for chain_id, opener in layers:
            dest = self.path(chain_id)
            if not dest.exists():
                from berth.layer.apply import apply_layer  # most starts find every layer unpacked

                tmp = self.staging()
                try:
                    with opener() as f:
                        apply_layer(f, tmp, whiteout_mode="overlay")
                    self.adopt(tmp, chain_id)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
            out.append(dest)
        return out

    def stale_staging(self, older_than: float) -> list[Path]:
        """Staging directories left by a killed unpack (older than the given epoch)."""
        return [p for p in self.dir.glob(".unpack-*") if p.stat().st_mtime < older_than]

    def has(self, chain_id: str) -> bool:
        return self.path(chain_id).exists()

    def staging(self) -> Path:
        """A private directory to unpack a layer into, for `adopt` (or removal)."""
        return Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.dir))

    def adopt(self, staged: Path, chain_id: str) -> Path:
        """A layer unpacked into `staged` (see `staging`) becomes the chain's, whole or not at all."""
        dest = self.path(chain_id)
        os.chmod(staged, 0o755)
        try:
            os.rename(staged, dest)
        except OSError:
            if not dest.exists():
                raise
            # Another process unpacked the same layer first.
            shutil.rmtree(staged, ignore_errors=True)
        return dest

    def remove(self, chain_id: str) -> None:
        shutil.rmtree(self.path(chain_id), ignore_errors=True)

    def rootfs_mount(self, lowers: list[Path], upper: Path, work: Path) -> Mount:
        """The overlay mount of `lowers` (bottom first) under a writable `upper`."""
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        names = [p.name for p in reversed(lowers)] or [self._empty.name]
        return Mount(type="overlay", source="overlay",
                     options=(f"lowerdir={':'.join(names)}", f"upperdir={upper}", f"workdir={work}"),
                     cwd=str(self.dir))
