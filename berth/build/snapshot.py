"""Build steps' filesystems: a writable overlay of an image, and its layer.

ADD, COPY and WORKDIR write into an overlay of the parent image mounted
here (as Docker copies into the build container's layer); RUN writes into
its container's own upper directory.  Either way the upper directory is the
step's layer.  Before it is archived, the mount points the runtime had to
create for /etc/hosts, /proc and the like are removed from it
(berth.layer.mountpoints), so a `RUN true` gives an empty layer under both
engines.  Once committed, the upper directory
becomes the unpacked layer the next steps mount, so a build never unpacks
what it has just archived.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from berth.image import config as cfgmod
from berth.image.store import Image, ImageStore
from berth.store.state import State

if TYPE_CHECKING:
    from berth.layer.snapshots import LayerCache

__all__ = ["adopt_layer", "image_lowers", "layer_of", "mounted"]

_PIPE_BUFFER = 1 << 20


def image_lowers(state: State, images: ImageStore, layers: LayerCache, image: Image | None) -> list[Path]:
    """The unpacked layer directories of `image`, bottom first (none for scratch)."""
    if image is None:
        return []
    descriptors = images.layers(image)
    chains = cfgmod.chain_ids([d.diff_id for d in descriptors])
    return layers.ensure([(chain, (lambda digest=d.digest: state.blobs.open(digest)))
                          for chain, d in zip(chains, descriptors)])


@contextmanager
def mounted(layers: LayerCache, lowers: list[Path], workdir: Path) -> Iterator[tuple[Path, Path]]:
    """Mount `lowers` under a fresh upper directory in `workdir`: (merged, upper).

    The mount is gone when the block ends, whatever happens in it; the upper
    directory stays for the caller to archive.
    """
    from berth.container.cleanup import unmount
    from berth.container.mounting import mount_rootfs

    upper, work, merged = workdir / "upper", workdir / "work", workdir / "merged"
    mount_rootfs(layers.rootfs_mount(lowers, upper, work), merged)
    try:
        yield merged, upper
    finally:
        unmount(merged)


def _is_empty_dir(path: Path) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


@contextmanager
def layer_of(upper: Path) -> Iterator[BinaryIO | None]:
    """The layer tar of an upper directory as a stream, or None when the step
    changed nothing.

    The tar is written by a thread into a pipe, so archiving overlaps with
    whatever reads it (hashing and compressing, on another core).
    """
    from berth.layer.diff import diff_tar

    if not upper.exists() or _is_empty_dir(upper):
        yield None
        return
    r, w = os.pipe()
    reader, writer = open(r, "rb", buffering=_PIPE_BUFFER), open(w, "wb", buffering=_PIPE_BUFFER)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with writer:
                diff_tar(upper, writer)
        except BrokenPipeError:
            pass  # the reader gave up; its own error tells why
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread
            failure.append(e)

    thread = threading.Thread(target=produce, name="layer-tar", daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        reader.close()  # unblocks a writer stuck on a full pipe
        thread.join()
    if failure:
        raise failure[0]


def adopt_layer(layers: LayerCache, chain_id: str, upper: Path) -> None:
    """Keep a committed step's upper directory as the unpacked layer that the
    next steps mount, instead of unpacking the blob just made from it again.

    An upper directory is already in the layer cache's format (overlay
    whiteouts and opaque directories).  When the layer is there already, or
    the rename cannot be done, nothing happens: the cache unpacks the blob
    when it is needed, as for any pulled layer.
    """
    dest = layers.path(chain_id)
    if dest.exists() or not upper.exists():
        return
    try:
        os.chmod(upper, 0o755)
        os.rename(upper, dest)
    except OSError:
        pass
