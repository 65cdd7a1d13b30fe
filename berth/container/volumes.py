"""Volumes and container mounts, as Docker's local volume driver has them.

Three parts:

* Parsing, pure: `-v` values (the CLI's pass, then the daemon's
  ParseMountRaw), `--mount` values (docker/cli's opts/mount.go), `--tmpfs`
  values, and HostConfig.Mounts entries, each with Docker's error wording.
  A parsed request is a `MountSpec` (Docker's mount.Mount).

* `VolumeStore`: named and anonymous volumes under `<root>/volumes/<name>/_data`,
  their rows in the `volumes` table and the containers that reference them in
  `volume_users`.  Local-driver volumes created with `type`/`device`/`o`
  options (a tmpfs, a bind of a host directory) are mounted on `_data` while
  at least one container uses them, as Docker does.

* Container mounts: `plan_mounts` turns a container's requests into
  `MountPoint`s at create (creating volumes and recording their users),
  `populate_volumes` copies the image's content into empty volumes,
  `activate_mounts` / `deactivate_mounts` bracket each run, and
  `remove_anonymous_volumes` serves `rm -v` and `run --rm`.

Nothing under `_data` is ever reached by a path that a container or an image
controls: image content is read through `RootDir` (symlinks resolve inside
the root filesystem) and written through directory fds without following
links.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import re
import shutil
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from berth.container.paths import run_dir
from berth.errors import BerthError, Conflict, DataCorrupt, InvalidArgument, NotFound, Unavailable
from berth.layer.rootfs import NotADirectory, RootDir
from berth.runtime import spec as rs
from berth.runtime.builtin import linux
from berth.store.locks import file_lock
from berth.units import parse_size

LOCAL_DRIVER = "local"
LOCAL_SCOPE = "local"
# Docker (>= 23) labels volumes it names itself; `volume prune` takes only these by default.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
DATA_DIR = "_data"

BIND = "bind"
VOLUME = "volume"
TMPFS = "tmpfs"

RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VOLUME_NAME = re.compile(RESTRICTED_NAME_CHARS + "+")

PROPAGATION_MODES = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
DEFAULT_PROPAGATION = "rprivate"
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_COPY_MODES = ("nocopy",)
_CONSISTENCY_MODES = ("consistent", "cached", "delegated")

# The local driver's options (moby volume/local/local_unix.go).
_LOCAL_OPTIONS = ("type", "o", "device", "size")
_REQUIRED_OPTIONS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}

_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


# ----------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class BindOptions:
    propagation: str = ""
    nonrecursive: bool = False
    create_mountpoint: bool = False
    readonly_nonrecursive: bool = False
    readonly_force_recursive: bool = False


@dataclass(frozen=True)
class VolumeOptions:
    nocopy: bool = False
    labels: dict | None = None
    driver: str = ""
    driver_options: dict | None = None
    subpath: str = ""


@dataclass(frozen=True)
class TmpfsOptions:
    size: int = 0      # bytes; 0 is the kernel's default (half of RAM)
    mode: int = 0      # permission bits; 0 is the kernel's default (1777)


@dataclass(frozen=True)
class MountSpec:
    """One mount as the user asked for it: Docker's mount.Mount.

    `-v` values parse into the same shape (with `mode`, the option string
    after the second colon, and `raw`, the value itself); `raw` is empty for
    `--mount` values and API HostConfig.Mounts entries.
    """

    type: str
    target: str
    source: str = ""
    readonly: bool = False
    consistency: str = ""
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None
    mode: str = ""
    raw: str = ""

    @property
    def anonymous(self) -> bool:
        return self.type == VOLUME and not self.source

    def to_api(self) -> dict:
        """HostConfig.Mounts entry, with Go's omitempty."""
        out: dict = {"Type": self.type}
        if self.source:
            out["Source"] = self.source
        out["Target"] = self.target
        if self.readonly:
            out["ReadOnly"] = True
        if self.consistency:
            out["Consistency"] = self.consistency
        if self.bind is not None:
            b = self.bind
            out["BindOptions"] = _omit_empty({
                "Propagation": b.propagation, "NonRecursive": b.nonrecursive,
                "CreateMountpoint": b.create_mountpoint, "ReadOnlyNonRecursive": b.readonly_nonrecursive,
                "ReadOnlyForceRecursive": b.readonly_force_recursive})
        if self.volume is not None:
            v = self.volume
            opts = _omit_empty({"NoCopy": v.nocopy, "Labels": v.labels, "Subpath": v.subpath})
            if v.driver or v.driver_options:
                opts["DriverConfig"] = _omit_empty({"Name": v.driver, "Options": v.driver_options})
            out["VolumeOptions"] = opts
        if self.tmpfs is not None:
            out["TmpfsOptions"] = _omit_empty({"SizeBytes": self.tmpfs.size, "Mode": self.tmpfs.mode})
        return out

    @classmethod
    def from_api(cls, entry: Mapping) -> "MountSpec":
        """A HostConfig.Mounts entry as the API receives it."""
        if not isinstance(entry, Mapping):
            raise InvalidArgument("invalid mount config: not an object")

        def sub(key: str) -> Mapping | None:
            value = entry.get(key)
            if value is not None and not isinstance(value, Mapping):
                raise InvalidArgument(f"invalid mount config: {key} must be an object")
            return value

        bind = volume = tmpfs = None
        if (b := sub("BindOptions")) is not None:
            bind = BindOptions(propagation=str(b.get("Propagation") or ""),
                               nonrecursive=bool(b.get("NonRecursive")),
                               create_mountpoint=bool(b.get("CreateMountpoint")),
                               readonly_nonrecursive=bool(b.get("ReadOnlyNonRecursive")),
                               readonly_force_recursive=bool(b.get("ReadOnlyForceRecursive")))
        if (v := sub("VolumeOptions")) is not None:
            driver = v.get("DriverConfig") or {}
            volume = VolumeOptions(nocopy=bool(v.get("NoCopy")), labels=_str_map(v.get("Labels")),
                                   driver=str(driver.get("Name") or ""),
                                   driver_options=_str_map(driver.get("Options")),
                                   subpath=str(v.get("Subpath") or ""))
        if (t := sub("TmpfsOptions")) is not None:
            try:
                tmpfs = TmpfsOptions(size=int(t.get("SizeBytes") or 0), mode=int(t.get("Mode") or 0))
            except (TypeError, ValueError):
                raise InvalidArgument("invalid mount config: bad TmpfsOptions") from None
        return cls(type=str(entry.get("Type") or ""), source=str(entry.get("Source") or ""),
                   target=str(entry.get("Target") or ""), readonly=bool(entry.get("ReadOnly")),
                   consistency=str(entry.get("Consistency") or ""), bind=bind, volume=volume, tmpfs=tmpfs)


