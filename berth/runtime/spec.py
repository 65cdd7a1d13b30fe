"""Build OCI runtime-spec `config.json` documents with Docker's defaults.

Everything here is a pure function of its inputs: the container's wishes
(`ProcessOptions`, `SandboxOptions`) and the facts about the host that Docker
consults while building a spec (`HostInfo`: architecture, kernel version,
capability count, cgroup version, sysctls, devices).  `HostInfo.probe()` is
the one place that reads the machine.

The defaults follow moby's oci/defaults.go and daemon/oci_linux.go; the
seccomp profile conversion follows moby's profiles/seccomp.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass, field
from importlib import resources
from typing import Mapping, Sequence

from berth.errors import InvalidArgument
from berth.runtime.capabilities import CAPABILITIES, DOCKER_DEFAULT_CAPABILITIES

OCI_VERSION = "1.0.2-dev"

DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Namespace modes: a fresh namespace, the host's, or (any string starting
# with "/") the path of a namespace to join, e.g. /proc/1234/ns/net.
PRIVATE = "private"
HOST = "host"

# moby oci/defaults.go
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Device cgroup rules every non-privileged Docker container starts with:
# deny all, then null, zero, urandom, random, tty, console; deny fuse.
_DEFAULT_DEVICE_RULES = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
)

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
CPU_PERIOD = 100_000  # microseconds; Docker's period for --cpus

# Docker's sysctls for a private network namespace (daemon/oci_linux.go):
# unprivileged ping and low ports, both of which the default caps allow anyway.
_NETNS_SYSCTLS = {
    "net.ipv4.ping_group_range": "0 2147483647",
    "net.ipv4.ip_unprivileged_port_start": "0",
}

# platform.machine() -> libseccomp's native arch name (the names the profile's
# includes/excludes "arches" use) -> the profile's archMap key.
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
}
_NATIVE_TO_SCMP = {
    "amd64": "SCMP_ARCH_X86_64",
    "x86": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}

_RLIMIT_NAMES = frozenset(
    "RLIMIT_" + n
    for n in ("AS", "CORE", "CPU", "DATA", "FSIZE", "LOCKS", "MEMLOCK", "MSGQUEUE", "NICE",
              "NOFILE", "NPROC", "RSS", "RTPRIO", "RTTIME", "SIGPENDING", "STACK")
)


# --------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class Device:
    """A device node to create in the container (OCI linux.devices entry)."""

    path: str
    type: str  # "c", "b", "u" or "p"
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0
    access: str = "rwm"  # what the devices cgroup allows on it (--device's permissions)

    def to_oci(self) -> dict:
        return {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor,
                "fileMode": self.file_mode, "uid": self.uid, "gid": self.gid}


@dataclass(frozen=True)
class HostInfo:
    """The facts about the host that shape a Docker spec."""

    machine: str = "x86_64"
    kernel: tuple[int, int] = (6, 1)
    # The capabilities berth itself holds: all a container can be given.
    capabilities: tuple[str, ...] = CAPABILITIES
    cgroup2: bool = False  # /sys/fs/cgroup is a pure cgroup v2 mount
    sysctls: frozenset[str] = frozenset(_NETNS_SYSCTLS)
    devices: tuple[Device, ...] = ()  # what --privileged exposes

    @classmethod
    def probe(cls) -> "HostInfo":
        """Read the running machine."""
        release = os.uname().release
        kernel = _parse_kernel(release) or (0, 0)
        caps = CAPABILITIES
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("CapEff:"):
                        held = int(line.split()[1], 16)
                        caps = tuple(c for n, c in enumerate(CAPABILITIES) if held & (1 << n))
        except OSError:
            pass
        try:
            cgroup2 = _fs_type("/sys/fs/cgroup") == "cgroup2"
        except OSError:
            cgroup2 = False
        sysctls = frozenset(k for k in _NETNS_SYSCTLS
                            if os.path.exists("/proc/sys/" + k.replace(".", "/")))
        return cls(machine=os.uname().machine, kernel=kernel, capabilities=caps,
                   cgroup2=cgroup2, sysctls=sysctls, devices=tuple(scan_devices("/dev")))

    @property
    def native_arch(self) -> str:
        return _MACHINE_TO_NATIVE.get(self.machine, self.machine)

    def all_capabilities(self) -> list[str]:
        """What --privileged grants: every capability available here (moby's
        GetAllCapabilities, which also leaves out what the daemon lacks)."""
        return list(self.capabilities)


def _fs_type(path: str) -> str | None:
    """The filesystem type mounted exactly at `path`, from /proc/self/mounts."""
    found = None
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[1] == path:
                found = parts[2]  # the last mount on top wins
    return found


def _parse_kernel(release: str) -> tuple[int, int] | None:
    nums = []
    for part in release.split(".")[:2]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            return None
        nums.append(int(digits))
    if len(nums) == 1:
        nums.append(0)
    return (nums[0], nums[1])


def scan_devices(root: str = "/dev") -> list[Device]:
    """The device nodes under `root`, as moby's HostDevices lists them for
    --privileged (skipping pts, shm, mqueue and the console, which the
    container gets its own of)."""
    skip_dirs = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
    out: list[Device] = []

    def walk(directory: str) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in skip_dirs:
                        walk(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.path == os.path.join(root, "console"):
                continue
            node = _node(entry.path, st)
            if node is not None:
                out.append(node)

    walk(root)
    return out


def device_at(path: str) -> Device:
    """The device node at `path`, symlinks followed (as Docker resolves a
    --device path); OSError when there is none."""
    node = _node(path, os.stat(path))
    if node is None:
        raise OSError(errno.ENODEV, "not a device node")
    return node


def _node(path: str, st: os.stat_result) -> Device | None:
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return Device(path, kind, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode),
                  st.st_uid, st.st_gid)


@dataclass(frozen=True)
class User:
    """The numeric identity the container process runs as (resolved by the caller)."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    umask: int | None = None


