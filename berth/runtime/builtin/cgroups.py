"""Container cgroups on v1, hybrid and pure v2 hosts.

The layout is discovered from /proc/self/mountinfo.  On v1 (and hybrid)
hosts the container gets a directory in every mounted v1 hierarchy, as runc
does, plus one in the unified tree of a hybrid host for process tracking;
limits go to the v1 controllers.  On a pure v2 host it gets one directory
and the controllers are enabled in each ancestor's cgroup.subtree_control.
"""

import errno
import os
import signal
import time

_MOUNTINFO = "/proc/self/mountinfo"
_V2_KEY = ""  # paths key of the unified hierarchy

# The controllers whose limits we write, by v1 hierarchy name.
_V1_KNOWN = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
             "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc", "name=systemd")


class CgroupError(Exception):
    pass


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"open {path}: {e.strerror}") from None
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise CgroupError(f"write {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _write_device_weight(path: str, value: str) -> None:
    """A per-device weight; skipped where the device's IO scheduler has no
    weights (EOPNOTSUPP: not BFQ), as Docker then discards weight devices."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"open {path}: {e.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise CgroupError(f"write {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def hierarchies() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """({v1 hierarchy key: (mountpoint, root)}, (v2 mountpoint, root) or None).

    A v1 key is the hierarchy's controllers joined by "," as in /proc/self/cgroup
    ("cpu,cpuacct", "memory", "name=systemd").
    """
    with open(_MOUNTINFO) as f:
        return parse_mountinfo(f.read())


def parse_mountinfo(text: str) -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    v1: dict[str, tuple[str, str]] = {}
    v2 = None
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5:
            continue
        fstype, _source, superopts = (right.split() + ["", "", ""])[:3]
        if fstype == "cgroup2":
            v2 = (_unescape(fields[4]), _unescape(fields[3]))
        elif fstype == "cgroup":
            ctrls = [o for o in superopts.split(",") if o in _V1_KNOWN or o.startswith("name=")]
            if ctrls:
                v1.setdefault(",".join(ctrls), (_unescape(fields[4]), _unescape(fields[3])))
    return v1, v2


def _own_cgroups(pid: str = "self") -> dict[str, str]:
    """{hierarchy key: path} from /proc/PID/cgroup ("" for the unified one)."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _id, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


def resolve_paths(cgroups_path: str | None, container_id: str, mounts=None,
                  own: dict[str, str] | None = None) -> tuple[dict[str, str], bool]:
    """The container's directory in each hierarchy, and whether the host is pure v2.

    An absolute cgroupsPath is taken from each hierarchy's root; a relative one
    (or none, which means the container id) from this process's own cgroup, as runc
    does.  `mounts` and `own` default to this machine's (parse_mountinfo's
    result, /proc/self/cgroup's).
    """
    rel = cgroups_path or container_id
    if ":" in rel and not rel.startswith("/"):
        raise CgroupError(f"systemd cgroup paths are not supported: {rel}")
    v1, v2 = mounts if mounts is not None else hierarchies()
    if not rel.startswith("/") and own is None:
        own = _own_cgroups()
    paths: dict[str, str] = {}

    def place(key: str, mountpoint: str, root: str) -> str:
        if rel.startswith("/"):
            inner = os.path.normpath("/" + rel.lstrip("/"))
        else:
            base = own.get(key, "/")
            # Our own path is relative to the hierarchy root; make it relative to the mount.
            if root != "/" and base.startswith(root):
                base = base[len(root):] or "/"
            inner = os.path.normpath(os.path.join("/", base.lstrip("/"), rel))
        if inner == "/" or inner.startswith("/.."):
            raise CgroupError(f"invalid cgroup path {rel!r}")
        return mountpoint.rstrip("/") + inner

    pure_v2 = not v1 and v2 is not None
    for key, (mountpoint, root) in v1.items():
        paths[key] = place(key, mountpoint, root)
    if v2 is not None:
        paths[_V2_KEY] = place(_V2_KEY, *v2)
    if not paths:
        raise CgroupError("no cgroup filesystem is mounted")
    return paths, pure_v2


class Cgroups:
    def __init__(self, paths: dict[str, str], pure_v2: bool):
        self.paths = paths
        self.pure_v2 = pure_v2

    @classmethod
    def for_container(cls, cgroups_path: str | None, container_id: str) -> "Cgroups":
        return cls(*resolve_paths(cgroups_path, container_id))

    def to_json(self) -> dict:
        return {"paths": self.paths, "v2": self.pure_v2}

    @classmethod
    def from_json(cls, data: dict) -> "Cgroups":
        return cls(dict(data["paths"]), bool(data["v2"]))

    def _v1(self, controller: str) -> str | None:
        for key, path in self.paths.items():
            if key and controller in key.split(","):
                return path
        return None

    # --- lifecycle

    def create(self, resources: dict | None) -> None:
        """Make the directories and write the limits."""
        resources = resources or {}
        if self.pure_v2:
            self._create_v2(resources)
            return
        for key, path in self.paths.items():
            self._mkdirs(path, cpuset="cpuset" in key.split(","))
        self._apply_v1(resources)

    def _mkdirs(self, path: str, cpuset: bool = False) -> None:
        missing = []
        p = path
        while not os.path.isdir(p):
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                pass
            if cpuset:
                # A v1 cpuset starts empty and refuses tasks until it has cpus and mems.
                parent = os.path.dirname(d)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    if not _read(os.path.join(d, name)).strip():
                        _write(os.path.join(d, name), _read(os.path.join(parent, name)).strip())

    def _apply_v1(self, r: dict) -> None:
        mem = r.get("memory") or {}
        memory = self._v1("memory")
        if memory and mem:
            limit, swap = mem.get("limit"), mem.get("swap")
            limit_file = os.path.join(memory, "memory.limit_in_bytes")
            memsw = os.path.join(memory, "memory.memsw.limit_in_bytes")
            if swap is not None and os.path.exists(memsw):
                # memory+swap may never drop below memory: order the writes so
                # every intermediate state is valid (as runc does).
                current = int(_read(limit_file))
                if swap == -1 or (limit is not None and limit > current):
                    _write(memsw, swap)
                    if limit is not None:
                        _write(limit_file, limit)
                else:
                    if limit is not None:
                        _write(limit_file, limit)
                    _write(memsw, swap)
            elif limit is not None:
                # Without swap accounting the swap limit cannot be enforced; runc
                # and Docker then run with the memory limit alone.
                _write(limit_file, limit)
            if mem.get("reservation") is not None:
                _write(os.path.join(memory, "memory.soft_limit_in_bytes"), mem["reservation"])
            if mem.get("swappiness") is not None:
                _write(os.path.join(memory, "memory.swappiness"), mem["swappiness"])
            if mem.get("disableOOMKiller"):
                _write(os.path.join(memory, "memory.oom_control"), 1)
        cpu = r.get("cpu") or {}
        cpudir = self._v1("cpu")
        if cpudir and cpu:
            if cpu.get("shares"):
                _write(os.path.join(cpudir, "cpu.shares"), cpu["shares"])
            if cpu.get("period"):
                _write(os.path.join(cpudir, "cpu.cfs_period_us"), cpu["period"])
            if cpu.get("quota"):
                _write(os.path.join(cpudir, "cpu.cfs_quota_us"), cpu["quota"])
        cpuset = self._v1("cpuset")
        if cpuset:
            if cpu.get("cpus"):
                _write(os.path.join(cpuset, "cpuset.cpus"), cpu["cpus"])
            if cpu.get("mems"):
                _write(os.path.join(cpuset, "cpuset.mems"), cpu["mems"])
        pids = self._v1("pids")
        if pids and (r.get("pids") or {}).get("limit") is not None:
            limit = r["pids"]["limit"]
            _write(os.path.join(pids, "pids.max"), "max" if limit <= 0 else limit)
        blkio = self._v1("blkio")
        if blkio and r.get("blockIO"):
            _apply_blkio_v1(blkio, r["blockIO"])
        devices = self._v1("devices")
        if devices:
            for rule in list(r.get("devices") or ()) + list(RUNC_IMPLICIT_DEVICE_RULES):
                name = "devices.allow" if rule.get("allow") else "devices.deny"
                _write(os.path.join(devices, name), _device_rule(rule))

    def _create_v2(self, r: dict) -> None:
        path = self.paths[_V2_KEY]
        mountpoint = hierarchies()[1][0]
        wanted = []
        if r.get("memory"):
            wanted.append("memory")
        if r.get("cpu", {}).get("quota") or r.get("cpu", {}).get("shares"):
            wanted.append("cpu")
        if r.get("cpu", {}).get("cpus") or r.get("cpu", {}).get("mems"):
            wanted.append("cpuset")
        if r.get("pids"):
            wanted.append("pids")
        if r.get("blockIO"):
            wanted.append("io")
        # Enable what is available on the way down, so the leaf has the controllers.
        available = set(_read(os.path.join(mountpoint, "cgroup.controllers")).split())
        rel = os.path.relpath(path, mountpoint).split("/")
        current = mountpoint
        for part in rel:
            enable = " ".join("+" + c for c in wanted if c in available)
            if enable:
                try:
                    _write(os.path.join(current, "cgroup.subtree_control"), enable)
                except CgroupError:
                    pass  # the leaf check below reports what is really missing
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            available = set(_read(os.path.join(current, "cgroup.controllers")).split())
        missing = [c for c in wanted if c not in available]
        if missing:
            raise CgroupError(f"cgroup controllers not available: {', '.join(missing)}")
        mem = r.get("memory") or {}
        if mem.get("limit") is not None:
            _write(os.path.join(path, "memory.max"), "max" if mem["limit"] == -1 else mem["limit"])
        if mem.get("swap") is not None and os.path.exists(os.path.join(path, "memory.swap.max")):
            swap = mem["swap"]
            if swap == -1:
                value = "max"
            else:
                value = max(0, swap - (mem.get("limit") or 0)) if mem.get("limit") not in (None, -1) else swap
            _write(os.path.join(path, "memory.swap.max"), value)
        if mem.get("reservation") is not None:
            _write(os.path.join(path, "memory.low"), mem["reservation"])
        if mem.get("disableOOMKiller") and os.path.exists(os.path.join(path, "memory.oom.group")):
            pass  # v2 has no per-cgroup OOM-killer switch; runc ignores it as well
        cpu = r.get("cpu") or {}
        if cpu.get("shares"):
            weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142
            _write(os.path.join(path, "cpu.weight"), max(1, min(10000, weight)))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or -1
            _write(os.path.join(path, "cpu.max"),
                   f"{'max' if quota <= 0 else quota} {cpu.get('period') or 100000}")
        if cpu.get("cpus"):
            _write(os.path.join(path, "cpuset.cpus"), cpu["cpus"])
        if cpu.get("mems"):
            _write(os.path.join(path, "cpuset.mems"), cpu["mems"])
        if (r.get("pids") or {}).get("limit") is not None:
            limit = r["pids"]["limit"]
            _write(os.path.join(path, "pids.max"), "max" if limit <= 0 else limit)
        if r.get("blockIO"):
            _apply_io_v2(path, r["blockIO"])
        if r.get("devices") is not None:
            from berth.runtime.builtin.devices import DeviceFilterError, attach
            try:
                attach(path, list(r["devices"]) + list(RUNC_IMPLICIT_DEVICE_RULES))
            except DeviceFilterError as e:
                raise CgroupError(f"device cgroup filter: {e}") from None

    def add(self, pid: int) -> None:
        for path in self.paths.values():
            _write(os.path.join(path, "cgroup.procs"), pid)

    def procs(self) -> set[int]:
        pids: set[int] = set()
        for path in self.paths.values():
            try:
                pids.update(int(x) for x in _read(os.path.join(path, "cgroup.procs")).split())
            except FileNotFoundError:
                continue
        return pids

    # --- freezing

    def _freezer(self) -> tuple[str, str, str] | None:
        if self.pure_v2:
            return (os.path.join(self.paths[_V2_KEY], "cgroup.freeze"), "1", "0")
        path = self._v1("freezer")
        if path:
            return (os.path.join(path, "freezer.state"), "FROZEN", "THAWED")
        return None

    def frozen(self) -> bool:
        f = self._freezer()
        if f is None:
            return False
        try:
            if self.pure_v2:
                events = _read(os.path.join(self.paths[_V2_KEY], "cgroup.events"))
                return "frozen 1" in events
            return _read(f[0]).strip() == "FROZEN"
        except OSError:
            return False

    def freeze(self) -> None:
        f = self._freezer()
        if f is None:
            raise CgroupError("the freezer cgroup is not available")
        _write(f[0], f[1])
        deadline = time.monotonic() + 10
        while not self.frozen():
            if time.monotonic() > deadline:
                _write(f[0], f[2])
                raise CgroupError("timed out freezing the container")
            time.sleep(0.001)
            if not self.pure_v2:
                _write(f[0], f[1])  # v1 may stay FREEZING while tasks are busy; retry

    def thaw(self) -> None:
        f = self._freezer()
        if f is not None:
            try:
                _write(f[0], f[2])
            except CgroupError:
                pass

    # --- teardown

    def kill_all(self, signum: int = signal.SIGKILL) -> None:
        """Signal every process in the container's cgroups."""
        if self.pure_v2 and signum == signal.SIGKILL:
            kill = os.path.join(self.paths[_V2_KEY], "cgroup.kill")
            if os.path.exists(kill):
                try:
                    _write(kill, 1)
                    return
                except CgroupError:
                    pass
        frozen = self.frozen()
        # Freeze first so nothing forks past the signal.
        if not frozen:
            try:
                self.freeze()
            except CgroupError:
                pass
        try:
            for pid in self.procs():
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
        finally:
            if not frozen or signum == signal.SIGKILL:
                self.thaw()

    def destroy(self, timeout: float = 10.0) -> None:
        """Kill what is left, wait for the cgroups to empty and remove them."""
        deadline = time.monotonic() + timeout
        if any(os.path.isdir(p) for p in self.paths.values()):
            if self.procs():
                self.kill_all(signal.SIGKILL)
            while self.procs():
                if time.monotonic() > deadline:
                    raise CgroupError("processes are still running in the container's cgroup")
                time.sleep(0.002)
        for path in self.paths.values():
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"remove cgroup {path}: {e.strerror}") from None
                    time.sleep(0.002)


