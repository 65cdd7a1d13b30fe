"""`run` and `create` flags, turned into the Engine API's Config and HostConfig.

This is what the docker CLI does before it calls the daemon: the engine
receives the same JSON whether a request came from this CLI or the API.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re

from berth.units import parse_duration_ns, parse_size
from berth.errors import InvalidArgument


def add_flags(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("-a", "--attach", action="append", default=[], choices=["stdin", "stdout", "stderr", "STDIN", "STDOUT", "STDERR"],
      help="Attach to STDIN, STDOUT or STDERR")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)")
    a("--cap-add", action="append", default=[], help="Add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    a("--cidfile", help="Write the container ID to the file")
    a("--cpu-shares", "-c", type=int, help="CPU shares (relative weight)")
    a("--cpus", type=float, help="Number of CPUs")
    a("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    a("--detach-keys", help="Override the key sequence for detaching a container")
    a("--dns", action="append", default=[], help="Set custom DNS servers")
    a("--domainname", help="Container NIS domain name")
    a("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    a("-e", "--env", action="append", default=[], help="Set environment variables")
    a("--env-file", action="append", default=[], help="Read in a file of environment variables")
    a("--expose", action="append", default=[], help="Expose a port or a range of ports")
    a("--group-add", action="append", default=[], help="Add additional groups to join")
    a("--device", action="append", default=[], help="Add a host device to the container")
    a("--device-cgroup-rule", action="append", default=[], help="Add a rule to the cgroup allowed devices list")
    a("--dns-option", action="append", default=[], help="Set DNS options")
    a("--dns-search", action="append", default=[], help="Set custom DNS search domains")
    a("--label-file", action="append", default=[], help="Read in a line delimited file of labels")
    a("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000, or 0 to disable")
    a("--blkio-weight-device", action="append", default=[],
      help="Block IO weight (relative device weight) (DEVICE:WEIGHT)")
    a("--device-read-bps", action="append", default=[],
      help="Limit read rate (bytes per second) from a device (DEVICE:RATE, e.g. /dev/sda:1mb)")
    a("--device-read-iops", action="append", default=[],
      help="Limit read rate (IO per second) from a device (DEVICE:RATE)")
    a("--device-write-bps", action="append", default=[],
      help="Limit write rate (bytes per second) to a device (DEVICE:RATE, e.g. /dev/sda:1mb)")
    a("--device-write-iops", action="append", default=[],
      help="Limit write rate (IO per second) to a device (DEVICE:RATE)")
    a("--cgroup-parent", help="Optional parent cgroup for the container")
    a("--isolation", help="Container isolation technology (on Linux only \"default\")")
    a("--annotation", action="append", default=[],
      help="Add an annotation to the container (passed through to the OCI runtime)")
    a("--userns", help="User namespace to use (berth supports only \"host\")")
    a("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("--memory-swappiness", type=int, help="Tune container memory swappiness (0 to 100) (default -1)")
    a("--cgroupns", choices=["host", "private"], help="Cgroup namespace to use (host|private)")
    a("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    a("--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("--health-cmd", help="Command to run to check health")
    a("--health-interval", help="Time between running the check (ms|s|m|h) (default 0s)")
    a("--health-retries", type=int, help="Consecutive failures needed to report unhealthy")
    a("--health-start-interval", help="Time between running the check during the start period (ms|s|m|h) "
                                      "(default 0s)")
    a("--health-start-period", help="Start period for the container to initialize before starting "
                                    "health-retries countdown (ms|s|m|h) (default 0s)")
    a("--health-timeout", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    a("-h", "--hostname", help="Container host name")
    a("--init", action="store_true", help="Run an init inside the container (accepted; berth runs your command as PID 1)")
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("--ipc", help="IPC mode to use")
    a("-l", "--label", action="append", default=[], help="Set meta data on a container")
    a("--link", action="append", default=[], help="Add link to another container")
    a("--log-driver", help="Logging driver for the container")
    a("--log-opt", action="append", default=[], help="Log driver options")
    a("-m", "--memory", help="Memory limit")
    a("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", help="Memory soft limit")
    a("--mount", action="append", default=[], help="Attach a filesystem mount to the container")
    a("--name", help="Assign a name to the container")
    a("--network", "--net", help="Connect a container to a network")
    a("--network-alias", action="append", default=[], help="Add network-scoped alias for the container")
    a("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    a("--oom-kill-disable", action="store_true", help="Disable OOM Killer")
    a("--oom-score-adj", type=int, help="Tune host's OOM preferences (-1000 to 1000)")
    a("--pid", help="PID namespace to use")
    a("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
    a("--platform", help="Set platform if server is multi-platform capable")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("-p", "--publish", action="append", default=[], help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--pull", choices=["always", "missing", "never"], default="missing", help="Pull image before running")
    a("-q", "--quiet", action="store_true", help="Suppress the pull output")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--restart", default="no", help="Restart policy to apply when a container exits")
    a("--rm", action="store_true", help="Automatically remove the container when it exits")
    a("--runtime", help="Runtime to use for this container (berth, runc, crun)")
    a("--security-opt", action="append", default=[], help="Security Options")
    a("--shm-size", help="Size of /dev/shm")
    a("--sig-proxy", default="true", help="Proxy received signals to the process")
    a("--stop-signal", help="Signal to stop the container")
    a("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    a("--sysctl", action="append", default=[], help="Sysctl options")
    a("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("--ulimit", action="append", default=[], help="Ulimit options")
    a("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("--uts", help="UTS namespace to use")
    a("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    a("--volume-driver", help="Optional volume driver for the container")
    a("--volumes-from", action="append", default=[], help="Mount volumes from the specified container(s)")
    a("-w", "--workdir", help="Working directory inside the container")
    a("image", metavar="IMAGE")
    a("command", nargs=argparse.REMAINDER, metavar="[COMMAND] [ARG...]")


def _env_file(path: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
    out = []
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {line}")
        if re.search(r"\s", key):
            raise InvalidArgument(f"variable '{key}' contains whitespaces")
        out.append(line if sep else _from_environ(key))
    return [e for e in out if e is not None]


def _from_environ(key: str) -> str | None:
    """`-e NAME` without a value takes NAME from berth's own environment."""
    value = os.environ.get(key)
    return None if value is None else f"{key}={value}"