@dataclass(frozen=True)
class Rlimit:
    type: str  # "RLIMIT_NOFILE", or the short Docker form "nofile"
    soft: int
    hard: int


@dataclass(frozen=True)
class ProcessOptions:
    """What runs: shared by the container's init and `exec` processes."""

    args: Sequence[str]
    env: Sequence[str] = ()  # "KEY=value"; the caller adds PATH/HOSTNAME/TERM as Docker does
    cwd: str = "/"
    user: User = User()
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    # Docker's default is False (NoNewPrivs: 0); --security-opt no-new-privileges sets it.
    no_new_privileges: bool = False
    rlimits: Sequence[Rlimit] = ()
    oom_score_adj: int | None = 0


@dataclass(frozen=True)
class Mount:
    """An OCI mount; use `Mount.bind` / `Mount.tmpfs` for Docker's flavours."""

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()

    @classmethod
    def bind(cls, source: str, destination: str, *, readonly: bool = False,
             recursive: bool = True, propagation: str = "rprivate") -> "Mount":
        """A bind mount with the options `docker run -v` produces."""
        opts = ["rbind" if recursive else "bind"]
        if readonly:
            opts.append("ro")
        if propagation:
            opts.append(propagation)
        return cls(destination, "bind", source, tuple(opts))

    @classmethod
    def tmpfs(cls, destination: str, options: Sequence[str] = ()) -> "Mount":
        """A tmpfs with the options `docker run --tmpfs` produces."""
        return cls(destination, "tmpfs", "tmpfs",
                   _merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", *options]))

    def to_oci(self) -> dict:
        return {"destination": self.destination, "type": self.type, "source": self.source,
                "options": list(self.options)}


@dataclass(frozen=True)
class BlockDeviceLimit:
    """A per-device block IO value: a weight, or a rate (bytes or IO per second)."""

    major: int
    minor: int
    value: int


@dataclass(frozen=True)
class Resources:
    """cgroup limits, in Docker's units."""

    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory+swap bytes; None = twice `memory` (Docker); -1 = unlimited
    memory_reservation: int | None = None
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    cpus: float | None = None  # --cpus
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # <= 0 means unlimited
    blkio_weight: int | None = None
    blkio_weight_device: tuple[BlockDeviceLimit, ...] = ()
    blkio_read_bps: tuple[BlockDeviceLimit, ...] = ()
    blkio_write_bps: tuple[BlockDeviceLimit, ...] = ()
    blkio_read_iops: tuple[BlockDeviceLimit, ...] = ()
    blkio_write_iops: tuple[BlockDeviceLimit, ...] = ()


@dataclass(frozen=True)
class IDMapping:
    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class SandboxOptions:
    """How the process is isolated: namespaces, filesystem, limits, privileges."""

    rootfs: str
    readonly_rootfs: bool = False
    hostname: str = ""
    domainname: str = ""
    network: str = PRIVATE  # PRIVATE, HOST, or a netns path to join
    pid: str = PRIVATE
    ipc: str = PRIVATE
    uts: str = PRIVATE
    cgroupns: str | None = None  # None: Docker's default (private on cgroup v2, host on v1)
    uid_mappings: tuple[IDMapping, ...] = ()  # non-empty: a private user namespace
    gid_mappings: tuple[IDMapping, ...] = ()
    mounts: tuple[Mount, ...] = ()
    shm_size: int = DEFAULT_SHM_SIZE
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    # "default" (Docker's profile), "unconfined", or a profile in Docker's JSON format.
    seccomp: str | Mapping = "default"
    masked_paths: tuple[str, ...] | None = None  # None: Docker's
    readonly_paths: tuple[str, ...] | None = None
    devices: tuple[Device, ...] = ()  # --device
    device_cgroup_rules: tuple[str, ...] = ()  # --device-cgroup-rule "c 1:3 rwm"
    sysctls: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    cgroups_path: str | None = None  # e.g. "/berth/<id>"
    annotations: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Capabilities


def normalize_capabilities(names: Sequence[str], host: HostInfo = HostInfo()) -> list[str]:
    """Docker's NormalizeLegacyCapabilities: upper-case, CAP_ prefix, "ALL" kept,
    names the host cannot grant dropped."""
    out = []
    for name in names:
        upper = name.strip().upper()
        if upper == "ALL":
            out.append("ALL")
            continue
        if not upper.startswith("CAP_"):
            upper = "CAP_" + upper
        if upper not in CAPABILITIES:
            raise InvalidArgument(f'unknown capability: "{upper}"')
        if upper not in host.capabilities:
            continue  # moby warns and skips what this environment cannot grant
        out.append(upper)
    return out


def effective_capabilities(cap_add: Sequence[str] = (), cap_drop: Sequence[str] = (),
                           privileged: bool = False, host: HostInfo = HostInfo()) -> list[str]:
    """Docker's TweakCapabilities over its default set."""
    if privileged:
        return host.all_capabilities()
    if not cap_add and not cap_drop:
        return list(DOCKER_DEFAULT_CAPABILITIES)
    adds = normalize_capabilities(cap_add, host)
    drops = normalize_capabilities(cap_drop, host)
    if "ALL" in adds:
        caps = [c for c in host.all_capabilities() if c not in drops]
    elif "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in DOCKER_DEFAULT_CAPABILITIES if c not in drops] + adds
    return list(dict.fromkeys(caps))


def capabilities_section(caps: Sequence[str], uid: int) -> dict:
    """moby's SetCapabilities: root gets bounding/effective/permitted; others only
    the bounding set, as execve would leave them."""
    caps = list(caps)
    if uid == 0:
        return {"bounding": caps, "effective": list(caps), "permitted": list(caps)}
    return {"bounding": caps}


# --------------------------------------------------------------------------
# Seccomp


def load_default_seccomp_profile() -> dict:
    """Docker's default profile, shipped as package data."""
    with resources.files("berth").joinpath("data/seccomp-default.json").open("rb") as f:
        return json.load(f)


def seccomp_from_profile(profile: Mapping, capabilities: Sequence[str],
                         host: HostInfo = HostInfo()) -> dict | None:
    """Convert a Docker seccomp profile into OCI `linux.seccomp`.

    Rules are kept or dropped by their includes/excludes against the host
    architecture, kernel and the container's (bounding) capabilities, as
    moby's setupSeccomp does.  Returns None for a profile that disables seccomp.
    """
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("'architectures' and 'archMap' were specified in the seccomp "
                              "profile, use either 'architectures' or 'archMap'")
    arch = host.native_arch
    out: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or ())
    scmp_arch = _NATIVE_TO_SCMP.get(arch)
    for entry in profile.get("archMap") or ():
        if scmp_arch and entry.get("architecture") == scmp_arch:
            arches.append(entry["architecture"])
            arches.extend(entry.get("subArchitectures") or ())
            break
    if arches:
        out["architectures"] = arches
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]
    caps = set(capabilities)
    syscalls = []
    for rule in profile.get("syscalls") or ():
        if not _seccomp_rule_applies(rule, arch, caps, host.kernel):
            continue
        if rule.get("name") and rule.get("names"):
            raise InvalidArgument("'name' and 'names' were specified in the seccomp profile, "
                                  "use either 'name' or 'names'")
        names = list(rule.get("names") or ()) or [rule["name"]]
        converted = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            converted["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            converted["args"] = [
                {"index": a["index"], "value": a.get("value", 0), "valueTwo": a.get("valueTwo", 0),
                 "op": a["op"]}
                for a in rule["args"]
            ]
        syscalls.append(converted)
    out["syscalls"] = syscalls
    return out


