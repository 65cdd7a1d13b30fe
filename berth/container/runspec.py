"""From Docker's Config and HostConfig to the OCI runtime config.json.

Pure translation, as moby's daemon/oci_linux.go does it: the container's
record says what the user asked for; berth.runtime.spec knows Docker's
defaults.  Files the container needs from the engine (hostname, hosts,
resolv.conf) are bind-mounted, as Docker does.
"""

from __future__ import annotations

import os
import shlex
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
        cgroups_path=f"/berth/{container_id}",
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
