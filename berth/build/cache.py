"""The build cache: a step's earlier image, found by parent and configuration.

Keyed as Docker's classic builder keys it, with no index of its own: the
images a step produced are the cache entries.  A step hits when an image
whose parent is the current image has the same `container_config`, which
holds the step itself (the RUN command with the build args it sees, or the
`#(nop)` line of any other instruction; for ADD/COPY that line carries the
hash of the sources' content and metadata, never their mtimes).  Removing
an image removes its cache entry with it, and nothing can go stale.

Docker compares a handful of fields; berth compares the whole configuration
but for Hostname (the step's container) and Image (the parent, already
matched), so a hit is never an image that a fresh build would not produce.
"""

from __future__ import annotations

from collections.abc import Mapping

from berth.build.commit import docker_config
from berth.errors import BerthError
from berth.image import config as cfgmod
from berth.image.store import Image, ImageStore

__all__ = ["find_cached"]

_IGNORED = frozenset({"Hostname", "Domainname", "Image"})


def _comparable(config: Mapping) -> dict:
    # Go's nil and empty collections marshal differently but mean the same here.
    return {k: (v or None) if isinstance(v, (list, dict)) or v is None else v
            for k, v in docker_config(config).items() if k not in _IGNORED}


def find_cached(images: ImageStore, parent_id: str, container_config: Mapping) -> Image | None:
    """The newest child of `parent_id` ("" for scratch) built with `container_config`."""
    if parent_id:
        candidates = images.children(parent_id)
    else:
        candidates = [i.id for i in images.list() if not i.parent_id]
    wanted = _comparable(container_config)
    best, best_time = None, 0.0
    for image_id in candidates:
        try:
            cfg = cfgmod.parse_config(images.blobs.read(image_id))
        except BerthError:
            continue  # a broken image is no cache entry
        found = cfg.get("container_config")
        if found is None or found.get("OpenStdin") or _comparable(found) != wanted:
            continue
        created = cfgmod.parse_time(cfg.get("created"))
        if best is None or created > best_time:
            best, best_time = image_id, created
    return images.get(best) if best else None