def _label_files(paths: list[str]) -> list[str]:
    """--label-file: a label per line, as --env-file reads its lines."""
    out = []
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise InvalidArgument(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
        out += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return out


def _device(spec: str) -> dict:
    """--device HOST[:CONTAINER][:PERMISSIONS], as the docker CLI parses it."""
    parts = spec.split(":")
    permissions = "rwm"
    if len(parts) > 1 and _device_mode(parts[-1]):
        permissions = parts.pop()
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f'invalid argument "{spec}" for "--device" flag: bad format for path: {spec}')
    host = parts[0]
    return {"PathOnHost": host, "PathInContainer": parts[1] if len(parts) == 2 else host,
            "CgroupPermissions": permissions}


def _device_mode(mode: str) -> bool:
    return bool(mode) and len(mode) <= 3 and all(c in "rwm" for c in mode) and len(set(mode)) == len(mode)


_BPS_RATE_HELP = ("The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. "
                  "Unit is optional and can be kb, mb, or gb")
_IOPS_RATE_HELP = "The correct format is <device-path>:<number>. Number must be a positive integer"


def _device_value(flag: str, spec: str) -> tuple[str, str]:
    """DEVICE:VALUE, as docker/cli's opts validators split it (the path must be under /dev/)."""
    path, sep, value = spec.partition(":")
    if not sep or not path:
        raise InvalidArgument(f'invalid argument "{spec}" for "--{flag}" flag: bad format: {spec}')
    if not path.startswith("/dev/"):
        raise InvalidArgument(f'invalid argument "{spec}" for "--{flag}" flag: bad format for device path: {spec}')
    return path, value


def _go_uint(text: str, bits: int) -> int | None:
    """strconv.ParseUint(text, 10, bits), None where Go reports an error."""
    if not re.fullmatch(r"[0-9]+", text, re.ASCII) or int(text) >= 1 << bits:
        return None
    return int(text)