def _seccomp_rule_applies(rule: Mapping, arch: str, caps: set[str],
                          kernel: tuple[int, int]) -> bool:
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(c in caps for c in excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and kernel >= _require_kernel(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if any(c not in caps for c in includes.get("caps") or ()):
        return False
    if includes.get("minKernel") and kernel < _require_kernel(includes["minKernel"]):
        return False
    return True


def _require_kernel(text: str) -> tuple[int, int]:
    parsed = _parse_kernel(text)
    if parsed is None:
        raise InvalidArgument(f"invalid kernel version in seccomp profile: {text!r}")
    return parsed


# --------------------------------------------------------------------------
# The spec


def process_spec(process: ProcessOptions, capabilities: Sequence[str],
                 apparmor_profile: str | None = None) -> dict:
    """The OCI `process` object; also the `--process` file of `runtime exec`."""
    if not process.args:
        raise InvalidArgument("no command specified")
    user: dict = {"uid": process.user.uid, "gid": process.user.gid}
    if process.user.additional_gids:
        user["additionalGids"] = list(process.user.additional_gids)
    if process.user.umask is not None:
        user["umask"] = process.user.umask
    out: dict = {
        "terminal": process.terminal,
        "user": user,
        "args": list(process.args),
        "env": list(process.env),
        "cwd": process.cwd or "/",
        "capabilities": capabilities_section(capabilities, process.user.uid),
        "noNewPrivileges": process.no_new_privileges,
    }
    if process.console_size is not None:
        out["consoleSize"] = {"height": process.console_size[0], "width": process.console_size[1]}
    if process.rlimits:
        out["rlimits"] = [_rlimit(r) for r in process.rlimits]
    if process.oom_score_adj is not None:
        out["oomScoreAdj"] = process.oom_score_adj
    if apparmor_profile:
        out["apparmorProfile"] = apparmor_profile
    return out


def _rlimit(r: Rlimit) -> dict:
    name = r.type.upper()
    if not name.startswith("RLIMIT_"):
        name = "RLIMIT_" + name
    if name not in _RLIMIT_NAMES:
        raise InvalidArgument(f"invalid ulimit type: {r.type}")
    if r.soft > r.hard:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: "
                              f"{r.soft} > {r.hard}")
    return {"type": name, "soft": r.soft, "hard": r.hard}


def default_spec(process: ProcessOptions, sandbox: SandboxOptions,
                 host: HostInfo = HostInfo()) -> dict:
    """The complete config.json `docker run` would hand its runtime."""
    caps = effective_capabilities(sandbox.cap_add, sandbox.cap_drop, sandbox.privileged, host)
    spec: dict = {
        "ociVersion": OCI_VERSION,
        "process": process_spec(process, caps),
        "root": {"path": sandbox.rootfs, "readonly": sandbox.readonly_rootfs},
        "mounts": _mounts(sandbox),
    }
    if sandbox.uts != HOST and sandbox.hostname:
        spec["hostname"] = sandbox.hostname
    if sandbox.uts != HOST and sandbox.domainname:
        spec["domainname"] = sandbox.domainname
    if sandbox.annotations:
        spec["annotations"] = dict(sandbox.annotations)

    linux: dict = {
        "namespaces": _namespaces(sandbox, host),
        "resources": _resources(sandbox),
        "sysctl": _sysctls(sandbox, host),
    }
    if sandbox.uid_mappings:
        linux["uidMappings"] = [_idmap(m) for m in sandbox.uid_mappings]
        linux["gidMappings"] = [_idmap(m) for m in sandbox.gid_mappings or sandbox.uid_mappings]
    if sandbox.cgroups_path:
        linux["cgroupsPath"] = sandbox.cgroups_path
    devices = [d.to_oci() for d in sandbox.devices]
    if sandbox.privileged:
        devices = [d.to_oci() for d in host.devices] + devices
    linux["devices"] = _dedupe_devices(devices)
    if not sandbox.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS if sandbox.masked_paths is None
                                    else sandbox.masked_paths)
        linux["readonlyPaths"] = list(READONLY_PATHS if sandbox.readonly_paths is None
                                      else sandbox.readonly_paths)
        seccomp = _seccomp(sandbox.seccomp, caps, host)
        if seccomp is not None:
            linux["seccomp"] = seccomp
    spec["linux"] = linux
    return spec


