"""A container's resource usage, as GET /containers/{id}/stats reports it.

Counters are read where Docker's containerd reads them: the container's
cgroups (v1 controllers on a legacy or hybrid host, the unified tree on a
pure v2 host), /proc/stat for the system's CPU time, and /proc/PID/net/dev
of the container's init, which shows its network namespace from the host.
The JSON is moby's StatsJSON, field for field and with its omitempty rules,
so the API can serve it as it is and `docker stats`' arithmetic applies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from berth.container.record import Container
from berth.container.states import Status
from berth.errors import NotFound
from berth.runtime.builtin import cgroups
from berth.units import format_rfc3339_nano

ZERO_TIME = "0001-01-01T00:00:00Z"
INTERVAL = 1.0   # seconds between samples, as moby's stats collector
# The clock tick of cpuacct.stat and /proc/stat: a constant on Linux (USER_HZ).
CLOCK_TICKS = 100
NS_PER_TICK = 1_000_000_000 // CLOCK_TICKS
MAX_UINT64 = (1 << 64) - 1

# The keys moby reports from a v1 memory.stat, in its order of mention; absent ones are 0.
V1_MEMORY_KEYS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout", "pgfault",
    "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "hierarchical_memory_limit", "hierarchical_memsw_limit", "total_cache", "total_rss", "total_rss_huge",
    "total_mapped_file", "total_dirty", "total_writeback", "total_pgpgin", "total_pgpgout", "total_pgfault",
    "total_pgmajfault", "total_inactive_anon", "total_active_anon", "total_inactive_file",
    "total_active_file", "total_unevictable")
V2_MEMORY_KEYS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty", "file_writeback",
    "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault", "workingset_refault",
    "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan", "pgsteal", "pgactivate",
    "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc")
# v1 blkio files: the CFQ ones when the kernel has them, else the throttle ones (containerd's choice).
BLKIO_CFQ = (("io_service_bytes_recursive", "blkio.io_service_bytes_recursive"),
             ("io_serviced_recursive", "blkio.io_serviced_recursive"),
             ("io_queue_recursive", "blkio.io_queued_recursive"),
             ("io_service_time_recursive", "blkio.io_service_time_recursive"),
             ("io_wait_time_recursive", "blkio.io_wait_time_recursive"),
             ("io_merged_recursive", "blkio.io_merged_recursive"),
             ("io_time_recursive", "blkio.time_recursive"),
             ("sectors_recursive", "blkio.sectors_recursive"))
BLKIO_THROTTLE = (("io_service_bytes_recursive", "blkio.throttle.io_service_bytes"),
                  ("io_serviced_recursive", "blkio.throttle.io_serviced"))
BLKIO_KEYS = tuple(key for key, _ in BLKIO_CFQ)

RUNNING = (Status.RUNNING, Status.PAUSED)


def empty_cpu_stats() -> dict:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


# ----------------------------------------------------------------------------
# Parsing what the kernel writes (pure)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat, memory.events)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def parse_limit(text: str) -> int:
    """A v2 limit file: a number, or "max" for none."""
    text = text.strip()
    return MAX_UINT64 if text == "max" else int(text)


def parse_blkio(text: str) -> list[dict]:
    """A v1 blkio file: `MAJ:MIN Op value` lines (the trailing `Total n` has no device)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        major, _, minor = fields[0].partition(":")
        try:
            out.append({"major": int(major), "minor": int(minor), "op": fields[1], "value": int(fields[2])})
        except ValueError:
            continue
    return out