def _throttle_devices(flag: str, items: list[str]) -> list[dict]:
    """--device-{read,write}-{bps,iops} DEVICE:RATE as HostConfig's [{"Path", "Rate"}]:
    bps rates take go-units' sizes (1mb is 1048576), iops rates plain integers."""
    out = []
    for spec in items:
        path, value = _device_value(flag, spec)
        if flag.endswith("bps"):
            try:
                rate = parse_size(value)
            except InvalidArgument:
                rate = -1
            help_ = _BPS_RATE_HELP
        else:
            rate = _go_uint(value, 64)
            help_ = _IOPS_RATE_HELP
        if rate is None or rate < 0:
            raise InvalidArgument(f'invalid argument "{spec}" for "--{flag}" flag: '
                                  f"invalid rate for device: {spec}. {help_}")
        out.append({"Path": path, "Rate": rate})
    return out


def _weight_devices(items: list[str]) -> list[dict]:
    """--blkio-weight-device DEVICE:WEIGHT as HostConfig's [{"Path", "Weight"}] (10-1000, or 0)."""
    out = []
    for spec in items:
        path, value = _device_value("blkio-weight-device", spec)
        weight = _go_uint(value, 16)
        if weight is None or (weight and not 10 <= weight <= 1000):
            raise InvalidArgument(f'invalid argument "{spec}" for "--blkio-weight-device" flag: '
                                  f"invalid weight for device: {spec}")
        out.append({"Path": path, "Weight": weight})
    return out


