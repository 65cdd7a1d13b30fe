"""Engine-wide facts and housekeeping: version, info, disk usage, store check."""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import berth
from berth.image import config as cfgmod
from berth.errors import InvalidArgument
from berth.image.store import ImageStore
from berth.engine.images import stale_staging
from berth.store.state import State


@dataclass
class CheckReport:
    missing: list[str] = field(default_factory=list)       # referenced blobs that are gone
    corrupt: list[str] = field(default_factory=list)       # blobs whose bytes fail their digest
    unreferenced: list[str] = field(default_factory=list)  # blobs no image uses (dangling content)
    stale_staging: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)  # images whose manifest and config disagree

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.unreferenced or self.stale_staging
                    or self.inconsistent)


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


class SystemService:
    def __init__(self, state: State, images: ImageStore):
        self.state = state
        self.images = images

    def events(self, filters: dict[str, list[str]], *, since: float | None = None,
               until: float | None = None, stop: Callable[[], bool] = lambda: False):
        """Docker's event messages, past ones from `since`, then live unless
        `until`, or until stop() (checked while no event comes)."""
        allowed = {"container", "image", "volume", "network", "event", "type", "label"}
        for key in filters:
            if key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")
        follow = until is None
        since_ns = int(since * 1e9) if since is not None else (None if not follow else time.time_ns())
        until_ns = int(until * 1e9) if until is not None else None
        for event in self.state.events.read(since_ns=since_ns, until_ns=until_ns, follow=follow, stop=stop):
            if _event_matches(event, filters):
                yield event.message()

    def version(self) -> dict:
        """The server half of `docker version`, with Docker's field names."""
        uname = os.uname()
        return {
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": berth.__version__,
                            "Details": {"ApiVersion": berth.API_VERSION,
                                        "MinAPIVersion": berth.MIN_API_VERSION,
                                        "PythonVersion": platform.python_version(),
                                        "Os": "linux", "Arch": cfgmod.host_arch(),
                                        "KernelVersion": uname.release}}],
            "Version": berth.__version__,
            "ApiVersion": berth.API_VERSION,
            "MinAPIVersion": berth.MIN_API_VERSION,
            "GoVersion": "python" + platform.python_version(),
            "GitCommit": "",
            "Os": "linux",
            "Arch": cfgmod.host_arch(),
            "KernelVersion": uname.release,
        }

    def info(self, containers: dict[str, int] | None = None) -> dict:
        """`docker info`'s server section (GET /info)."""
        containers = containers or {}
        uname = os.uname()
        try:
            with open("/etc/os-release") as f:
                osr = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
            os_name = osr.get("PRETTY_NAME", "Linux").strip('"')
        except OSError:
            os_name = "Linux"
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        return {
            "ID": self._engine_id(),
            "Containers": sum(containers.values()),
            "ContainersRunning": containers.get("running", 0),
            "ContainersPaused": containers.get("paused", 0),
            "ContainersStopped": containers.get("stopped", 0),
            "Images": len(self.images.list()),
            "Driver": "overlay",
            "DriverStatus": [["Backing Filesystem", _backing_fs(self.state.root)]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                        "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "PidsLimit": True, "IPv4Forwarding": _ip_forwarding(),
            "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs", "CgroupVersion": _cgroup_version(),
            "KernelVersion": uname.release, "OperatingSystem": os_name,
            "OSVersion": "", "OSType": "linux", "Architecture": uname.machine,
            "NCPU": os.cpu_count() or 1, "MemTotal": mem_kb * 1024,
            "DockerRootDir": str(self.state.root),
            "Name": socket.gethostname(),
            "ServerVersion": berth.__version__,
            "Runtimes": {"berth": {"path": "berth-runtime"}, "runc": {"path": "runc"},
                         "crun": {"path": "crun"}},
            "DefaultRuntime": "berth",
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
            "Labels": [], "ExperimentalBuild": False,
        }

    def _engine_id(self) -> str:
        path = self.state.root / "engine-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            import uuid
            value = str(uuid.uuid4())
            tmp = path.with_suffix(".tmp")
            tmp.write_text(value)
            os.replace(tmp, path)
            return value

    def disk_usage(self, containers_using) -> dict:
        images = self.images.list()
        # A layer shared by several images counts once in the total.
        total = self.state.db.query_one(
            "SELECT COALESCE(SUM(size),0) FROM layers WHERE digest IN"
            " (SELECT DISTINCT digest FROM image_blobs)")[0]
        active = [img for img in images if containers_using(img.id)]
        active_bytes = self.state.db.query_one(
            "SELECT COALESCE(SUM(size),0) FROM layers WHERE digest IN (SELECT DISTINCT digest FROM"
            f" image_blobs WHERE image_id IN ({','.join('?' * len(active))}))",
            [img.id for img in active])[0] if active else 0
        return {"LayersSize": total, "Images": images, "ActiveImages": len(active),
                "ReclaimableImages": total - active_bytes}

    def check(self) -> CheckReport:
        """Every referenced blob present and intact, nothing left dangling."""
        report = CheckReport()
        referenced = self.images.referenced_blobs()
        on_disk = set(self.state.blobs)
        report.missing = sorted(referenced - on_disk)
        report.unreferenced = sorted(on_disk - referenced)
        for d in sorted(on_disk):
            if not self.state.blobs.verify(d):
                report.corrupt.append(d)
        report.stale_staging = sorted(str(p) for p in stale_staging(self.state))
        for img in self.images.list():
            try:
                config = self.images.config(img)
                manifest = self.images.manifest(img)
            except Exception as e:  # noqa: BLE001 - each failure is a finding
                report.inconsistent.append(f"{img.id}: {e}")
                continue
            if manifest["config"]["digest"] != img.id or len(manifest["layers"]) != len(
                    cfgmod.diff_ids(config)):
                report.inconsistent.append(f"{img.id}: manifest does not match config")
        return report


def _event_matches(event, filters: dict[str, list[str]]) -> bool:
    def ok(key, value):
        return key not in filters or value in filters[key]
    attrs = event.attributes
    if not ok("type", event.type) or not ok("event", event.action.split(":")[0]):
        return False
    for kind in ("container", "image", "volume", "network"):
        if kind in filters:
            if event.type != kind and not (kind == "image" and "image" in attrs):
                return False
            names = {event.actor_id, event.actor_id[:12], attrs.get("name", ""), attrs.get("image", "")}
            if not any(v in names or event.actor_id.startswith(v) for v in filters[kind]):
                return False
    for spec in filters.get("label", []):
        key, sep, value = spec.partition("=")
        if key not in attrs or (sep and attrs[key] != value):
            return False
    return True


def _backing_fs(path) -> str:
    best, fstype = "", "unknown"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, fstype = parts[1], parts[2]
    return fstype


def _ip_forwarding() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