def parse_io_stat(text: str) -> list[dict] | None:
    """v2 io.stat as moby reports it: a read and a write entry per device, or None."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            out.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values.get(key, 0))})
    return out or None


def parse_net_dev(text: str) -> dict[str, dict]:
    """/proc/net/dev, loopback left out as libnetwork leaves it out."""
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if not sep or name == "lo" or len(fields) < 16:
            continue
        v = [int(f) for f in fields]
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def parse_proc_stat(text: str) -> tuple[int, int]:
    """(system CPU time in ns, online CPUs) from /proc/stat, as moby's
    getSystemCPUUsage: the first seven fields of the `cpu` line in ticks."""
    usage = cpus = 0
    for line in text.splitlines():
        if len(line) < 4 or not line.startswith("cpu"):
            break
        if line[3] == " ":
            fields = line.split()
            usage = sum(int(f) for f in fields[1:8]) * NS_PER_TICK
        elif line[3].isdigit():
            cpus += 1
    return usage, cpus


def parse_meminfo_total(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            return int(fields[1]) * (1024 if len(fields) > 2 and fields[2] == "kB" else 1)
    return 0


# ----------------------------------------------------------------------------
# Where a container's cgroups are


@dataclass(frozen=True)
class CgroupDirs:
    """The directories of one container's cgroups: by v1 controller, or the v2 one."""

    v1: dict[str, str]
    v2: str | None

    @property
    def unified(self) -> bool:
        return not self.v1

    def controller(self, name: str) -> str | None:
        return self.v1.get(name)


def cgroup_dirs(pid: int, container_id: str, cgroup_parent: str = "") -> CgroupDirs:
    """Where `pid` (the container's init) sits in each mounted hierarchy.

    Read from /proc/PID/cgroup, so it holds for any runtime; should the
    process be gone, the engine's own cgroupsPath (PARENT/<id>, PARENT being
    HostConfig.CgroupParent or /berth) stands in.
    """
    mounts = cgroups.hierarchies()
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return place_cgroups(mounts, f.read())
    except OSError:
        paths, _ = cgroups.resolve_paths(os.path.join(cgroup_parent or "/berth", container_id),
                                        container_id, mounts)
        unified = paths.pop("", None)
        return _by_controller(paths, unified)


def place_cgroups(mounts, proc_cgroup: str) -> CgroupDirs:
    """The directories named by a /proc/PID/cgroup text under the mounted
    hierarchies `mounts` (berth.runtime.builtin.cgroups.hierarchies())."""
    v1_mounts, v2_mount = mounts
    own = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            own[parts[1]] = parts[2]
    placed = {key: _under(mount, own[key]) for key, mount in v1_mounts.items() if key in own}
    unified = _under(v2_mount, own[""]) if v2_mount is not None and "" in own else None
    return _by_controller(placed, unified)


def _by_controller(placed: dict[str, str], unified: str | None) -> CgroupDirs:
    v1 = {}
    for key, path in placed.items():
        for ctrl in key.split(","):
            v1[ctrl] = path
    # A hybrid host's unified tree holds no controllers: its v1 ones count.
    if not any(c in v1 for c in ("memory", "cpu", "cpuacct", "pids", "blkio")):
        v1 = {}
    return CgroupDirs(v1, unified)


def _under(mount: tuple[str, str], path: str) -> str:
    mountpoint, root = mount
    if root != "/" and path.startswith(root):
        path = path[len(root):] or "/"
    return mountpoint.rstrip("/") + "/" + path.lstrip("/")


# ----------------------------------------------------------------------------
# Reading a running container


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(path: str) -> int:
    text = _read(path)
    try:
        return int(text.strip()) if text else 0
    except ValueError:
        return 0


def _omit_zero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def machine_memory() -> int:
    return parse_meminfo_total(_read("/proc/meminfo") or "")