def exec_process_spec(container_spec: Mapping, process: ProcessOptions, *,
                      privileged: bool = False, host: HostInfo = HostInfo()) -> dict:
    """The process for `docker exec`.

    Like moby, it starts from the container's own process (rlimits,
    no_new_privs, OOM score, AppArmor) and replaces what exec chooses: command,
    env, cwd, tty, user; capabilities stay the container's unless --privileged.
    """
    base = dict(container_spec.get("process") or {})
    if privileged:
        caps = host.all_capabilities()
    else:
        caps = list((base.get("capabilities") or {}).get("bounding", ()))
    fresh = process_spec(process, caps)
    for key in ("args", "env", "cwd", "terminal", "user", "capabilities"):
        base[key] = fresh[key]
    base.pop("consoleSize", None)
    if "consoleSize" in fresh:
        base["consoleSize"] = fresh["consoleSize"]
    if process.no_new_privileges:
        base["noNewPrivileges"] = True
    if process.rlimits:
        base["rlimits"] = fresh["rlimits"]
    return base


def _idmap(m: IDMapping) -> dict:
    return {"containerID": m.container_id, "hostID": m.host_id, "size": m.size}


def _namespaces(sandbox: SandboxOptions, host: HostInfo) -> list[dict]:
    out: list[dict] = []

    def add(kind: str, mode: str) -> None:
        if mode == HOST:
            return
        if mode == PRIVATE:
            out.append({"type": kind})
        elif mode.startswith("/"):
            out.append({"type": kind, "path": mode})
        else:
            raise InvalidArgument(f"invalid {kind} namespace mode: {mode}")

    add("mount", PRIVATE)
    add("network", sandbox.network)
    add("uts", sandbox.uts)
    add("pid", sandbox.pid)
    add("ipc", sandbox.ipc)
    cgroupns = sandbox.cgroupns or (PRIVATE if host.cgroup2 else HOST)
    add("cgroup", cgroupns)
    if sandbox.uid_mappings:
        out.append({"type": "user"})
    return out


