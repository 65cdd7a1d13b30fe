"""Image configs and manifests as Docker and the OCI spec define them.

Configs stay JSON dicts (they are open-ended and must round-trip byte for
byte), built and read by the pure functions here.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Mapping
from datetime import datetime, timezone

from berth.errors import DataCorrupt
from berth.image import mediatypes as mt
from berth.store import digest as dg

# The PATH Docker puts in every image it builds from scratch or imports.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> str:
    machine = os.uname().machine
    return _GOARCH.get(machine, machine)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_time(value: str | None) -> float:
    """Epoch seconds of an RFC 3339 timestamp with up to nanosecond precision."""
    m = _RFC3339.match(value or "")
    if not m:
        return 0.0
    seconds = datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    if m[3] != "Z":
        sign = 1 if m[3][0] == "+" else -1
        seconds -= sign * (int(m[3][1:3]) * 3600 + int(m[3][4:6]) * 60)
    return seconds + (float("0." + m[2]) if m[2] else 0.0)


def now_rfc3339() -> str:
    """Go's RFC3339Nano in UTC (trailing zeros trimmed), as Docker writes
    `created`; Go tools that re-serialise a config then keep its digest."""
    return rfc3339_nano(time.time_ns())


def rfc3339_nano(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{frac:09d}".rstrip("0")
    return text + ("." + digits if digits else "") + "Z"


@dataclass(frozen=True)
class LayerDescriptor:
    """One layer as stored: the blob (gzip as pulled, else plain) and the tar it is."""
    digest: str        # the blob, as stored
    diff_id: str       # sha256 of the uncompressed tar
    size: int          # uncompressed bytes
    compressed_size: int
    media_type: str = mt.OCI_LAYER_GZIP


def canonical_json(obj) -> bytes:
    """Compact JSON as Docker writes configs and manifests (no spaces)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def new_config(*, diff_ids: list[str], container_config: dict, history: list[dict],
               created: str | None = None, author: str = "", comment: str = "",
               parent: dict | None = None) -> dict:
    """A fresh image config, inheriting platform fields from `parent`."""
    cfg = {
        "architecture": (parent or {}).get("architecture") or host_arch(),
        "config": container_config,
        "created": created or now_rfc3339(),
        "history": history,
        "os": (parent or {}).get("os") or "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if author:
        cfg["author"] = author
    if comment:
        cfg["comment"] = comment
    if parent and parent.get("variant"):
        cfg["variant"] = parent["variant"]
    return cfg


def parse_config(data: bytes) -> dict:
    try:
        cfg = json.loads(data)
    except ValueError as e:
        raise DataCorrupt(f"invalid image config: {e}") from None
    if not isinstance(cfg, dict):
        raise DataCorrupt("invalid image config: not a JSON object")
    rootfs = cfg.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids")
    if rootfs.get("type") != "layers" or not isinstance(diff_ids, list):
        raise DataCorrupt("invalid image config: rootfs must be of type layers with diff_ids")
    for d in diff_ids:
        if not isinstance(d, str) or not dg.is_digest(d):
            raise DataCorrupt(f"invalid image config: bad diff_id {d!r}")
    return cfg


def diff_ids(cfg: dict) -> list[str]:
    return list((cfg.get("rootfs") or {}).get("diff_ids") or [])


def build_manifest(config_bytes: bytes, layers: list[LayerDescriptor],
                   media_type: str = mt.OCI_MANIFEST) -> bytes:
    oci = media_type == mt.OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG,
            "digest": dg.of_bytes(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": layer.media_type if oci else mt.DOCKER_LAYER_TYPES.get(layer.media_type,
                                                                                 layer.media_type),
             "digest": layer.digest, "size": layer.compressed_size}
            for layer in layers
        ],
    }
    return canonical_json(manifest)


def parse_manifest(data: bytes) -> dict:
    try:
        m = json.loads(data)
    except ValueError as e:
        raise DataCorrupt(f"invalid manifest: {e}") from None
    if not isinstance(m, dict) or m.get("schemaVersion") != 2:
        raise DataCorrupt("invalid manifest: unsupported schema version")
    if "config" not in m or not isinstance(m.get("layers"), list):
        raise DataCorrupt("invalid manifest: missing config or layers")
    return m


def chain_ids(diff_ids_: list[str]) -> list[str]:
    """OCI ChainIDs: the identity of a layer together with all below it."""
    out: list[str] = []
    for d in diff_ids_:
        out.append(d if not out else dg.of_bytes(f"{out[-1]} {d}".encode()))
    return out


# Docker's container.Config in Go's field order, with the JSON of its zero
# value (None where Go writes null); the second group is omitted when empty.
_FIELDS = (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
           ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False),
           ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
           ("Healthcheck", None), ("ArgsEscaped", None), ("Image", ""), ("Volumes", None),
           ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", None), ("MacAddress", None),
           ("OnBuild", None), ("Labels", None), ("StopSignal", None), ("StopTimeout", None),
           ("Shell", None))
_OMIT_EMPTY = frozenset({"ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress",
                         "StopSignal", "StopTimeout", "Shell"})


def docker_container_config(config: Mapping) -> dict:
    """`config` as Docker serialises a container.Config: every field, Go's order."""
    out = {}
    for key, zero in _FIELDS:
        value = config.get(key, zero)
        if key in _OMIT_EMPTY and not value:
            continue
        out[key] = value
    for key, value in config.items():
        out.setdefault(key, value)
    return out