def _cpu_v1(dirs: CgroupDirs) -> dict:
    acct = dirs.controller("cpuacct")
    cpu = dirs.controller("cpu")
    usage = {"total_usage": 0}
    if acct:
        usage["total_usage"] = _int(f"{acct}/cpuacct.usage")
        percpu = [int(v) for v in (_read(f"{acct}/cpuacct.usage_percpu") or "").split()]
        if percpu:
            usage["percpu_usage"] = percpu
        ticks = parse_flat_keyed(_read(f"{acct}/cpuacct.stat") or "")
        usage["usage_in_kernelmode"] = ticks.get("system", 0) * NS_PER_TICK
        usage["usage_in_usermode"] = ticks.get("user", 0) * NS_PER_TICK
    else:
        usage.update(usage_in_kernelmode=0, usage_in_usermode=0)
    throttle = parse_flat_keyed(_read(f"{cpu}/cpu.stat") or "") if cpu else {}
    return {"cpu_usage": usage,
            "throttling_data": {"periods": throttle.get("nr_periods", 0),
                                "throttled_periods": throttle.get("nr_throttled", 0),
                                "throttled_time": throttle.get("throttled_time", 0)}}


def _cpu_v2(path: str) -> dict:
    s = parse_flat_keyed(_read(f"{path}/cpu.stat") or "")
    return {"cpu_usage": {"total_usage": s.get("usage_usec", 0) * 1000,
                          "usage_in_kernelmode": s.get("system_usec", 0) * 1000,
                          "usage_in_usermode": s.get("user_usec", 0) * 1000},
            "throttling_data": {"periods": s.get("nr_periods", 0), "throttled_periods": s.get("nr_throttled", 0),
                                "throttled_time": s.get("throttled_usec", 0) * 1000}}


def _clamp(limit: int, machine: int) -> int:
    # As moby: a container without a limit reports the machine's memory.
    return machine if machine and limit > machine else limit


def _memory_v1(path: str | None, machine: int) -> dict:
    if not path:
        return {}
    raw = parse_flat_keyed(_read(f"{path}/memory.stat") or "")
    stats = {k: raw.get(k, 0) for k in sorted(V1_MEMORY_KEYS)}
    return _omit_zero({"usage": _int(f"{path}/memory.usage_in_bytes"),
                       "max_usage": _int(f"{path}/memory.max_usage_in_bytes"),
                       "stats": stats,
                       "failcnt": _int(f"{path}/memory.failcnt"),
                       "limit": _clamp(_int(f"{path}/memory.limit_in_bytes"), machine)})


def _memory_v2(path: str, machine: int) -> dict:
    raw = parse_flat_keyed(_read(f"{path}/memory.stat") or "")
    stats = {k: raw.get(k, 0) for k in sorted(V2_MEMORY_KEYS)}
    limit_text = _read(f"{path}/memory.max")
    events = _read(f"{path}/memory.events")
    return _omit_zero({"usage": _int(f"{path}/memory.current"),
                       "stats": stats,
                       "failcnt": parse_flat_keyed(events).get("oom", 0) if events else 0,
                       "limit": _clamp(parse_limit(limit_text) if limit_text else 0, machine)})


def _pids(path: str | None) -> dict:
    if not path:
        return {}
    limit_text = (_read(f"{path}/pids.max") or "").strip()
    limit = int(limit_text) if limit_text.isdigit() else 0
    return _omit_zero({"current": _int(f"{path}/pids.current"), "limit": limit})


def _blkio_v1(path: str | None) -> dict:
    out: dict = {key: None for key in BLKIO_KEYS}
    if not path:
        return out
    files = BLKIO_CFQ if os.path.exists(f"{path}/blkio.io_serviced_recursive") else BLKIO_THROTTLE
    for key, name in files:
        out[key] = parse_blkio(_read(f"{path}/{name}") or "")
    for key in BLKIO_KEYS:
        if out[key] is None:
            out[key] = []
    return out


def _networks(pid: int) -> dict[str, dict]:
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return {}  # the host's network: Docker reports no interfaces for it
    except OSError:
        return {}
    return parse_net_dev(_read(f"/proc/{pid}/net/dev") or "")


@dataclass(frozen=True)
class Sample:
    """One reading of a running container's counters, in moby's JSON shapes."""

    read_ns: int
    cpu_stats: dict
    memory_stats: dict
    pids_stats: dict
    blkio_stats: dict
    networks: dict