def _labels(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _restart_policy(text: str) -> dict:
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise InvalidArgument(f"invalid restart policy format: {text}")
    if count and name != "on-failure":
        raise InvalidArgument("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name or "no", "MaximumRetryCount": retries}


def parse_ulimits(items: list[str]) -> list[dict]:
    out = []
    for item in items:
        name, sep, values = item.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid ulimit argument: {item}")
        soft, _, hard = values.partition(":")
        try:
            out.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        except ValueError:
            raise InvalidArgument(f"invalid ulimit argument: {item}") from None
    return out


def _tmpfs(items: list[str]) -> dict:
    if not items:
        return {}
    from berth.engine.volumes import parse_tmpfs_spec
    return dict(parse_tmpfs_spec(item) for item in items)


def _volumes(items: list[str]) -> tuple[list[str], dict]:
    """-v values: binds for HostConfig.Binds, bare paths for Config.Volumes."""
    binds, anonymous = [], {}
    if items:
        from berth.engine.volumes import check_volume_flag
    for item in items:
        value, is_bind = check_volume_flag(item)
        if is_bind:
            binds.append(value)
        else:
            anonymous[value] = {}
    return binds, anonymous


def _mounts(items: list[str]) -> list[dict]:
    if not items:
        return []
    from berth.engine.volumes import parse_mount_spec
    out = []
    for item in items:
        try:
            out.append(parse_mount_spec(item).to_api())
        except InvalidArgument as e:
            raise InvalidArgument(f'invalid argument "{item}" for "--mount" flag: {e}') from None
    return out


def _healthcheck(args) -> dict | None:
    """The docker CLI's HealthConfig from --health-* and --no-healthcheck:
    only the fields given (zero means "inherit the image's")."""
    def duration(flag: str, text: str | None) -> int:
        if not text:
            return 0
        try:
            value = parse_duration_ns(text)
        except InvalidArgument as e:
            raise InvalidArgument(f'invalid argument "{text}" for "--{flag}" flag: {e}') from None
        if value < 0:
            raise InvalidArgument(f"--{flag} cannot be negative")
        return value

    fields = {"Interval": duration("health-interval", args.health_interval),
              "Timeout": duration("health-timeout", args.health_timeout),
              "StartPeriod": duration("health-start-period", args.health_start_period),
              "StartInterval": duration("health-start-interval", args.health_start_interval),
              "Retries": args.health_retries or 0}
    given = bool(args.health_cmd) or any(fields.values())
    if args.no_healthcheck:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    if fields["Retries"] < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    out = {"Test": ["CMD-SHELL", args.health_cmd]} if args.health_cmd else {}
    out.update((k, v) for k, v in fields.items() if v)
    return out


def _ports(items: list[str]) -> tuple[dict, dict]:
    """-p forms, as Docker's nat.ParsePortSpec: [ip:][hostPort:]containerPort[/proto],
    with ranges; a host range for one container port is kept whole, for the
    engine to pick a free port of it."""
    exposed, bindings = {}, {}
    for item in items:
        spec, sep, proto = item.rpartition("/")
        if not sep:
            spec, proto = item, "tcp"
        if proto.lower() not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        proto = proto.lower()
        parts = spec.split(":")
        ctr = parts[-1]
        host = parts[-2] if len(parts) > 1 else ""
        ip = ":".join(parts[:-2])
        if ip:
            try:
                ip = str(ipaddress.ip_address(ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip))
            except ValueError:
                raise InvalidArgument(f"invalid IP address: {ip}") from None
        if not ctr:
            raise InvalidArgument(f"no port specified: {spec}<empty>")
        ctr_ports = _port_range(ctr, "containerPort")
        host_ports = [str(p) for p in _port_range(host, "hostPort")] if host else [""] * len(ctr_ports)
        if len(host_ports) != len(ctr_ports):
            if len(ctr_ports) > 1:
                raise InvalidArgument(f"invalid ranges specified for container and host Ports: {ctr} and {host}")
            host_ports = [host]
        for cp, hp in zip(ctr_ports, host_ports):
            key = f"{cp}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hp})
    return exposed, bindings


def _port_range(text: str, kind: str) -> list[int]:
    """A port or a range "first-last"; `kind` names it in Docker's error messages."""
    start, _, end = text.partition("-")
    try:
        first, last = int(start), int(end or start)
    except ValueError:
        raise InvalidArgument(f"invalid {kind}: {text}") from None
    if not (0 < first <= last <= 65535):
        raise InvalidArgument(f"invalid {kind}: {text}")
    return list(range(first, last + 1))


def to_create_body(args) -> tuple[dict, dict, str | None]:
    """(Config, HostConfig, name) for POST /containers/create."""
    env = []
    for f in args.env_file:
        env += _env_file(f)
    for item in args.env:
        env.append(item if "=" in item else _from_environ(item))
    env = [e for e in env if e is not None]
    attach = {a.lower() for a in args.attach}
    exposed, bindings = _ports(args.publish)
    for item in args.expose:
        port, _, proto = item.partition("/")
        for p in _port_range(port, "range for --expose"):
            exposed[f"{p}/{proto or 'tcp'}"] = {}
    binds, anonymous_volumes = _volumes(args.volume)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    config = {
        "Hostname": args.hostname or "",
        "Domainname": args.domainname or "",
        "User": args.user or "",
        "AttachStdin": "stdin" in attach or (args.interactive and not args.detach),
        "AttachStdout": not args.detach and (not attach or "stdout" in attach),
        "AttachStderr": not args.detach and (not attach or "stderr" in attach),
        "ExposedPorts": exposed or None,
        "Tty": args.tty,
        "OpenStdin": args.interactive,
        "StdinOnce": args.interactive and not args.detach,
        "Env": env or None,
        "Cmd": command or None,
        "Image": args.image,
        "Volumes": anonymous_volumes or None,
        "WorkingDir": args.workdir or "",
        "Entrypoint": ([args.entrypoint] if args.entrypoint else [""]) if args.entrypoint is not None else None,
        "OnBuild": None,
        "Labels": _labels(_label_files(args.label_file) + args.label),
    }
    if args.stop_signal:
        config["StopSignal"] = args.stop_signal
    if args.stop_timeout is not None:
        config["StopTimeout"] = args.stop_timeout
    healthcheck = _healthcheck(args)
    if healthcheck is not None:
        config["Healthcheck"] = healthcheck
    security_opt = []
    for opt in args.security_opt:
        key, sep, value = opt.partition("=")
        if key == "seccomp" and value not in ("unconfined", "") and not value.lstrip().startswith("{"):
            try:
                with open(value) as f:
                    value = json.dumps(json.load(f))
            except (OSError, ValueError) as e:
                raise InvalidArgument(f"opening seccomp profile ({value}) failed: {e}") from None
            opt = f"seccomp={value}"
        security_opt.append(opt)
    host_config = {
        "Binds": binds or None,
        "ContainerIDFile": args.cidfile or "",
        "LogConfig": {"Type": args.log_driver or "json-file",
                      "Config": dict(o.partition("=")[::2] for o in args.log_opt)},
        "NetworkMode": args.network or "default",
        "PortBindings": bindings,
        "RestartPolicy": _restart_policy(args.restart),
        "AutoRemove": args.rm,
        "Mounts": _mounts(args.mount) or None,
        "CapAdd": args.cap_add or None,
        "CapDrop": args.cap_drop or None,
        "Dns": args.dns,
        "ExtraHosts": args.add_host or None,
        "GroupAdd": args.group_add or None,
        "IpcMode": args.ipc or "private",
        "PidMode": args.pid or "",
        "UTSMode": args.uts or "",
        "Privileged": args.privileged,
        "PublishAllPorts": args.publish_all,
        "ReadonlyRootfs": args.read_only,
        "SecurityOpt": security_opt or None,
        "Tmpfs": _tmpfs(args.tmpfs) or None,
        "Links": args.link or None,
        "VolumesFrom": args.volumes_from or None,
        "VolumeDriver": args.volume_driver or "",
        "Runtime": args.runtime or "berth",
        "ShmSize": parse_size(args.shm_size) if args.shm_size else 0,
        "Memory": parse_size(args.memory) if args.memory else 0,
        "MemoryReservation": parse_size(args.memory_reservation) if args.memory_reservation else 0,
        "MemorySwap": (-1 if args.memory_swap == "-1" else parse_size(args.memory_swap)) if args.memory_swap else 0,
        "NanoCpus": int(args.cpus * 1e9) if args.cpus else 0,
        "CpuShares": args.cpu_shares or 0,
        "CpuPeriod": args.cpu_period or 0,
        "CpuQuota": args.cpu_quota or 0,
        "CpusetCpus": args.cpuset_cpus or "",
        "PidsLimit": args.pids_limit,
        "OomKillDisable": args.oom_kill_disable,
        "OomScoreAdj": args.oom_score_adj or 0,
        "Sysctls": dict(s.partition("=")[::2] for s in args.sysctl) or None,
        "Ulimits": parse_ulimits(args.ulimit) or None,
        "Init": args.init or None,
        "Devices": [_device(d) for d in args.device] or None,
        "DeviceCgroupRules": args.device_cgroup_rule or None,
        "DnsOptions": args.dns_option or None,
        "DnsSearch": args.dns_search or None,
        "BlkioWeight": args.blkio_weight or 0,
        "BlkioWeightDevice": _weight_devices(args.blkio_weight_device),
        "BlkioDeviceReadBps": _throttle_devices("device-read-bps", args.device_read_bps),
        "BlkioDeviceWriteBps": _throttle_devices("device-write-bps", args.device_write_bps),
        "BlkioDeviceReadIOps": _throttle_devices("device-read-iops", args.device_read_iops),
        "BlkioDeviceWriteIOps": _throttle_devices("device-write-iops", args.device_write_iops),
        "CgroupParent": args.cgroup_parent or "",
        "Isolation": args.isolation or "",
        "UsernsMode": args.userns or "",
        "CpusetMems": args.cpuset_mems or "",
        "MemorySwappiness": args.memory_swappiness,
        "CgroupnsMode": args.cgroupns or "",
    }
    if args.annotation:
        host_config["Annotations"] = _labels(args.annotation)
    if args.network_alias:
        host_config["NetworkAliases"] = args.network_alias
    if args.ip:
        try:
            ipaddress.IPv4Address(args.ip)
        except ValueError:
            raise InvalidArgument(f'invalid argument "{args.ip}" for "--ip" flag: invalid IPv4 address') from None
        host_config["NetworkIPv4Address"] = args.ip
    if args.mac_address:
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", args.mac_address):
            raise InvalidArgument(f"{args.mac_address} is not a valid mac address")
        config["MacAddress"] = args.mac_address.lower()
    return config, host_config, args.name