def _omit_empty(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def _str_map(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument("invalid mount config: expected a map of strings")
    return {str(k): str(v) for k, v in value.items()}


# ----------------------------------------------------------------------------
# Parsing -v (the CLI's pass, then the daemon's)


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def check_volume_flag(value: str) -> tuple[str, bool]:
    """The CLI's own pass over a `-v` value (docker/cli's loader.ParseVolume).

    Returns (value, is_bind): `is_bind` values go to HostConfig.Binds, with a
    `./`-relative host path made absolute as the CLI does; the others are
    anonymous volumes, whose target goes to Config.Volumes.
    """
    if value == "":
        raise InvalidArgument("invalid empty volume spec")
    if len(value) <= 2:
        return value, False
    fields: list[str] = []
    buffer = ""
    for char in value + "\0":
        if char == ":" and len(buffer) == 1 and buffer.isalpha():
            buffer += char  # a Windows drive letter, as the CLI reads it on any platform
        elif char in (":", "\0"):
            if buffer == "":
                raise InvalidArgument(f"invalid spec: {value}: empty section between colons")
            if len(fields) == 2 and char == ":":
                raise InvalidArgument(f"invalid spec: {value}: too many colons")
            fields.append(buffer)
            buffer = ""
        else:
            buffer += char
    if len(fields) == 1:
        return value, False
    host, _, rest = value.partition(":")
    if host.startswith("./") or host == ".":
        return os.path.abspath(host) + ":" + rest, True
    return value, True


def _valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    seen: set[str] = set()
    for opt in mode.split(","):
        if opt in _RW_MODES:
            kind = "rw"
        elif opt in _LABEL_MODES:
            kind = "label"
        elif opt in PROPAGATION_MODES:
            kind = "propagation"
        elif opt in _COPY_MODES:
            kind = "copy"
        elif opt in _CONSISTENCY_MODES:
            kind = "consistency"
        else:
            return False
        if kind in seen:
            return False
        seen.add(kind)
    return True


def parse_volume_spec(raw: str, volume_driver: str = "") -> MountSpec:
    """A HostConfig.Binds entry (or an anonymous `-v /path`), by moby's ParseMountRaw.

    `volume_driver` is HostConfig.VolumeDriver (`--volume-driver`).  The bind
    source need not exist: Docker creates it when the container starts.
    """
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise InvalidArgument(_invalid_spec(raw))
    source, mode = "", ""
    if len(arr) == 1:
        target = arr[0]
    elif len(arr) == 2:
        if _valid_mode(arr[1]):
            # A destination and a mode is not a volume: "/foo:rw".
            raise InvalidArgument(_invalid_spec(raw))
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise InvalidArgument(_invalid_spec(raw))
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    options = mode.split(",")
    kind = BIND if source.startswith("/") else VOLUME
    volume = None
    if volume_driver and kind == VOLUME:
        volume = VolumeOptions(driver=volume_driver)
    if "nocopy" in options:
        volume = replace(volume or VolumeOptions(), nocopy=True)
    bind = None
    propagation = next((o for o in options if o in PROPAGATION_MODES), "")
    if propagation:
        bind = BindOptions(propagation=propagation)
    spec = MountSpec(type=kind, source=source, target=target, readonly="ro" in options,
                     bind=bind, volume=volume, mode=mode, raw=raw)
    try:
        validate_mount(spec, check_source=False)
    except InvalidArgument as e:
        raise InvalidArgument(f"{_invalid_spec(raw)}: {e}") from None
    return spec


# ----------------------------------------------------------------------------
# Parsing --mount (docker/cli opts/mount.go)


def _go_csv_record(value: str) -> list[str]:
    """The first record of `value` as Go's encoding/csv reads it (strict quotes)."""
    if value == "":
        raise InvalidArgument("EOF")
    line = value.split("\n", 1)[0]
    if line.endswith("\r"):
        line = line[:-1]
    fields: list[str] = []
    i, n = 0, len(line)
    while True:
        if i < n and line[i] == '"':
            i += 1
            out = []
            while True:
                j = line.find('"', i)
                if j < 0:
                    raise InvalidArgument(f'parse error on line 1, column {n + 1}: '
                                          'extraneous or missing " in quoted-field')
                out.append(line[i:j])
                i = j + 1
                if i < n and line[i] == '"':
                    out.append('"')
                    i += 1
                    continue
                if i == n or line[i] == ",":
                    break
                raise InvalidArgument(f'parse error on line 1, column {i + 1}: '
                                      'extraneous or missing " in quoted-field')
            fields.append("".join(out))
        else:
            j = line.find(",", i)
            end = n if j < 0 else j
            quote = line.find('"', i, end)
            if quote >= 0:
                raise InvalidArgument(f'parse error on line 1, column {quote + 1}: bare " in non-quoted field')
            fields.append(line[i:end])
            i = end
        if i >= n:
            return fields
        i += 1  # the comma
        if i == n:
            fields.append("")
            return fields


def _parse_go_bool(value: str) -> bool | None:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    return None


def ram_in_bytes(text: str) -> int:
    """go-units' RAMInBytes: `64m`, `1.5GiB`, `100` (binary multiples)."""
    return parse_size(text)


def parse_mount_spec(value: str) -> MountSpec:
    """One `--mount` value, as docker/cli parses it.

    Docker's CLI reports these errors as `invalid argument "VALUE" for
    "--mount" flag: MESSAGE`; the message raised here is the MESSAGE part.
    What only the daemon checks (paths, bind source existence) is left to
    `validate_mount`, which `plan_mounts` runs.
    """
    fields = _go_csv_record(value)
    kind = VOLUME
    source = target = consistency = ""
    readonly = False
    bind: dict | None = None
    vol: dict | None = None
    tmpfs: dict | None = None

    def bind_opts() -> dict:
        nonlocal bind
        if bind is None:
            bind = {}
        return bind

    def vol_opts() -> dict:
        nonlocal vol
        if vol is None:
            vol = {"labels": {}}
        return vol

    def tmpfs_opts() -> dict:
        nonlocal tmpfs
        if tmpfs is None:
            tmpfs = {}
        return tmpfs

    def parse_bool(key: str, val: str, message: str | None = None) -> bool:
        b = _parse_go_bool(val)
        if b is None:
            raise InvalidArgument(message or f"invalid value for {key}: {val}")
        return b

    for item in fields:
        key, has_value, val = item.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro"):
                readonly = True
            elif key == "volume-nocopy":
                vol_opts()["nocopy"] = True
            elif key == "bind-nonrecursive":
                bind_opts()["nonrecursive"] = True
            else:
                raise InvalidArgument(f"invalid field '{item}' must be a key=value pair")
            continue
        if key == "type":
            kind = val.lower()
        elif key in ("source", "src"):
            source = os.path.abspath(val) if val.startswith("./") or val == "." else val
        elif key in ("target", "dst", "destination"):
            target = val
        elif key in ("readonly", "ro"):
            readonly = parse_bool(key, val)
        elif key == "consistency":
            consistency = val.lower()
        elif key == "bind-propagation":
            bind_opts()["propagation"] = val.lower()
        elif key == "bind-nonrecursive":
            bind_opts()["nonrecursive"] = parse_bool(key, val)
        elif key == "bind-recursive":
            flags = {"enabled": {}, "disabled": {"nonrecursive": True},
                     "writable": {"readonly_nonrecursive": True},
                     "readonly": {"readonly_force_recursive": True}}
            if val not in flags:
                raise InvalidArgument(f'invalid value for {key}: {val} '
                                      '(must be "enabled", "disabled", "writable", or "readonly")')
            bind_opts().update(flags[val])
        elif key == "volume-subpath":
            vol_opts()["subpath"] = val
        elif key == "volume-nocopy":
            vol_opts()["nocopy"] = parse_bool(key, val, f"invalid value for volume-nocopy: {val}")
        elif key == "volume-label":
            _set_kv(vol_opts()["labels"], val)
        elif key == "volume-driver":
            vol_opts()["driver"] = val
        elif key == "volume-opt":
            _set_kv(vol_opts().setdefault("driver_options", {}), val)
        elif key == "tmpfs-size":
            try:
                tmpfs_opts()["size"] = ram_in_bytes(val)
            except InvalidArgument:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            if not re.fullmatch(r"[0-7]+", val) or int(val, 8) >= 1 << 32:
                raise InvalidArgument(f"invalid value for {key}: {val}")
            tmpfs_opts()["mode"] = int(val, 8)
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{item}'")

    if kind == "":
        raise InvalidArgument("type is required")
    if target == "":
        raise InvalidArgument("target is required")
    if vol is not None and kind != VOLUME:
        raise InvalidArgument(f"cannot mix 'volume-*' options with mount type '{kind}'")
    if bind is not None and kind != BIND:
        raise InvalidArgument(f"cannot mix 'bind-*' options with mount type '{kind}'")
    if tmpfs is not None and kind != TMPFS:
        raise InvalidArgument(f"cannot mix 'tmpfs-*' options with mount type '{kind}'")
    bind_o = BindOptions(**bind) if bind is not None else None
    if bind_o is not None:
        if bind_o.readonly_nonrecursive and not readonly:
            raise InvalidArgument("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction")
        if bind_o.readonly_force_recursive:
            if not readonly:
                raise InvalidArgument("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction")
            if bind_o.propagation != DEFAULT_PROPAGATION:
                raise InvalidArgument("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' "
                                      "to be specified in conjunction")
    return MountSpec(type=kind, source=source, target=target, readonly=readonly, consistency=consistency,
                     bind=bind_o, volume=VolumeOptions(**vol) if vol is not None else None,
                     tmpfs=TmpfsOptions(**tmpfs) if tmpfs is not None else None)


def _set_kv(target: dict, item: str) -> None:
    key, _, value = item.partition("=")
    if key:
        target[key] = value


# ----------------------------------------------------------------------------
# Parsing --tmpfs and tmpfs options

# moby/sys/mount's flag table: name -> (clears the flag, flag).
_MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY),
    "suid": (True, linux.MS_NOSUID), "nosuid": (False, linux.MS_NOSUID),
    "dev": (True, linux.MS_NODEV), "nodev": (False, linux.MS_NODEV),
    "exec": (True, linux.MS_NOEXEC), "noexec": (False, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS), "async": (True, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC), "remount": (False, linux.MS_REMOUNT),
    "mand": (False, linux.MS_MANDLOCK), "nomand": (True, linux.MS_MANDLOCK),
    "atime": (True, linux.MS_NOATIME), "noatime": (False, linux.MS_NOATIME),
    "diratime": (True, linux.MS_NODIRATIME), "nodiratime": (False, linux.MS_NODIRATIME),
    "bind": (False, linux.MS_BIND), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "unbindable": (False, linux.MS_UNBINDABLE), "runbindable": (False, linux.MS_UNBINDABLE | linux.MS_REC),
    "private": (False, linux.MS_PRIVATE), "rprivate": (False, linux.MS_PRIVATE | linux.MS_REC),
    "shared": (False, linux.MS_SHARED), "rshared": (False, linux.MS_SHARED | linux.MS_REC),
    "slave": (False, linux.MS_SLAVE), "rslave": (False, linux.MS_SLAVE | linux.MS_REC),
    "relatime": (False, linux.MS_RELATIME), "norelatime": (True, linux.MS_RELATIME),
    "strictatime": (False, linux.MS_STRICTATIME), "nostrictatime": (True, linux.MS_STRICTATIME),
}
_PROPAGATION_FLAGS = linux.MS_SHARED | linux.MS_PRIVATE | linux.MS_SLAVE | linux.MS_UNBINDABLE
_TMPFS_DATA_KEYS = ("", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


def _go_quote_list(items: Sequence[str]) -> str:
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def check_tmpfs_options(options: str) -> list[str]:
    """The options of a tmpfs mount, split and checked as moby's MergeTmpfsOptions does."""
    out = []
    for opt in options.split(",") if options else []:
        if opt == "defaults":
            continue
        if opt not in _MOUNT_FLAGS:
            parts = opt.split("=", 1)
            if len(parts) != 2 or parts[0] not in _TMPFS_DATA_KEYS:
                raise InvalidArgument(f"invalid tmpfs option {_go_quote_list(parts)}")
        out.append(opt)
    return out


def parse_tmpfs_spec(value: str) -> tuple[str, str]:
    """One `--tmpfs DEST[:OPTIONS]`: (destination, options) for HostConfig.Tmpfs."""
    dest, _, options = value.partition(":")
    _check_target(dest)
    check_tmpfs_options(options)
    return dest, options


def tmpfs_options(opts: TmpfsOptions | None, readonly: bool) -> list[str]:
    """moby's ConvertTmpfsOptions: a `--mount type=tmpfs` as mount data."""
    out = ["ro"] if readonly else []
    if opts is not None and opts.mode:
        out.append(f"mode={opts.mode:o}")
    if opts is not None and opts.size:
        size, suffix = opts.size, ""
        for sfx, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, sfx
                break
        out.append(f"size={size}{suffix}")
    return out


# ----------------------------------------------------------------------------
# The daemon's validation (moby volume/mounts/linux_parser.go)


def clean_path(p: str) -> str:
    """Go's path.Clean."""
    if p == "":
        return "."
    out = posixpath.normpath(p)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


def _check_target(p: str) -> None:
    p = p.replace("\\", "/")
    if clean_path(p) == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    if not p.startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{p}' mount path must be absolute")


def validate_mount(spec: MountSpec, *, check_source: bool = True) -> None:
    """What the daemon checks of every mount (validateMountConfig).

    With `check_source`, a bind source must exist, as for `--mount` and API
    Mounts; `-v` binds are created at start instead.
    """
    def fail(message: str) -> InvalidArgument:
        return InvalidArgument(f'invalid mount config for type "{spec.type}": {message}')

    if not spec.target:
        raise fail("field Target must not be empty")
    try:
        _check_target(spec.target)
    except InvalidArgument as e:
        raise fail(str(e)) from None
    if spec.type == BIND:
        if not spec.source:
            raise fail("field Source must not be empty")
        if spec.bind is not None and spec.bind.propagation and spec.bind.propagation not in PROPAGATION_MODES:
            raise fail(f"invalid propagation mode: {spec.bind.propagation}")
        if spec.volume is not None:
            raise fail("field VolumeOptions must not be specified")
        if not spec.source.replace("\\", "/").startswith("/"):
            raise fail(f"invalid mount path: '{spec.source}' mount path must be absolute")
        if check_source and not (spec.bind is not None and spec.bind.create_mountpoint):
            try:
                os.stat(spec.source)
            except FileNotFoundError:
                raise fail(f"bind source path does not exist: {spec.source}") from None
            except OSError as e:
                raise fail(f"stat {spec.source}: {_go_strerror(e)}") from None
    elif spec.type == VOLUME:
        if spec.bind is not None:
            raise fail("field BindOptions must not be specified")
        if spec.volume is not None and spec.volume.subpath:
            if spec.anonymous:
                raise fail("must not set Subpath when using anonymous volumes")
            sub = spec.volume.subpath
            if sub.startswith("/") or clean_path(sub) == ".." or clean_path(sub).startswith("../"):
                raise fail("subpath must be a relative path within the volume")
        if spec.readonly and spec.anonymous:
            raise fail("must not set ReadOnly mode when using anonymous volumes")
    elif spec.type == TMPFS:
        if spec.bind is not None:
            raise fail("field BindOptions must not be specified")
        if spec.source:
            raise fail("field Source must not be specified")
    else:
        raise fail("mount type unknown")


def specs_from_host_config(host_config: Mapping) -> list[MountSpec]:
    """HostConfig.Binds then HostConfig.Mounts, parsed: what `plan_mounts` takes."""
    driver = host_config.get("VolumeDriver") or ""
    specs = [parse_volume_spec(b, driver) for b in host_config.get("Binds") or []]
    specs += [MountSpec.from_api(m) for m in host_config.get("Mounts") or []]
    return specs


# ----------------------------------------------------------------------------
# Volumes


@dataclass(frozen=True)
class Volume:
    name: str
    driver: str
    created: float
    labels: dict | None
    options: dict | None
    anonymous: bool
    mountpoint: Path

    @property
    def needs_mount(self) -> bool:
        """A local volume with a device or a type is mounted, not a plain directory."""
        opts = self.options or {}
        return bool(opts.get("device") or opts.get("type"))

    def inspect(self) -> dict:
        """`volume inspect` / GET /volumes/{name}."""
        return {"CreatedAt": rfc3339_local(self.created), "Driver": self.driver, "Labels": self.labels,
                "Mountpoint": str(self.mountpoint), "Name": self.name, "Options": self.options,
                "Scope": LOCAL_SCOPE}


@dataclass(frozen=True)
class VolumeUsage:
    volume: Volume
    size: int      # bytes; -1 if it could not be measured
    links: int     # containers referencing it


def rfc3339_local(epoch: float) -> str:
    """Go's time.RFC3339 in the local zone: `2024-01-02T03:04:05Z` or `...+01:00`."""
    text = datetime.fromtimestamp(int(epoch)).astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def validate_volume_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidArgument(f"create {name}: volume name is too short, "
                              "names should be at least two alphanumeric characters")
    if not _VOLUME_NAME.fullmatch(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                              f'only "{RESTRICTED_NAME_CHARS}" are allowed. '
                              "If you intended to pass a host directory, use absolute path")


def validate_volume_options(name: str, options: Mapping[str, str] | None) -> None:
    """The local driver's options: type, device, o (and size, which needs quotas)."""
    if not options:
        return
    for key in options:
        if key not in _LOCAL_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    if "size" in options:
        try:
            size = ram_in_bytes(options["size"])
        except InvalidArgument as e:
            raise InvalidArgument(f"create {name}: {e}") from None
        if size > 0:
            raise InvalidArgument(f"create {name}: quota size requested but no quota support")
    for key, required in _REQUIRED_OPTIONS.items():
        if key in options:
            for other in required:
                if other not in options:
                    raise InvalidArgument(f'create {name}: missing required option: "{other}"')


class VolumeStore:
    """The volumes of one state root."""

    def __init__(self, state):
        self.state = state
        self.db = state.db
        self.root = Path(state.root) / "volumes"

    # -- paths --------------------------------------------------------------------

    def volume_dir(self, name: str) -> Path:
        return self.root / name

    def data_path(self, name: str) -> Path:
        return self.root / name / DATA_DIR

    def _ensure_dirs(self, name: str) -> Path:
        """`<root>/volumes/<name>/_data` with Docker's modes (0701, 0701, 0755)."""
        for d, mode in ((self.root, 0o701), (self.volume_dir(name), 0o701)):
            try:
                os.mkdir(d, mode)
                os.chmod(d, mode)
            except FileExistsError:
                pass
        data = self.data_path(name)
        try:
            os.mkdir(data, 0o755)
            os.chmod(data, 0o755)
        except FileExistsError:
            pass
        return data

    def _volume(self, row) -> Volume:
        return Volume(name=row["name"], driver=row["driver"], created=row["created"],
                      labels=json.loads(row["labels"]), options=json.loads(row["options"]),
                      anonymous=bool(row["anonymous"]), mountpoint=self.data_path(row["name"]))

    # -- create, look up ------------------------------------------------------------

    def create(self, name: str | None = None, driver: str = LOCAL_DRIVER, labels: Mapping | None = None,
               options: Mapping | None = None, *, user: str | None = None) -> Volume:
        """Create a volume, or return the existing one of that name (Docker is idempotent).

        Without a name the volume is anonymous: a random 64-hex name and
        Docker's anonymous label.  With `user` (a container ID) the reference
        is recorded in the same transaction, so no prune can slip in between.
        """
        anonymous = not name
        if anonymous:
            name = os.urandom(32).hex()
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        driver = driver or LOCAL_DRIVER
        if driver != LOCAL_DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()
            if row is None:
                validate_volume_name(name)
                validate_volume_options(name, options)
                # A directory without a row was left by an interrupted create or
                # remove: never hand its content to a new volume.
                if self.volume_dir(name).exists():
                    self._discard(name)
                self._ensure_dirs(name)
                conn.execute("INSERT INTO volumes(name, driver, created, labels, options, anonymous)"
                             " VALUES (?,?,?,?,?,?)",
                             (name, driver, time.time(),
                              json.dumps(dict(labels) if labels is not None else None),
                              json.dumps(dict(options) if options is not None else None), int(anonymous)))
                row = conn.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()
            if user is not None:
                conn.execute("INSERT OR IGNORE INTO volume_users(volume, container_id) VALUES (?,?)",
                             (name, user))
        return self._volume(row)

    def find(self, name: str) -> Volume | None:
        row = self.db.query_one("SELECT * FROM volumes WHERE name=?", (name,))
        return self._volume(row) if row is not None else None

    def get(self, name: str) -> Volume:
        v = self.find(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def inspect(self, name: str) -> dict:
        return self.get(name).inspect()

    def users(self, name: str) -> list[str]:
        return [r[0] for r in self.db.query(
            "SELECT container_id FROM volume_users WHERE volume=? ORDER BY container_id", (name,))]

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[Volume]:
        """`volume ls`: filters dangling, name (regexp), driver, label."""
        filters = filters or {}
        _check_filters(filters, ("dangling", "name", "driver", "label"))
        dangling = _bool_filter(filters, "dangling") if filters.get("dangling") else None
        out = []
        for row, refs in self._rows_with_refs():
            v = self._volume(row)
            if filters.get("driver") and v.driver not in filters["driver"]:
                continue
            if filters.get("name") and not any(_name_matches(pat, v.name) for pat in filters["name"]):
                continue
            if not _match_kv_list(filters.get("label"), v.labels):
                continue
            if dangling is not None and (refs == 0) != dangling:
                continue
            out.append(v)
        return out

    def _rows_with_refs(self):
        rows = self.db.query(
            "SELECT v.*, (SELECT COUNT(*) FROM volume_users u WHERE u.volume = v.name) AS refs"
            " FROM volumes v ORDER BY v.name")
        return [(r, r["refs"]) for r in rows]

    # -- references -----------------------------------------------------------------

    def use(self, name: str, container_id: str) -> None:
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM volumes WHERE name=?", (name,)).fetchone() is None:
                raise NotFound(f"get {name}: no such volume")
            conn.execute("INSERT OR IGNORE INTO volume_users(volume, container_id) VALUES (?,?)",
                         (name, container_id))

    def release(self, name: str, container_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM volume_users WHERE volume=? AND container_id=?", (name, container_id))

    def release_container(self, container_id: str) -> list[str]:
        """Drop every reference the container holds; the names it referenced."""
        with self.db.transaction() as conn:
            names = [r[0] for r in conn.execute(
                "SELECT volume FROM volume_users WHERE container_id=? ORDER BY volume", (container_id,))]
            conn.execute("DELETE FROM volume_users WHERE container_id=?", (container_id,))
        return names

    def anonymous_volumes(self, container_id: str) -> list[str]:
        """The anonymous volumes the container references (while its row exists)."""
        return [r[0] for r in self.db.query(
            "SELECT v.name FROM volumes v JOIN volume_users u ON u.volume = v.name"
            " WHERE u.container_id=? AND v.anonymous=1 ORDER BY v.name", (container_id,))]

    # -- removal ------------------------------------------------------------------

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove an unused volume and its data; `force` ignores a missing one."""
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM volumes WHERE name=?", (name,)).fetchone() is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = [r[0] for r in conn.execute(
                "SELECT container_id FROM volume_users WHERE volume=? ORDER BY container_id", (name,))]
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            trash = self._retire(name)
            conn.execute("DELETE FROM volumes WHERE name=?", (name,))
        # Deleted after the commit: a failed rename above left the row in place.
        if trash is not None:
            _remove_tree(trash)
        shutil.rmtree(self._active_dir(name), ignore_errors=True)

    def prune(self, *, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None
              ) -> tuple[list[str], int]:
        """Remove unused local volumes without mount options: (names, bytes reclaimed).

        Only anonymous ones unless `all` (or the filter all=true), as Docker >= 23.
        """
        filters = {k: list(v) for k, v in (filters or {}).items()}
        if "all" in filters:
            values = filters["all"]
            if len(values) > 1:
                raise InvalidArgument(f"invalid filter 'all=[{' '.join(values)}]': only one value is expected")
            b = _parse_go_bool(values[0])
            if b is None:
                raise InvalidArgument(f"invalid filter 'all': strconv.ParseBool: parsing "
                                      f"\"{values[0]}\": invalid syntax")
            all = all or b
        if not all:
            filters.setdefault("label", []).append(ANONYMOUS_LABEL)
        _check_filters(filters, ("label", "label!", "all"))
        deleted, reclaimed = [], 0
        for row, refs in self._rows_with_refs():
            v = self._volume(row)
            if refs or v.driver != LOCAL_DRIVER or v.options:
                continue
            if not _match_kv_list(filters.get("label"), v.labels):
                continue
            if filters.get("label!") and _match_kv_list(filters["label!"], v.labels):
                continue
            size = directory_size(v.mountpoint)
            try:
                self.remove(v.name)
            except (Conflict, NotFound):
                continue  # taken into use, or removed, meanwhile
            deleted.append(v.name)
            reclaimed += max(size, 0)
        self.sweep()
        return deleted, reclaimed

    def sweep(self) -> None:
        """Delete what interrupted creates and removals left: directories without a row."""
        trash = []
        # Creates make their directories inside their write transaction, so
        # holding one here means no directory below belongs to a create in flight.
        with self.db.transaction() as conn:
            known = {r[0] for r in conn.execute("SELECT name FROM volumes")}
            try:
                entries = [e.name for e in os.scandir(self.root)]
            except FileNotFoundError:
                return
            for name in entries:
                if name.startswith(".trash-"):
                    trash.append(self.root / name)
                elif name not in known:
                    retired = self._retire(name)
                    if retired is not None:
                        trash.append(retired)
        for path in trash:
            _remove_tree(path)

    def _retire(self, name: str) -> Path | None:
        """Move a volume's directory aside (unmounted first), to delete at leisure."""
        vdir = self.volume_dir(name)
        if not vdir.exists():
            return None
        _unmount_tree(vdir)
        trash = self.root / f".trash-{os.urandom(8).hex()}"
        os.rename(vdir, trash)
        return trash

    def _discard(self, name: str) -> None:
        trash = self._retire(name)
        if trash is not None:
            _remove_tree(trash)

    # -- sizes ---------------------------------------------------------------------

    def size(self, name: str) -> int:
        return directory_size(self.get(name).mountpoint)

    def usage(self) -> list[VolumeUsage]:
        """`system df -v`: local volumes without mount options, with size and links."""
        out = []
        for row, refs in self._rows_with_refs():
            v = self._volume(row)
            if v.driver == LOCAL_DRIVER and not v.options:
                out.append(VolumeUsage(v, directory_size(v.mountpoint), refs))
        return out

    # -- mounting the local driver's device volumes ---------------------------------

    def _active_dir(self, name: str) -> Path:
        # Under /run: mounts do not survive a reboot, and neither do these marks.
        return run_dir(self.state.root) / "volumes" / name

    @contextmanager
    def _mount_lock(self, name: str):
        d = run_dir(self.state.root) / "volumes"
        d.mkdir(parents=True, exist_ok=True)
        with file_lock(d / f"{name}.lock"):
            yield

    def mount(self, name: str, ref: str) -> Path:
        """The host path of the volume's data, mounted first if the volume needs it.

        Each `ref` (a container ID) that mounts must `unmount`; the device is
        unmounted when the last one does, as Docker's local driver counts.
        """
        v = self.get(name)
        data = self._ensure_dirs(name)
        if not v.needs_mount:
            return data
        with self._mount_lock(name):
            active = self._active_dir(name)
            active.mkdir(parents=True, exist_ok=True)
            self._drop_stale_refs(active)
            (active / ref).touch()
            if not is_mountpoint(data):
                try:
                    mount_local(v.options or {}, data)
                except BaseException:
                    (active / ref).unlink(missing_ok=True)
                    raise
        return data

    def unmount(self, name: str, ref: str) -> None:
        v = self.find(name)
        if v is None or not v.needs_mount:
            return
        with self._mount_lock(name):
            active = self._active_dir(name)
            (active / ref).unlink(missing_ok=True)
            if active.exists():
                self._drop_stale_refs(active)
                if any(active.iterdir()):
                    return
            data = self.data_path(name)
            if is_mountpoint(data):
                _umount(data)

    def _drop_stale_refs(self, active: Path) -> None:
        """Forget references whose holder is gone: deleted containers, dead processes."""
        refs = [p.name for p in active.iterdir()]
        if not refs:
            return
        marks = ",".join("?" * len(refs))
        alive = {r[0] for r in self.db.query(f"SELECT id FROM containers WHERE id IN ({marks})", refs)}
        for ref in refs:
            stale = (ref not in alive if _is_container_id(ref)
                     else ref.startswith("pid-") and not os.path.exists(f"/proc/{ref.split('-')[1]}"))
            if stale:
                (active / ref).unlink(missing_ok=True)


def _is_container_id(ref: str) -> bool:
    return len(ref) == 64 and all(c in "0123456789abcdef" for c in ref)


def process_ref() -> str:
    """A mount reference held by this process for a moment (copy-up), not by a container."""
    return f"pid-{os.getpid()}-{os.urandom(4).hex()}"


# -- filters ------------------------------------------------------------------------


def _check_filters(filters: Mapping, allowed: Iterable[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")


def _bool_filter(filters: Mapping[str, Sequence[str]], key: str) -> bool:
    values = set(filters[key])
    is_false = bool(values & {"0", "false"})
    is_true = bool(values & {"1", "true"})
    if is_false == is_true:
        raise InvalidArgument(f"invalid filter '{key}={','.join(filters[key])}'")
    return is_true


def _name_matches(pattern: str, name: str) -> bool:
    """filters.Args.Match: equal, or the pattern (a regexp) found in the name."""
    if pattern == name:
        return True
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _match_kv_list(wanted: Sequence[str] | None, labels: Mapping | None) -> bool:
    """filters.Args.MatchKVList: every `key` or `key=value` present."""
    if not wanted:
        return True
    if not labels:
        return False
    for item in wanted:
        key, has_value, value = item.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


# -- disk and mounts ------------------------------------------------------------------


def directory_size(path: Path) -> int:
    """Docker's directory.Size: apparent size of everything but directories, each inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [os.fspath(path)]
    try:
        while stack:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                        continue
                    if st.st_size == 0 or (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    except FileNotFoundError:
        return total
    except OSError:
        return -1
    return total


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f]


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_mountpoint(path: Path) -> bool:
    return os.fspath(path) in _mount_points()


def _umount(path) -> None:
    try:
        linux.umount2(os.fspath(path), 0)
    except OSError as e:
        if e.errno == errno.EINVAL:
            return  # not mounted (any more)
        linux.umount2(os.fspath(path), linux.MNT_DETACH)


def _unmount_tree(path: Path) -> None:
    """Unmount everything at or below `path`, deepest first, so no delete reaches through."""
    base = os.fspath(path)
    for point in sorted((p for p in _mount_points() if p == base or p.startswith(base + "/")), reverse=True):
        _umount(point)


def _remove_tree(path: Path) -> None:
    _unmount_tree(path)
    shutil.rmtree(path, ignore_errors=True)


def _go_strerror(e: OSError) -> str:
    """An errno's text as Go prints it: `no such file or directory`."""
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


def mount_options(o: str) -> tuple[int, str]:
    """moby/sys/mount's parseOptions: (flags, data) from a comma list."""
    flags, data = 0, []
    for opt in o.split(",") if o else []:
        known = _MOUNT_FLAGS.get(opt)
        if known is None:
            data.append(opt)
            continue
        clear, flag = known
        flags = flags & ~flag if clear else flags | flag
    return flags, ",".join(data)


def mount_local(options: Mapping[str, str], target: Path) -> None:
    """Mount a local volume's device on its data directory (moby's localVolume.mount)."""
    device, fstype = options.get("device", ""), options.get("type", "")
    flags, data = mount_options(options.get("o", ""))
    target_s = os.fspath(target)
    if not device:
        raise Unavailable("missing device in volume options")
    try:
        plain = flags & ~_PROPAGATION_FLAGS
        linux.mount(device, target_s, fstype, plain, data or None)
        if flags & _PROPAGATION_FLAGS:
            linux.mount(None, target_s, None, flags & (_PROPAGATION_FLAGS | linux.MS_REC))
        if plain & (linux.MS_BIND | linux.MS_RDONLY) == linux.MS_BIND | linux.MS_RDONLY:
            # A bind ignores MS_RDONLY until remounted.
            linux.mount(None, target_s, None, plain | linux.MS_REMOUNT)
    except OSError as e:
        if is_mountpoint(target):
            _umount(target)
        detail = f"mount {device}:{target_s}"
        if flags:
            detail += f", flags: 0x{flags:x}"
        if data:
            detail += f", data: {_hide_password(data)}"
        raise Unavailable(f"error while mounting volume '{target_s}': failed to mount local volume: "
                          f"{detail}: {_go_strerror(e)}") from None


def _hide_password(data: str) -> str:
    return re.sub(r"(^|,)password=[^,]*", r"\1password=********", data)


# ----------------------------------------------------------------------------
# Copying the image's content into a new volume


def copy_up(rootfs_dir: str | os.PathLike, target: str, volume_dir: str | os.PathLike) -> bool:
    """Docker's copy-up: the image's content at `target` into an empty volume.

    `target` resolves inside `rootfs_dir` as under chroot, so an image's
    symlink cannot lead the copy to the host.  Nothing happens if the volume
    is not empty or the image has nothing at `target`.  Returns whether it
    copied.
    """
    dst = os.open(volume_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.listdir(dst):
            return False
        with RootDir(rootfs_dir) as root:
            rel = clean_path("/" + target).lstrip("/")
            try:
                where = root.open_dir(rel)
            except FileNotFoundError:
                return False
            except NotADirectory:
                raise InvalidArgument("cannot mount volume over existing file, file exists "
                                      f"{os.path.join(os.fspath(rootfs_dir), rel)}") from None
            except DataCorrupt:
                raise InvalidArgument(f"cannot copy image content at {target} into the volume: "
                                      "too many levels of symbolic links") from None
            try:
                src = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=where)
            finally:
                os.close(where)
        try:
            _copy_tree(src, dst)
            st = os.fstat(src)
            os.fchown(dst, st.st_uid, st.st_gid)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
        finally:
            os.close(src)
        return True
    finally:
        os.close(dst)


@dataclass
class _Frame:
    src: int
    dst: int
    rel: str
    names: Iterable[str]
    st: os.stat_result | None   # the directory's own, applied when it is done


_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _copy_tree(src_root: int, dst_root: int) -> None:
    """Copy a tree between two directory fds, never following a symlink."""
    links: dict[tuple[int, int], str] = {}
    stack = [_Frame(src_root, dst_root, "", iter(sorted(os.listdir(src_root))), None)]
    try:
        while stack:
            frame = stack[-1]
            name = next(frame.names, None)
            if name is None:
                stack.pop()
                if frame.st is not None:
                    _copy_meta(frame.src, frame.dst, frame.st)
                    os.close(frame.src)
                    os.close(frame.dst)
                continue
            rel = f"{frame.rel}/{name}" if frame.rel else name
            st = os.stat(name, dir_fd=frame.src, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=frame.dst)
                child_src = os.open(name, _OPEN_DIR, dir_fd=frame.src)
                try:
                    child_dst = os.open(name, _OPEN_DIR, dir_fd=frame.dst)
                except BaseException:
                    os.close(child_src)
                    raise
                stack.append(_Frame(child_src, child_dst, rel, iter(sorted(os.listdir(child_src))), st))
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    os.link(links[key], name, src_dir_fd=dst_root, dst_dir_fd=frame.dst, follow_symlinks=False)
                    continue
                _copy_file(frame.src, frame.dst, name, st)
                if st.st_nlink > 1:
                    links[key] = rel
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=frame.src), name, dir_fd=frame.dst)
                os.chown(name, st.st_uid, st.st_gid, dir_fd=frame.dst, follow_symlinks=False)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=frame.dst, follow_symlinks=False)
            else:  # devices, fifos, sockets
                os.mknod(name, mode, st.st_rdev, dir_fd=frame.dst)
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=frame.dst)
                try:
                    # chmod through /proc: fchmod refuses O_PATH fds, and the
                    # node must not be opened for real (a fifo would block).
                    os.chown(name, st.st_uid, st.st_gid, dir_fd=frame.dst, follow_symlinks=False)
                    os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(mode))
                    os.utime(f"/proc/self/fd/{fd}", ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(fd)
    finally:
        for frame in stack:
            if frame.st is not None:
                os.close(frame.src)
                os.close(frame.dst)


def _copy_file(src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise BerthError(f"image file {name} changed while it was being copied")
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dst_dir)
        try:
            _copy_bytes(src, dst, st.st_size)
            _copy_meta(src, dst, st)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_bytes(src: int, dst: int, size: int) -> None:
    left = size
    try:
        while left > 0:
            n = os.copy_file_range(src, dst, min(left, 1 << 30))
            if n == 0:
                return
            left -= n
        # The file may have grown since it was stat'ed; copy to its end.
        while os.copy_file_range(src, dst, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            raise
    while True:
        chunk = os.read(src, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]


def _copy_meta(src: int, dst: int, st: os.stat_result) -> None:
    """Owner, mode, extended attributes and times, in the order that keeps them all.

    chown clears setuid bits and file capabilities, so it goes first.
    """
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(src)
    except OSError:
        names = []
    for attr in names:
        try:
            os.setxattr(dst, attr, os.getxattr(src, attr))
        except OSError:
            pass  # Docker allows xattr errors here (fs.WithAllowXAttrErrors)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


# ----------------------------------------------------------------------------
# A container's mounts


@dataclass(frozen=True)
class MountPoint:
    """A container mount as Docker records it (volume/mounts.MountPoint).

    Planned at create; the container's record keeps `to_record()`, and its
    inspect "Mounts" shows `inspect()`.
    """

    type: str
    destination: str
    source: str = ""          # host path: the bind source or the volume's _data
    name: str = ""            # volume name
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    copy_data: bool = False
    create_source: bool = False   # a `-v` bind: Docker creates a missing source at start
    spec: MountSpec = field(default_factory=lambda: MountSpec(type="", target=""))

    @property
    def anonymous(self) -> bool:
        """Created for this container: `rm -v` and `run --rm` remove it."""
        return self.type == VOLUME and not self.spec.source

    def inspect(self) -> dict:
        """An entry of inspect's "Mounts" (types.MountPoint, with its omitempty)."""
        out: dict = {"Type": self.type}
        if self.name:
            out["Name"] = self.name
        out["Source"] = self.source
        out["Destination"] = self.destination
        if self.driver:
            out["Driver"] = self.driver
        out.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return out

    def to_record(self) -> dict:
        return {**self.inspect(), "Spec": self.spec.to_api(), "Raw": self.spec.raw, "SpecMode": self.spec.mode,
                "CopyData": self.copy_data, "CreateSource": self.create_source}

    @classmethod
    def from_record(cls, d: Mapping) -> "MountPoint":
        spec = replace(MountSpec.from_api(d["Spec"]), raw=d.get("Raw") or "", mode=d.get("SpecMode") or "")
        return cls(type=d["Type"], destination=d["Destination"], source=d.get("Source") or "",
                   name=d.get("Name") or "", driver=d.get("Driver") or "", mode=d.get("Mode") or "",
                   rw=bool(d.get("RW")), propagation=d.get("Propagation") or "",
                   copy_data=bool(d.get("CopyData")), create_source=bool(d.get("CreateSource")), spec=spec)


@dataclass(frozen=True)
class ResolvedMount:
    """A mount ready for the runtime: `mount` goes into the OCI spec."""

    point: MountPoint
    mount: rs.Mount

    @property
    def source(self) -> str:
        return self.mount.source

    @property
    def destination(self) -> str:
        return self.mount.destination

    @property
    def readonly(self) -> bool:
        return "ro" in self.mount.options


def _duplicate(destination: str) -> InvalidArgument:
    return InvalidArgument(f"Duplicate mount point: {destination}")


def plan_mounts(state, specs: Sequence[MountSpec], image_volumes: Mapping | Iterable[str] | None,
                container_id: str, *, tmpfs: Mapping[str, str] | None = None,
                volume_driver: str = "",
                volumes_from: Sequence[tuple[Sequence[MountPoint], str]] = ()) -> list[MountPoint]:
    """A new container's mount points, as Docker's registerMountPoints makes them.

    `volumes_from` are (another container's mount points, mode) for each
    HostConfig.VolumesFrom entry; `specs` are HostConfig.Binds then
    HostConfig.Mounts (`specs_from_host_config`), which take a destination
    over from `volumes_from`; `image_volumes` the merged Config.Volumes (the
    image's VOLUMEs and `-v /path`), `tmpfs` HostConfig.Tmpfs.  Volumes are
    created as needed and the container is recorded as their user, so the
    container's row must exist.  An image volume that a mount or tmpfs
    already covers gets none.
    """
    tmpfs = tmpfs or {}
    planned: list[tuple[MountPoint, VolumeOptions | None]] = []
    taken: set[str] = set()
    inherited = {p.destination: p for points, mode in volumes_from for p in _shared(points, mode)}
    for spec in specs:
        validate_mount(spec, check_source=not spec.raw)
        if spec.type == VOLUME and spec.volume is not None and spec.volume.subpath:
            raise InvalidArgument("volume subpaths are not supported")
        dest = clean_path(spec.target)
        if dest in taken or (spec.raw and dest in tmpfs):
            raise _duplicate(dest if spec.raw else spec.target)
        taken.add(dest)
        inherited.pop(dest, None)
        planned.append((_point_for(spec, dest, volume_driver), spec.volume))
    for dest, point in inherited.items():
        if dest not in tmpfs:
            taken.add(dest)
            planned.append((point, None))
    for target in image_volumes or ():
        anon = parse_volume_spec(target)
        if anon.type != VOLUME or not anon.anonymous:
            raise InvalidArgument(f"invalid volume specification: '{target}'")
        dest = clean_path(anon.target)
        if dest in taken or dest in tmpfs:
            continue
        taken.add(dest)
        planned.append((MountPoint(type=VOLUME, destination=dest, driver=volume_driver or LOCAL_DRIVER,
                                   copy_data=True, spec=anon), None))

    store = VolumeStore(state)
    for point, _ in planned:
        # Checked before anything is created, so a bad name leaves no volume behind.
        if point.type == VOLUME and point.spec.source and store.find(point.spec.source) is None:
            if point.driver != LOCAL_DRIVER:
                raise NotFound(f"create {point.spec.source}: error looking up volume plugin {point.driver}: "
                               f'plugin "{point.driver}" not found')
            validate_volume_name(point.spec.source)
    out = []
    with state.db.transaction():
        for point, vopts in planned:
            if point.type != VOLUME:
                out.append(point)
                continue
            v = store.create(point.name or point.spec.source or None, point.driver,
                             labels=vopts.labels if vopts is not None else None,
                             options=vopts.driver_options if vopts is not None else None,
                             user=container_id)
            out.append(replace(point, name=v.name, driver=v.driver, source=str(v.mountpoint)))
    return out


def _shared(points: Sequence[MountPoint], mode: str) -> list[MountPoint]:
    """Another container's mount points as --volumes-from gives them: the
    same volumes and host paths at the same places, read-only or writable
    as `mode` says (else as they are there), nothing copied into them."""
    flags = [f for f in mode.split(",") if f] if mode else []
    for flag in flags:
        if flag not in ("ro", "rw", "z", "Z"):
            raise InvalidArgument(f"invalid mode: {mode}")
    rw = None if not ({"ro", "rw"} & set(flags)) else "rw" in flags
    return [replace(p, rw=p.rw if rw is None else rw, copy_data=False, create_source=False)
            for p in points if p.type in (VOLUME, BIND)]


def _point_for(spec: MountSpec, dest: str, volume_driver: str) -> MountPoint:
    if spec.type == BIND:
        return MountPoint(type=BIND, destination=dest, source=clean_path(spec.source), mode=spec.mode,
                          rw=not spec.readonly,
                          propagation=(spec.bind.propagation if spec.bind and spec.bind.propagation
                                       else DEFAULT_PROPAGATION),
                          create_source=bool(spec.raw), spec=spec)
    if spec.type == VOLUME:
        driver = (spec.volume.driver if spec.volume and spec.volume.driver else volume_driver) or LOCAL_DRIVER
        # Docker marks local volume mounts for SELinux relabelling ("z") unless a mode was given.
        return MountPoint(type=VOLUME, destination=dest, name=spec.source, driver=driver,
                          mode=spec.mode or ("z" if driver == LOCAL_DRIVER else ""), rw=not spec.readonly,
                          copy_data=not (spec.volume and spec.volume.nocopy), spec=spec)
    return MountPoint(type=TMPFS, destination=dest, rw=not spec.readonly, spec=spec)


def populate_volumes(state, points: Sequence[MountPoint], rootfs_dir: str | os.PathLike) -> None:
    """Copy the image's content into each empty volume mounted with copy-up.

    Docker does this once, when the container is created; call it once with
    the container's mounted root filesystem, after `activate_mounts` of the
    first start (a tmpfs volume mounted only for the copy would forget it).
    """
    store = VolumeStore(state)
    for p in points:
        if p.type != VOLUME or not p.copy_data:
            continue
        ref = process_ref()
        path = store.mount(p.name, ref)
        try:
            copy_up(rootfs_dir, p.destination, path)
        finally:
            store.unmount(p.name, ref)


def activate_mounts(state, points: Sequence[MountPoint], container_id: str) -> list[ResolvedMount]:
    """The runtime mounts for one run: device volumes mounted, `-v` sources created."""
    store = VolumeStore(state)
    out: list[ResolvedMount] = []
    try:
        for p in points:
            readonly = not p.rw
            if p.type == BIND:
                if p.create_source and not os.path.exists(p.source):
                    os.makedirs(p.source, 0o755, exist_ok=True)
                nonrecursive = bool(p.spec.bind and p.spec.bind.nonrecursive)
                m = rs.Mount.bind(p.source, p.destination, readonly=readonly, recursive=not nonrecursive,
                                  propagation=p.propagation)
            elif p.type == VOLUME:
                path = store.mount(p.name, container_id)
                m = rs.Mount.bind(str(path), p.destination, readonly=readonly, propagation=p.propagation)
            elif p.type == TMPFS:
                m = rs.Mount.tmpfs(p.destination, tmpfs_options(p.spec.tmpfs, readonly))
            else:
                raise InvalidArgument(f'invalid mount config for type "{p.type}": mount type unknown')
            out.append(ResolvedMount(p, m))
    except BaseException:
        deactivate_mounts(state, [r.point for r in out], container_id)
        raise
    return out


def deactivate_mounts(state, points: Sequence[MountPoint], container_id: str) -> None:
    """Release what `activate_mounts` took; safe to call more than once."""
    store = VolumeStore(state)
    for p in points:
        if p.type == VOLUME and p.name:
            store.unmount(p.name, container_id)


def prepare_mounts(state, specs: Sequence[MountSpec], image_volumes: Mapping | Iterable[str] | None,
                   container_id: str, rootfs_dir: str | os.PathLike, *,
                   tmpfs: Mapping[str, str] | None = None, volume_driver: str = "") -> list[ResolvedMount]:
    """Plan, activate and populate in one go, for a container created and started at once.

    Keep `[r.point.to_record() for r in result]` with the container: later
    starts call `activate_mounts` with those points, not this (which would
    create new anonymous volumes).
    """
    points = plan_mounts(state, specs, image_volumes, container_id, tmpfs=tmpfs, volume_driver=volume_driver)
    resolved = activate_mounts(state, points, container_id)
    try:
        # After activation, so that the copy lands in a device volume mounted for the run.
        populate_volumes(state, points, rootfs_dir)
    except BaseException:
        deactivate_mounts(state, points, container_id)
        raise
    return resolved


def remove_anonymous_volumes(state, points: Sequence[MountPoint], container_id: str) -> list[str]:
    """`rm -v` / `run --rm`: release the container's volumes and remove its anonymous ones.

    Named volumes stay; an anonymous volume another container still uses
    stays too (Docker ignores that "in use" quietly).  Returns what was removed.
    """
    store = VolumeStore(state)
    store.release_container(container_id)
    removed = []
    for p in points:
        if not p.anonymous or not p.name:
            continue
        try:
            store.remove(p.name)
        except (Conflict, NotFound):
            continue
        removed.append(p.name)
    return removed