def read_counters(dirs: CgroupDirs, machine: int) -> tuple[dict, dict, dict, dict]:
    """(cpu_stats, memory_stats, pids_stats, blkio_stats) from a container's
    cgroups, the system-wide CPU fields not yet added; `machine` is the
    host's memory, which an unlimited container reports as its limit."""
    if dirs.unified:
        path = dirs.v2 or ""
        blkio = {key: None for key in BLKIO_KEYS}
        blkio["io_service_bytes_recursive"] = parse_io_stat(_read(f"{path}/io.stat") or "")
        return _cpu_v2(path), _memory_v2(path, machine), _pids(path), blkio
    return (_cpu_v1(dirs), _memory_v1(dirs.controller("memory"), machine), _pids(dirs.controller("pids")),
            _blkio_v1(dirs.controller("blkio")))


def sample(c: Container) -> Sample | None:
    """Read `c`'s counters now; None when it is not running."""
    pid = int(c.state.get("Pid") or 0)
    if c.status not in RUNNING or pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        return None
    cpu, memory, pids, blkio = read_counters(cgroup_dirs(pid, c.id, c.host_config.get("CgroupParent") or ""),
                                             machine_memory())
    system, cpus = parse_proc_stat(_read("/proc/stat") or "")
    if system:
        cpu["system_cpu_usage"] = system
    if cpus:
        cpu["online_cpus"] = cpus
    # moby's CPUStats field order: cpu_usage, system_cpu_usage, online_cpus, throttling_data.
    cpu = {k: cpu[k] for k in ("cpu_usage", "system_cpu_usage", "online_cpus", "throttling_data") if k in cpu}
    return Sample(time.time_ns(), cpu, memory, pids, blkio, _networks(pid))


# ----------------------------------------------------------------------------
# The API's JSON


def stats_response(c: Container, current: Sample | None, previous: Sample | None = None) -> dict:
    """moby's StatsJSON for `c`: `current`'s counters with `previous`'s CPU
    as precpu_stats; the empty one Docker sends for a stopped container when
    `current` is None."""
    if current is None:
        return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
                "blkio_stats": {key: None for key in BLKIO_KEYS}, "num_procs": 0, "storage_stats": {},
                "cpu_stats": empty_cpu_stats(), "precpu_stats": empty_cpu_stats(), "memory_stats": {},
                "name": "/" + c.name, "id": c.id}
    out = {"read": format_rfc3339_nano(current.read_ns),
           "preread": format_rfc3339_nano(previous.read_ns) if previous else ZERO_TIME,
           "pids_stats": current.pids_stats, "blkio_stats": current.blkio_stats, "num_procs": 0,
           "storage_stats": {}, "cpu_stats": current.cpu_stats,
           "precpu_stats": previous.cpu_stats if previous else empty_cpu_stats(),
           "memory_stats": current.memory_stats, "name": "/" + c.name, "id": c.id}
    if current.networks:
        out["networks"] = current.networks
    return out


def stats(manager, ref: str, *, stream: bool = True, one_shot: bool = False, interval: float = INTERVAL,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[dict]:
    """GET /containers/{id}/stats: StatsJSON objects for the container `ref`.

    Streaming, one per `interval` until the container stops, the first with
    empty precpu_stats; otherwise one, with precpu_stats from a sample one
    interval earlier (or none with `one_shot`), as dockerd does.  A stopped
    container gets one empty object when not streaming, none otherwise.
    """
    c = manager.get(ref)
    previous = None
    if not stream:
        first = sample(c)
        if first is None or one_shot:
            yield stats_response(c, first)
            return
        sleep(interval)
        c = manager.get(c.id)
        yield stats_response(c, sample(c) or first, first)
        return
    while True:
        current = sample(c)
        if current is None:
            return
        yield stats_response(c, current, previous)
        previous = current
        sleep(interval)
        try:
            c = manager.get(c.id)
        except NotFound:  # removed meanwhile: the stream ends, as dockerd's does
            return