# OCI blockIO throttle keys and their v1 blkio files and v2 io.max keys.
_THROTTLES = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
              ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
              ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
              ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"))


def _apply_blkio_v1(path: str, block_io: dict) -> None:
    """The v1 blkio controller, as runc's BlkioGroup: the weight files of CFQ
    (blkio.weight*) or else BFQ (blkio.bfq.weight*), skipped when the kernel's
    scheduler has neither (Docker then discards the weights); a throttle file
    takes one "MAJ:MIN RATE" line per device."""
    weight_file = next((name for name in ("blkio.weight", "blkio.bfq.weight")
                        if os.path.exists(os.path.join(path, name))), None)
    if weight_file:
        if block_io.get("weight"):
            _write(os.path.join(path, weight_file), block_io["weight"])
        for d in block_io.get("weightDevice") or ():
            if d.get("weight"):
                _write_device_weight(os.path.join(path, weight_file + "_device"),
                                     f"{d['major']}:{d['minor']} {d['weight']}")
    for key, name, _ in _THROTTLES:
        for d in block_io.get(key) or ():
            _write(os.path.join(path, name), f"{d['major']}:{d['minor']} {d['rate']}")


def _apply_io_v2(path: str, block_io: dict) -> None:
    """The v2 io controller, as runc's fs2 setIo: BFQ's io.bfq.weight when there
    is one (per-device weights only there), else io.weight with the weight
    converted from blkio's 10-1000 range; io.max takes "MAJ:MIN KEY=RATE"."""
    bfq = os.path.join(path, "io.bfq.weight")
    has_bfq = os.path.exists(bfq)
    if block_io.get("weight"):
        if has_bfq:
            _write(bfq, block_io["weight"])
        else:
            weight = 1 + (block_io["weight"] - 10) * 9999 // 990
            _write(os.path.join(path, "io.weight"), f"default {weight}")
    if has_bfq:
        for d in block_io.get("weightDevice") or ():
            if d.get("weight"):
                _write_device_weight(bfq, f"{d['major']}:{d['minor']} {d['weight']}")
    for key, _, name in _THROTTLES:
        for d in block_io.get(key) or ():
            _write(os.path.join(path, "io.max"), f"{d['major']}:{d['minor']} {name}={d['rate']}")


# runc's specconv.AllowedDevices, appended after the spec's own rules.
RUNC_IMPLICIT_DEVICE_RULES = (
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)


def _device_rule(rule: dict) -> str:
    kind = rule.get("type") or "a"
    access = rule.get("access") or "rwm"
    if kind == "a":
        return "a"  # "a" alone covers every device and access
    major = rule.get("major")
    minor = rule.get("minor")
    major = "*" if major is None or major < 0 else str(major)
    minor = "*" if minor is None or minor < 0 else str(minor)
    return f"{kind} {major}:{minor} {access}"