def _mounts(sandbox: SandboxOptions) -> list[dict]:
    shm_opts = ["nosuid", "noexec", "nodev", "mode=1777", f"size={sandbox.shm_size}"]
    defaults = [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount("/dev/pts", "devpts", "devpts",
              ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")),
        Mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("ro", "nosuid", "noexec", "nodev")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/dev/shm", "tmpfs", "shm", tuple(shm_opts)),
    ]
    user_dests = {m.destination for m in sandbox.mounts}
    user_dev = "/dev" in user_dests
    kept: list[Mount] = []
    for m in defaults:
        if m.destination in user_dests or (user_dev and m.destination.startswith("/dev/")):
            continue
        if m.destination == "/dev/mqueue" and sandbox.ipc == HOST:
            # The host's mqueue cannot be mounted from a container sharing its IPC
            # namespace without CAP_SYS_ADMIN over it; Docker bind-mounts it then.
            m = Mount("/dev/mqueue", "bind", "/dev/mqueue", ("rbind", "nosuid", "noexec", "nodev"))
        kept.append(m)

    ro_exempt = {"/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"}
    result = []
    for m in kept:
        opts = list(m.options)
        if sandbox.readonly_rootfs and m.destination not in ro_exempt and "ro" not in opts:
            opts.append("ro")
        if sandbox.privileged and m.type in ("sysfs", "cgroup"):
            opts = ["rw" if o == "ro" else o for o in opts]
        result.append(Mount(m.destination, m.type, m.source, tuple(opts)).to_oci())
    # Parents before children, as moby sorts user mounts by path depth.
    for m in sorted(sandbox.mounts, key=lambda m: _path_depth(m.destination)):
        if not m.destination.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {m.destination}")
        result.append(m.to_oci())
    return result


def _path_depth(path: str) -> int:
    return len([p for p in os.path.normpath(path).split("/") if p])


def _merge_tmpfs_options(options: Sequence[str]) -> tuple[str, ...]:
    """moby's MergeTmpfsOptions: the last of each key wins, flags deduplicated."""
    flags = {"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
             "private", "rprivate", "shared", "rshared", "slave", "rslave"}
    opposite = {"ro": "rw", "rw": "ro", "nosuid": "suid", "suid": "nosuid", "nodev": "dev",
                "dev": "nodev", "noexec": "exec", "exec": "noexec"}
    propagation = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
    out: list[str] = []
    for opt in options:
        if opt in flags:
            drop = {opt, opposite.get(opt)} | (propagation if opt in propagation else set())
            out = [o for o in out if o not in drop]
            out.append(opt)
            continue
        key = opt.split("=", 1)[0]
        out = [o for o in out if o.split("=", 1)[0] != key]
        out.append(opt)
    return tuple(out)


def _resources(sandbox: SandboxOptions) -> dict:
    r = sandbox.resources
    out: dict = {}
    if sandbox.privileged:
        out["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        rules = [dict(d) for d in _DEFAULT_DEVICE_RULES]
        for dev in sandbox.devices:
            rules.append({"allow": True, "type": dev.type, "major": dev.major, "minor": dev.minor,
                          "access": dev.access})
        rules.extend(parse_device_cgroup_rule(rule) for rule in sandbox.device_cgroup_rules)
        out["devices"] = rules

    memory: dict = {}
    if r.memory is not None:
        if r.memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        memory["limit"] = r.memory
        swap = r.memory_swap if r.memory_swap is not None else 2 * r.memory
        if swap != -1 and swap < r.memory:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                                  "see usage")
        memory["swap"] = swap
    elif r.memory_swap not in (None, 0, -1):
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, "
                              "see usage")
    if r.memory_reservation is not None:
        memory["reservation"] = r.memory_reservation
    if r.memory_swappiness is not None and r.memory_swappiness != -1:
        if not 0 <= r.memory_swappiness <= 100:
            raise InvalidArgument(f"Invalid value: {r.memory_swappiness}, valid memory swappiness "
                                  "range is 0-100")
        memory["swappiness"] = r.memory_swappiness
    if r.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        out["memory"] = memory

    cpu: dict = {}
    if r.cpus is not None:
        if r.cpu_quota or r.cpu_period:
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        if r.cpus < 0:
            raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs available")
        if r.cpus:
            cpu["period"] = CPU_PERIOD
            cpu["quota"] = int(round(r.cpus * 1e9)) * CPU_PERIOD // 1_000_000_000
    if r.cpu_period:
        cpu["period"] = r.cpu_period
    if r.cpu_quota:
        cpu["quota"] = r.cpu_quota
    if r.cpu_shares:
        cpu["shares"] = r.cpu_shares
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    if r.pids_limit is not None:
        out["pids"] = {"limit": r.pids_limit if r.pids_limit > 0 else -1}
    block_io: dict = {}
    if r.blkio_weight:
        block_io["weight"] = r.blkio_weight
    if r.blkio_weight_device:
        block_io["weightDevice"] = [{"major": d.major, "minor": d.minor, "weight": d.value}
                                    for d in r.blkio_weight_device]
    for key, limits in (("throttleReadBpsDevice", r.blkio_read_bps),
                        ("throttleWriteBpsDevice", r.blkio_write_bps),
                        ("throttleReadIOPSDevice", r.blkio_read_iops),
                        ("throttleWriteIOPSDevice", r.blkio_write_iops)):
        if limits:
            block_io[key] = [{"major": d.major, "minor": d.minor, "rate": d.value} for d in limits]
    if block_io:
        out["blockIO"] = block_io
    return out


