"""Build steps as images: the config Docker's classic builder writes, and the commit.

Every step commits an image whose parent is the previous step's image (so
`images -a` and `history` show the chain), whose `container_config` is the
configuration the step ran with (its Cmd is the step itself: the RUN
command or a `#(nop)` line) and whose `config` is what containers of the
image get.  The build cache finds a step's image again by parent and
`container_config` (berth.build.cache).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import BinaryIO

from berth.image import config as cfgmod
from berth.image.config import docker_container_config as docker_config
from berth.image.store import Image, ImageStore

__all__ = ["child_config", "commit_step", "docker_config"]

def child_config(parent: Mapping | None, *, config: Mapping, container_config: Mapping,
                 container_id: str, author: str, created_by: str, diff_id: str | None,
                 created: str) -> dict:
    """The image config Docker's NewChildImage makes for one build step."""
    parent = parent or {}
    history = list(copy.deepcopy(parent.get("history") or []))
    entry: dict = {"created": created}
    if author:
        entry["author"] = author
    entry["created_by"] = created_by
    if diff_id is None:
        entry["empty_layer"] = True
    history.append(entry)
    diff_ids = cfgmod.diff_ids(parent) + ([diff_id] if diff_id else [])
    # Go marshals the image through a map: keys in byte order.
    out = {"architecture": parent.get("architecture") or cfgmod.host_arch()}
    if author:
        out["author"] = author
    out["config"] = docker_config(config)
    if container_id:
        out["container"] = container_id
    out["container_config"] = docker_config(container_config)
    out["created"] = created
    out["history"] = history
    out["os"] = parent.get("os") or "linux"
    for key in ("os.features", "os.version"):
        if parent.get(key):
            out[key] = parent[key]
    out["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    if parent.get("variant"):
        out["variant"] = parent["variant"]
    return out


def commit_step(images: ImageStore, parent: Image | None, parent_config: Mapping | None,
                layer: BinaryIO | None, **fields) -> Image:
    """Record one step's image: `layer` (a tar, None for an empty layer) over `parent`.

    `fields` are child_config's keyword arguments other than diff_id.
    """
    from berth.layer.ingest import ingest_layer

    base_layers = images.layers(parent) if parent is not None else []
    with images.ingestion() as added:
        descriptor = ingest_layer(layer, images.blobs, added=added) if layer is not None else None
        cfg = child_config(parent_config, diff_id=descriptor.diff_id if descriptor else None, **fields)
        layers = base_layers + ([descriptor] if descriptor else [])
        return images.add(cfgmod.canonical_json(cfg), layers, parent_id=parent.id if parent else None)
