"""From Docker's Config and HostConfig to the OCI runtime config.json.

Pure translation, as moby's daemon/oci_linux.go does it: the container's
record says what the user asked for; berth.runtime.spec knows Docker's
defaults.  Files the container needs from the engine (hostname, hosts,
resolv.conf) are bind-mounted, as Docker does.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from berth.container.users import ResolvedUser
from berth.errors import InvalidArgument
from berth.runtime import spec as rs

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class NetworkPlacement:
    """Where the container's network namespace comes from."""
    mode: str                  # rs.PRIVATE, rs.HOST or a netns path to join


def container_env(config: Mapping, hostname: str) -> list[str]:
    """Docker's process environment: PATH, HOSTNAME, TERM, then Config.Env."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if config.get("Tty"):
        env["TERM"] = "xterm"
    for item in config.get("Env") or []:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return [f"{k}={v}" for k, v in env.items()]


DEFAULT_CGROUP_PARENT = "/berth"


def cgroups_path(host_config: Mapping, container_id: str) -> str:
    """The OCI cgroupsPath: HostConfig.CgroupParent (else berth's /berth) joined with
    the id, as moby's cgroupfs driver does; a relative parent is taken from the
    runtime's own cgroup."""
    return os.path.join(host_config.get("CgroupParent") or DEFAULT_CGROUP_PARENT, container_id)


def check_host_config(host_config: Mapping) -> None:
    """What create refuses in a HostConfig before anything is made (moby's
    validateHostConfig, and what berth cannot do)."""
    userns = host_config.get("UsernsMode") or ""
    if userns not in ("", "host"):
        raise InvalidArgument(f'invalid --userns mode "{userns}": berth has no user namespace remapping, '
                              f'only "host" is supported')
    for key in host_config.get("Annotations") or {}:
        if key == "":
            raise InvalidArgument("invalid Annotations: the empty string is not permitted as an annotation key")
    isolation = host_config.get("Isolation") or ""
    if isolation.lower() not in ("", "default"):
        raise InvalidArgument(f'Invalid isolation: "{isolation}" - linux only supports \'default\'')


def block_device(path: str) -> tuple[int, int]:
    """(major, minor) of the block device at `path`, for the blkio per-device limits."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"stat {path}: {(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"{path} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _block_limits(entries, field: str) -> tuple[rs.BlockDeviceLimit, ...]:
    """HostConfig's [{"Path", "Rate" or "Weight"}] with each path's device numbers."""
    out = []
    for entry in entries or ():
        major, minor = block_device(entry.get("Path") or "")
        value = entry.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"invalid {field.lower()} for device {entry.get('Path')}: {value!r}")
        out.append(rs.BlockDeviceLimit(major, minor, value))
    return tuple(out)


def resources(host_config: Mapping) -> rs.Resources:
    nano = host_config.get("NanoCpus") or 0
    return rs.Resources(
        memory=host_config.get("Memory") or None,
        memory_swap=host_config.get("MemorySwap") or None,
        memory_reservation=host_config.get("MemoryReservation") or None,
        memory_swappiness=host_config.get("MemorySwappiness"),
        oom_kill_disable=bool(host_config.get("OomKillDisable")),
        cpus=nano / 1e9 if nano else None,
        cpu_shares=host_config.get("CpuShares") or None,
        cpu_period=host_config.get("CpuPeriod") or None,
        cpu_quota=host_config.get("CpuQuota") or None,
        cpuset_cpus=host_config.get("CpusetCpus") or None,
        cpuset_mems=host_config.get("CpusetMems") or None,
        pids_limit=host_config.get("PidsLimit") or None,
        blkio_weight=host_config.get("BlkioWeight") or None,
        blkio_weight_device=_block_limits(host_config.get("BlkioWeightDevice"), "Weight"),
        blkio_read_bps=_block_limits(host_config.get("BlkioDeviceReadBps"), "Rate"),
        blkio_write_bps=_block_limits(host_config.get("BlkioDeviceWriteBps"), "Rate"),
        blkio_read_iops=_block_limits(host_config.get("BlkioDeviceReadIOps"), "Rate"),
        blkio_write_iops=_block_limits(host_config.get("BlkioDeviceWriteIOps"), "Rate"),
    )


def security(host_config: Mapping) -> tuple[bool, str | dict]:
    """(no_new_privileges, seccomp) from --security-opt."""
    no_new_privs = False
    seccomp: str | dict = "default"
    for opt in host_config.get("SecurityOpt") or []:
        key, sep, value = opt.partition("=" if "=" in opt else ":")
        if key == "no-new-privileges":
            no_new_privs = value.lower() in ("", "true", "1")
        elif key == "seccomp":
            seccomp = value  # "unconfined" or a profile already loaded into JSON by create
        elif key in ("apparmor", "label"):
            continue  # not on this kernel configuration; Docker ignores them likewise
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return no_new_privs, seccomp


def rlimits(host_config: Mapping) -> list[rs.Rlimit]:
    return [rs.Rlimit(u["Name"], u["Soft"], u["Hard"]) for u in host_config.get("Ulimits") or []]


def build(*, container_id: str, config: Mapping, host_config: Mapping, path: str, args: Sequence[str],
          user: ResolvedUser, mounts: Sequence[rs.Mount], network: NetworkPlacement,
          hostname: str, seccomp_profile: dict | None = None) -> dict:
    """The complete config.json for a container's init process."""
    no_new_privs, seccomp = security(host_config)
    if seccomp not in ("default", "unconfined"):
        seccomp = seccomp_profile or "default"
    process = rs.ProcessOptions(
        args=[path, *args],
        env=container_env(config, hostname),
        cwd=config.get("WorkingDir") or "/",
        user=rs.User(uid=user.uid, gid=user.gid, additional_gids=user.additional_gids),
        terminal=bool(config.get("Tty")),
        no_new_privileges=no_new_privs,
        rlimits=rlimits(host_config),
        oom_score_adj=host_config.get("OomScoreAdj") or 0,
    )
    tmpfs = [rs.Mount.tmpfs(dest, [o for o in opts.split(",") if o])
             for dest, opts in (host_config.get("Tmpfs") or {}).items()]
    sandbox = rs.SandboxOptions(
        rootfs="rootfs",
        readonly_rootfs=bool(host_config.get("ReadonlyRootfs")),
        hostname=hostname if network.mode != rs.HOST else "",
        domainname=config.get("Domainname") or "",
        network=network.mode,
        ipc=rs.HOST if host_config.get("IpcMode") == "host" else rs.PRIVATE,
        pid=rs.HOST if host_config.get("PidMode") == "host" else rs.PRIVATE,
        uts=rs.HOST if host_config.get("UTSMode") == "host" or network.mode == rs.HOST else rs.PRIVATE,
        mounts=tuple(mounts) + tuple(tmpfs),
        shm_size=host_config.get("ShmSize") or rs.DEFAULT_SHM_SIZE,
        privileged=bool(host_config.get("Privileged")),
        cap_add=tuple(host_config.get("CapAdd") or ()),
        cap_drop=tuple(host_config.get("CapDrop") or ()),
        seccomp=seccomp,
        sysctls=dict(host_config.get("Sysctls") or {}),
        devices=tuple(d for spec in host_config.get("Devices") or () for d in host_devices(spec)),
        device_cgroup_rules=tuple(host_config.get("DeviceCgroupRules") or ()),
        cgroupns={"host": rs.HOST, "private": rs.PRIVATE}.get(host_config.get("CgroupnsMode") or ""),
        resources=resources(host_config),
        cgroups_path=cgroups_path(host_config, container_id),
        annotations=dict(host_config.get("Annotations") or {}),
    )
    return rs.default_spec(process, sandbox, rs.HostInfo.probe())


def host_devices(spec: Mapping) -> list[rs.Device]:
    """HostConfig.Devices' entry as device nodes: one device, or every device
    under a directory, at the container's path (moby's devicesFromPath)."""
    host = spec.get("PathOnHost") or ""
    inside = spec.get("PathInContainer") or host
    access = spec.get("CgroupPermissions") or "rwm"
    if not access or any(c not in "rwm" for c in access):
        raise InvalidArgument(f"invalid device cgroup permissions {access!r} for {host}")
    try:
        found = rs.scan_devices(host) if os.path.isdir(host) else [rs.device_at(host)]
    except OSError as e:
        raise InvalidArgument(f'error gathering device information while adding custom device "{host}": '
                              f"{(e.strerror or str(e)).lower()}") from None
    return [replace(d, path=inside + d.path[len(host):], access=access) for d in found]


def command_of(config: Mapping) -> tuple[str, list[str]]:
    """Docker's Path and Args: the entrypoint followed by the command."""
    argv = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not argv:
        raise InvalidArgument("no command specified")
    return argv[0], argv[1:]


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) if not a or any(c in a for c in " \t\"'") else a for a in argv)