def parse_device_cgroup_rule(rule: str) -> dict:
    """A --device-cgroup-rule ("c 1:3 rwm", "a *:* m") as an OCI device rule."""
    parts = rule.split()
    ok = len(parts) == 3 and parts[0] in ("a", "b", "c") and ":" in parts[1] \
        and parts[2] and set(parts[2]) <= set("rwm") and len(parts[2]) <= 3
    if ok:
        major, _, minor = parts[1].partition(":")
        ok = all(x == "*" or x.isdigit() for x in (major, minor))
    if not ok:
        raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
    return {"allow": True, "type": parts[0],
            "major": -1 if major == "*" else int(major),
            "minor": -1 if minor == "*" else int(minor),
            "access": parts[2]}


def _dedupe_devices(devices: list[dict]) -> list[dict]:
    by_path: dict[str, dict] = {}
    for d in devices:
        by_path[d["path"]] = d  # later (--device) entries win over host scan
    return list(by_path.values())


def _sysctls(sandbox: SandboxOptions, host: HostInfo) -> dict:
    out: dict = {}
    if sandbox.network == PRIVATE and not sandbox.uid_mappings:
        out.update({k: v for k, v in _NETNS_SYSCTLS.items() if k in host.sysctls})
    elif sandbox.network == PRIVATE and "net.ipv4.ip_unprivileged_port_start" in host.sysctls:
        out["net.ipv4.ip_unprivileged_port_start"] = "0"
    out.update(sandbox.sysctls)
    return out


def _seccomp(setting: str | Mapping, caps: Sequence[str], host: HostInfo) -> dict | None:
    if setting == "unconfined":
        return None
    if setting == "default":
        return seccomp_from_profile(load_default_seccomp_profile(), caps, host)
    if isinstance(setting, str):
        raise InvalidArgument(f"invalid seccomp profile: {setting!r}")
    return seccomp_from_profile(setting, caps, host)
