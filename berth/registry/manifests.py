"""What a registry's manifests say, read by pure functions.

A reference names either an image manifest (OCI or Docker schema2) or an
index of them (OCI index or Docker manifest list), from which the entry for
one platform is chosen as containerd's platform matcher does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from berth.errors import DataCorrupt, InvalidArgument, NotFound
from berth.image import config as cfgmod
from berth.image import mediatypes as mt
from berth.store import digest as dg

# The order is the client's preference; registries serve what they hold.
ACCEPT = (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)
SCHEMA1 = {"application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws"}
CONFIGS = {mt.OCI_CONFIG, mt.DOCKER_CONFIG}
# Manifests and configs are read into memory; Docker caps manifests at 4 MiB.
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386",
                 "armhf": "arm", "armel": "arm"}
_ARCH_VARIANT = {"armhf": "v7", "armel": "v6"}
_KNOWN_OS = {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
             "aix", "plan9", "android", "ios", "js", "wasip1"}
_KNOWN_ARCH = {"amd64", "386", "arm", "arm64", "ppc64", "ppc64le", "s390x", "riscv64", "mips",
               "mipsle", "mips64", "mips64le", "loong64", "wasm"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        """`os[/arch[/variant]]`, or a lone arch meaning linux; normalised."""
        parts = [p.strip().lower() for p in text.split("/")]
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise InvalidArgument(f'"{text}": unknown operating system or architecture: invalid argument')
        if len(parts) == 1:
            if parts[0] in _KNOWN_OS:
                return cls.normalized(parts[0], cfgmod.host_arch(), "")
            if parts[0] in _KNOWN_ARCH or parts[0] in _ARCH_ALIASES:
                return cls.normalized("linux", parts[0], "")
            raise InvalidArgument(f'"{text}": unknown operating system or architecture: invalid argument')
        return cls.normalized(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    @classmethod
    def normalized(cls, os_: str, arch: str, variant: str = "") -> "Platform":
        os_ = "darwin" if os_ == "macos" else os_
        variant = variant or _ARCH_VARIANT.get(arch, "")
        arch = _ARCH_ALIASES.get(arch, arch)
        if variant and variant.isdigit():
            variant = "v" + variant
        if arch == "arm64" and variant == "v8":
            variant = ""
        if arch == "arm" and not variant:
            variant = "v7"
        return cls(os_, arch, variant)

    @classmethod
    def of(cls, obj: dict | None) -> "Platform | None":
        """The platform of an index entry or an image config, if it names one."""
        if not isinstance(obj, dict) or not obj.get("os") or not obj.get("architecture"):
            return None
        return cls.normalized(str(obj["os"]).lower(), str(obj["architecture"]).lower(),
                              str(obj.get("variant") or "").lower())


def host_platform() -> Platform:
    return Platform.normalized("linux", cfgmod.host_arch())


def _variant_rank(wanted: Platform, have: Platform) -> int | None:
    """How well `have` serves `wanted` (lower is better), or None if it cannot."""
    if (have.os, have.architecture) != (wanted.os, wanted.architecture):
        return None
    if have.variant == wanted.variant:
        return 0
    if not have.variant:
        return 1
    if wanted.architecture == "arm" and have.variant[1:].isdigit() and wanted.variant[1:].isdigit():
        # An armv7 machine runs v6 and v5 code: older variants are fallbacks.
        gap = int(wanted.variant[1:]) - int(have.variant[1:])
        return 1 + gap if gap > 0 else None
    return None if wanted.variant else 2


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    annotations: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def descriptor(obj) -> Descriptor:
    if not isinstance(obj, dict):
        raise DataCorrupt("invalid manifest: descriptor is not an object")
    digest, size = obj.get("digest"), obj.get("size")
    if not isinstance(digest, str) or not dg.is_digest(digest):
        raise DataCorrupt(f"invalid manifest: unsupported or malformed digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DataCorrupt(f"invalid manifest: bad size for {digest}")
    urls = obj.get("urls") or ()
    return Descriptor(media_type=str(obj.get("mediaType") or ""), digest=digest, size=size,
                      urls=tuple(u for u in urls if isinstance(u, str)),
                      platform=Platform.of(obj.get("platform")),
                      annotations=obj.get("annotations") or {})


def _load(data: bytes) -> dict:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise DataCorrupt(f"invalid manifest: {e}") from None
    if not isinstance(obj, dict):
        raise DataCorrupt("invalid manifest: not a JSON object")
    return obj


def media_type_of(data: bytes, content_type: str | None) -> str:
    """The manifest's own mediaType (it is covered by the digest), else the
    registry's Content-Type, else what its fields show it to be."""
    obj = _load(data)
    declared = obj.get("mediaType")
    if isinstance(declared, str) and declared:
        kind = declared
    else:
        header = (content_type or "").split(";", 1)[0].strip()
        if header in mt.MANIFESTS or header in mt.INDEXES or header in SCHEMA1:
            kind = header
        elif "manifests" in obj:
            kind = mt.OCI_INDEX
        elif "layers" in obj:
            kind = mt.OCI_MANIFEST
        elif obj.get("schemaVersion") == 1:
            kind = "application/vnd.docker.distribution.manifest.v1+json"
        else:
            raise DataCorrupt("invalid manifest: neither an image manifest nor an index")
    if kind in SCHEMA1:
        raise InvalidArgument(
            "unsupported manifest format: Docker image manifest version 2, schema 1 (deprecated "
            "and no longer supported; push the image again with a current client)")
    if kind not in mt.MANIFESTS and kind not in mt.INDEXES:
        raise InvalidArgument(f"unsupported manifest media type: {kind}")
    return kind


def parse_index(data: bytes) -> list[Descriptor]:
    obj = _load(data)
    entries = obj.get("manifests")
    if obj.get("schemaVersion") != 2 or not isinstance(entries, list):
        raise DataCorrupt("invalid manifest list: missing manifests")
    return [descriptor(e) for e in entries]


def parse_image_manifest(data: bytes, media_type: str) -> ImageManifest:
    obj = _load(data)
    if obj.get("schemaVersion") != 2 or not isinstance(obj.get("layers"), list):
        raise DataCorrupt("invalid manifest: missing config or layers")
    config = descriptor(obj.get("config"))
    if config.media_type and config.media_type not in CONFIGS:
        raise InvalidArgument(f"unsupported image config media type {config.media_type} "
                              "(the reference names an artifact, not a container image)")
    return ImageManifest(media_type, config, tuple(descriptor(layer) for layer in obj["layers"]))


def select_platform(entries: list[Descriptor], wanted: Platform) -> Descriptor:
    """The index entry for `wanted`, the best variant first, as containerd picks."""
    best, best_rank = None, None
    for entry in entries:
        if entry.platform is None or entry.media_type not in mt.MANIFESTS | {""}:
            continue
        rank = _variant_rank(wanted, entry.platform)
        if rank is not None and (best_rank is None or rank < best_rank):
            best, best_rank = entry, rank
    if best is None:
        raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")
    return best


def config_platform(config: dict) -> Platform | None:
    return Platform.of(config)


def platform_matches(wanted: Platform, have: Platform | None) -> bool:
    return have is None or _variant_rank(wanted, have) is not None
