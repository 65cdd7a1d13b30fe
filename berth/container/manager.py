"""Containers' lives: create, start under a supervisor, attach, stop, remove.

Requests arrive in Docker's own shapes (Config, HostConfig as the Engine
API's create body), so the CLI, the API server and the builder hand over
the same thing.  The engine exposes this manager as `engine.containers`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal as signals
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from berth.container import protocol as proto
from berth.container import runspec
from berth.container.events import emit_container_event
from berth.container.cleanup import is_mounted, release_resources, remove_container, unmount
from berth.container.mounting import mount_rootfs
from berth.container.paths import ContainerPaths
from berth.container.supervisor import command as supervisor_command
from berth.container.record import ZERO_TIME, Container, initial_state, new_id, random_name
from berth.container.sandbox import LocalSandboxes, Placement, SandboxProvider
from berth.container.runtimes import runtime_for, validate as validate_runtime
from berth.container.states import SUPERVISED, Event, Status
from berth.container.store import ContainerStore, validate_name
from berth.container.users import resolve_user
from berth.container.rootfs_files import make_dirs
from berth.errors import (BerthError, CommandNotFound, Conflict, InvalidArgument, NotExecutable,
                          NotFound, Unavailable)
from berth.image import config as cfgmod
from berth.image.config import parse_time
from berth.image.store import ImageStore
from berth.layer.snapshots import LayerCache
from berth.runtime import spec as rs
from berth.runtime.interface import single_threaded
from berth.store.state import State
from berth.lazy import lazy_import
from berth.units import human_duration

# Volumes are the biggest module a start could need; most containers have none.
vol = lazy_import("berth.container.volumes")

DEFAULT_STOP_TIMEOUT = 10
START_TIMEOUT = 120
_ERRORS = {"CommandNotFound": CommandNotFound, "NotExecutable": NotExecutable, "NotFound": NotFound,
           "Conflict": Conflict, "InvalidArgument": InvalidArgument, "Unavailable": Unavailable}


@dataclass
class ContainerSummary:
    """One container as `ps` and GET /containers/json show it."""
    id: str
    names: list[str]
    image: str
    image_id: str
    command: str
    created: float
    status: str          # Docker's human status: "Up 3 minutes", "Exited (0) 2 seconds ago"
    state: str
    ports: list[dict] = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    size_rw: int | None = None
    size_root_fs: int | None = None
    mounts: list[dict] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)


def merge_image_config(user: dict, image: dict) -> dict:
    """moby's merge(): what the image provides where the user gave nothing."""
    cfg = dict(user)
    if not cfg.get("User"):
        cfg["User"] = image.get("User", "")
    ports = dict(image.get("ExposedPorts") or {})
    ports.update(cfg.get("ExposedPorts") or {})
    cfg["ExposedPorts"] = ports or None
    user_env = list(cfg.get("Env") or [])
    keys = {e.partition("=")[0] for e in user_env}
    cfg["Env"] = user_env + [e for e in image.get("Env") or [] if e.partition("=")[0] not in keys] or None
    labels = dict(image.get("Labels") or {})
    labels.update(cfg.get("Labels") or {})
    cfg["Labels"] = labels
    if cfg.get("Entrypoint") == [""]:
        cfg["Entrypoint"] = []  # --entrypoint "": reset, and not inherited either
    if not cfg.get("Entrypoint"):
        if not cfg.get("Cmd"):
            cfg["Cmd"] = image.get("Cmd")
        if cfg.get("Entrypoint") is None:
            cfg["Entrypoint"] = image.get("Entrypoint")
    if not cfg.get("WorkingDir"):
        cfg["WorkingDir"] = image.get("WorkingDir", "")
    volumes = dict(image.get("Volumes") or {})
    volumes.update(cfg.get("Volumes") or {})
    cfg["Volumes"] = volumes or None
    if not cfg.get("StopSignal") and image.get("StopSignal"):
        cfg["StopSignal"] = image["StopSignal"]
    if cfg.get("Healthcheck") or image.get("Healthcheck"):
        from berth.container.health import merge as merge_healthcheck  # field by field, as moby
        cfg["Healthcheck"] = merge_healthcheck(cfg.get("Healthcheck"), image.get("Healthcheck"))
    if image.get("OnBuild"):
        cfg.setdefault("OnBuild", image["OnBuild"])
    return cfg


def _signal_number(sig) -> int:
    if isinstance(sig, int):
        return sig
    text = str(sig).upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(getattr(signals, text))
    except AttributeError:
        raise InvalidArgument(f"Invalid signal: {sig}") from None


class AttachConnection:
    """A client of a container's supervisor (see berth.container.protocol)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._demux = proto.Demuxer()

    def send_stdin(self, data: bytes) -> None:
        self.sock.sendall(proto.frame(proto.STDIN, data))

    def close_stdin(self) -> None:
        try:
            self.sock.sendall(proto.frame(proto.STDIN_EOF, b""))
        except OSError:
            pass

    def resize(self, rows: int, cols: int) -> None:
        try:
            self.sock.sendall(proto.resize(rows, cols))
        except OSError:
            pass

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(kind, payload) until the supervisor closes the connection."""
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                return
            if not data:
                return
            yield from self._demux.feed(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class ContainerManager:
    def __init__(self, state: State, images: ImageStore, sandboxes: SandboxProvider | None = None):
        self.state = state
        self.images = images
        self.store = ContainerStore(state.db)
        self.layers = LayerCache(state.root)
        self.sandboxes = sandboxes or LocalSandboxes(self.get)

    def event(self, c: Container, action: str, **extra) -> None:
        emit_container_event(self.state.events, c, action, **extra)

    def paths(self, container_id: str) -> ContainerPaths:
        return ContainerPaths(self.state.root, container_id)

    def runtime(self, c: Container):
        return runtime_for(c.host_config.get("Runtime"), self.paths(c.id).runtime_root)

    # -- lookups ----------------------------------------------------------------

    def get(self, ref: str) -> Container:
        return self.reconcile(self.store.resolve(ref))

    def using_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.running) for c in map(self.reconcile, self.store.using_image(image_id))]

    def reconcile(self, c: Container) -> Container:
        """Notice a supervisor that died (SIGKILL, OOM, reboot) and record the exit."""
        if c.status not in SUPERVISED or self._supervised(c):
            return c
        release_resources(self.state, c, self.runtime(c))
        try:
            return self.store.transition(c.id, Event.DIE, ExitCode=137, Pid=0, FinishedAt=_now(),
                                         Error="container supervisor exited unexpectedly")
        except Conflict:
            return self.store.get(c.id)

    def _supervised(self, c: Container) -> bool:
        try:
            fd = os.open(self.paths(c.id).lock, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    # -- create -----------------------------------------------------------------

    def create(self, config: dict, host_config: dict | None = None, name: str | None = None) -> Container:
        host_config = dict(host_config or {})
        image_name = config.get("Image") or ""
        if not image_name:
            raise InvalidArgument("No image specified")
        image = self.images.resolve(image_name)
        image_cfg = self.images.config(image)
        cfg = merge_image_config(config, image_cfg.get("config") or {})
        cfg["Image"] = image_name
        container_id = new_id()
        cfg["Hostname"] = cfg.get("Hostname") or container_id[:12]
        path, args = runspec.command_of(cfg)
        host_config["Runtime"] = validate_runtime(host_config.get("Runtime"))
        runspec.check_host_config(host_config)
        policy = host_config.get("RestartPolicy") or {}
        if policy.get("Name") not in (None, "", "no") and host_config.get("AutoRemove"):
            raise InvalidArgument("Conflicting options: --restart and --rm")
        host_config.setdefault("NetworkMode", "default")
        host_config.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        paths = self.paths(container_id)
        spec = {"Config": cfg, "HostConfig": host_config, "Path": path, "Args": args,
                "ImageName": image_name, "Driver": "overlay", "Platform": "linux",
                "ResolvConfPath": str(paths.resolv_conf), "HostnamePath": str(paths.hostname),
                "HostsPath": str(paths.hosts), "LogPath": str(paths.log), "Mounts": []}
        if name:
            name = validate_name(name)
        for attempt in range(10):
            c = Container(id=container_id, name=name or random_name(attempt), image_id=image.id,
                          created=time.time(), status=Status.CREATED, spec=spec, state=initial_state())
            paths.dir.mkdir(parents=True, exist_ok=True)
            try:
                self.store.add(c)
                break
            except Conflict:
                if name:
                    raise
        else:
            raise Conflict("could not generate a unique container name")
        try:
            # Volumes are planned once the row exists: volume users reference it.
            records = [p.to_record() for p in vol.plan_mounts(
                self.state, vol.specs_from_host_config(host_config), cfg.get("Volumes") or {}, c.id,
                tmpfs=host_config.get("Tmpfs") or {}, volume_driver=host_config.get("VolumeDriver") or "",
                volumes_from=self._volumes_from(host_config.get("VolumesFrom") or []))
            ] if _wants_volumes(host_config, cfg) else []
        except BaseException:
            self.store.delete(c.id)
            shutil.rmtree(paths.dir, ignore_errors=True)
            raise
        c.spec["MountPoints"] = records
        c.spec["Mounts"] = [vol.MountPoint.from_record(r).inspect() for r in records] if records else []
        self.store.update_spec(c.id, c.spec)
        self.event(c, "create")
        return c

    # -- start ------------------------------------------------------------------

    def start(self, ref: str, *, attach_first: bool = False) -> Container:
        """Start the container under a new supervisor.

        With attach_first the supervisor waits for the first attach client
        before starting the process (so `run` sees all output); the caller
        then learns of start failures through that connection.
        """
        c = self.get(ref)
        if c.status in (Status.RUNNING, Status.RESTARTING):
            return c
        if c.status == Status.PAUSED:
            raise Conflict("cannot start a paused container, try unpause instead")
        if c.status in (Status.REMOVING, Status.DEAD):
            raise Conflict(f"container {c.short_id} is marked for removal and cannot be started")
        self.store.update_state(c.id, ManuallyStopped=False)
        paths = self.paths(c.id)
        try:
            self._prepare(c, paths)
            line = self._spawn_supervisor(c, paths, attach_first)
        except BaseException:
            release_resources(self.state, c, self.runtime(c))
            if c.host_config.get("AutoRemove"):
                # As moby: a --rm container whose start failed is removed too.
                try:
                    self.remove(c.id, force=True, volumes=True)
                except BerthError:
                    pass
            raise
        if line.startswith("failed "):
            kind, _, message = line[7:].partition(" ")
            raise _ERRORS.get(kind, BerthError)(message)
        return self.store.get(c.id)

    def _volumes_from(self, entries: list[str]) -> list[tuple[list, str]]:
        """HostConfig.VolumesFrom (`CONTAINER[:MODE]`): each container's mount points, and the mode."""
        out = []
        for entry in entries:
            ref, _, mode = entry.partition(":")
            source = self.get(ref)
            out.append(([vol.MountPoint.from_record(r) for r in source.spec.get("MountPoints") or []], mode))
        return out

    def image_lowers(self, c: Container) -> list[Path]:
        """The unpacked layers of the container's image, bottom first (any
        not unpacked yet are unpacked now)."""
        layers = self.images.layers(self.images.get(c.image_id))
        chains = cfgmod.chain_ids([layer.diff_id for layer in layers])
        return self.layers.ensure([(chain, (lambda d=layer.digest: self.state.blobs.open(d)))
                                   for chain, layer in zip(chains, layers)])

    def rootfs_mount(self, c: Container):
        """The overlay mount that is the container's root filesystem (a
        description: mounting it is the caller's)."""
        paths = self.paths(c.id)
        return self.layers.rootfs_mount(self.image_lowers(c), paths.upper, paths.work)

    def mount_rootfs(self, c: Container) -> bool:
        """Mount the container's root filesystem unless it is; whether this call mounted it."""
        paths = self.paths(c.id)
        if is_mounted(paths.rootfs):
            return False
        mount = self.rootfs_mount(c)
        paths.rootfs.mkdir(parents=True, exist_ok=True)
        mount_rootfs(mount, paths.rootfs)
        return True

    def _prepare(self, c: Container, paths: ContainerPaths) -> None:
        self.mount_rootfs(c)
        cfg, hc = c.config, c.host_config
        user = resolve_user(paths.rootfs, cfg.get("User") or "", hc.get("GroupAdd") or [])
        if cfg.get("WorkingDir"):
            make_dirs(paths.rootfs, cfg["WorkingDir"])
        placement = self.sandboxes.prepare(c)
        if placement.release_hook != c.spec.get("ReleaseHook"):
            c.spec["ReleaseHook"] = placement.release_hook
            self.store.update_spec(c.id, c.spec)
        self._write_etc_files(c, paths, placement)
        mounts = self._mounts(c, paths)
        network = runspec.NetworkPlacement(placement.netns)
        seccomp_profile = None
        for opt in hc.get("SecurityOpt") or []:
            if opt.startswith("seccomp=") and opt[8:] != "unconfined":
                seccomp_profile = json.loads(opt[8:]) if opt[8:].lstrip().startswith("{") else None
        if placement.env:  # link variables come first; the user's own override them
            cfg = dict(cfg, Env=list(placement.env) + list(cfg.get("Env") or []))
        spec = runspec.build(container_id=c.id, config=cfg, host_config=hc, path=c.spec["Path"],
                             args=c.spec["Args"], user=user, mounts=mounts, network=network,
                             hostname=cfg["Hostname"], seccomp_profile=seccomp_profile)
        paths.bundle.mkdir(parents=True, exist_ok=True)
        tmp = paths.bundle / "config.json.tmp"
        tmp.write_text(json.dumps(spec))
        os.replace(tmp, paths.bundle / "config.json")

    def _write_etc_files(self, c: Container, paths: ContainerPaths, placement: Placement) -> None:
        hostname = c.config["Hostname"]
        paths.hostname.write_text(hostname + "\n")
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
                 "ff02::2\tip6-allrouters"]
        for address, names in placement.hosts:
            lines.append(f"{address}\t{names}")
        for extra in c.host_config.get("ExtraHosts") or []:
            host, _, ip = extra.partition(":")
            if ip == "host-gateway":
                if placement.host_gateway is None:
                    raise InvalidArgument("host-gateway is not available without berth's networks")
                ip = placement.host_gateway
            lines.append(f"{ip}\t{host}")
        paths.hosts.write_text("\n".join(lines) + "\n")
        try:
            resolv = placement.resolv_conf or Path("/etc/resolv.conf").read_text()
        except OSError:
            resolv = ""
        dns = c.host_config.get("Dns") or []
        if dns and placement.resolv_conf is None:  # a provider's resolv.conf already honours --dns
            resolv = "".join(f"nameserver {d}\n" for d in dns)
        paths.resolv_conf.write_text(resolv_with(resolv, c.host_config.get("DnsSearch") or [],
                                                 c.host_config.get("DnsOptions") or []))

    def _mounts(self, c: Container, paths: ContainerPaths) -> list[rs.Mount]:
        mounts = [rs.Mount.bind(str(paths.resolv_conf), "/etc/resolv.conf", recursive=False),
                  rs.Mount.bind(str(paths.hostname), "/etc/hostname", recursive=False),
                  rs.Mount.bind(str(paths.hosts), "/etc/hosts", recursive=False)]
        points = [vol.MountPoint.from_record(r) for r in c.spec.get("MountPoints") or []]
        if not points:
            return mounts
        mounts += [r.mount for r in vol.activate_mounts(self.state, points, c.id)]
        if c.state.get("StartedAt", ZERO_TIME) == ZERO_TIME:
            # Docker copies image content into new volumes at create; berth's
            # root filesystem is first mounted here, so the first start does it.
            vol.populate_volumes(self.state, points, paths.rootfs)
        return mounts

    def _spawn_supervisor(self, c: Container, paths: ContainerPaths, attach_first: bool) -> str:
        from berth.container import supervisor

        read_fd, write_fd = os.pipe()
        try:
            # The supervisor's parent exits at once: waiting for it is short.
            if single_threaded():
                # A fork of this process has berth loaded already: no
                # interpreter start, no imports, on every start's path.
                self.state.db.close()   # reopened on next use; none may cross a fork
                pid = supervisor.fork_supervisor(self.state.root, c.id, write_fd, attach_first)
                os.close(write_fd)
                write_fd = -1
                os.waitpid(pid, 0)
            elif (server := getattr(self, "fork_server", None)) is not None and server.spawn(
                    self.state.root, c.id, write_fd, attach_first):
                # A multi-threaded caller (the daemon) has its fork server
                # (berth.container.forkserver) fork the supervisor instead.
                os.close(write_fd)
                write_fd = -1
            else:
                cmd = supervisor_command(self.state.root, c.id, write_fd, attach_first)
                proc = subprocess.Popen(cmd, pass_fds=(write_fd,), start_new_session=True,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, cwd="/")
                os.close(write_fd)
                write_fd = -1
                proc.wait()
            with os.fdopen(read_fd, "rb", closefd=True) as r:
                read_fd = -1
                line = r.readline().decode().strip()
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
        if not line:
            raise BerthError(f"container supervisor failed to start; see {paths.supervisor_log}")
        return line

    # -- attach, wait -------------------------------------------------------------

    def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, rows: int = 0,
               cols: int = 0) -> AttachConnection:
        c = self.get(ref)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.paths(c.id).attach_socket))
        except OSError:
            sock.close()
            raise Conflict("You cannot attach to a stopped container, start it first") from None
        sock.sendall(proto.hello(stdin=stdin, stdout=stdout, stderr=stderr, rows=rows, cols=cols))
        if stdin or stdout or stderr:
            self.event(c, "attach")
        return AttachConnection(sock)

    def wait(self, ref: str, condition: str = "not-running") -> int:
        """Block until the container stops; its exit code (Docker's `wait`)."""
        c = self.get(ref)
        if c.status in SUPERVISED or (condition == "next-exit"):
            self._wait_exit(c, None)
        if condition == "removed":
            while self.store.find(c.id) is not None:
                time.sleep(0.05)
            return c.state.get("ExitCode", 0)
        return self.get(c.id).state.get("ExitCode", 0)

    def _wait_exit(self, c: Container, timeout: float | None) -> bool:
        """True once the container's process has exited (or the supervisor is gone)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            conn = self.attach(c.id, stdin=False, stdout=False, stderr=False)
        except Conflict:
            return True
        try:
            if deadline is not None:
                conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
            for kind, _ in conn.frames():
                if kind == proto.EXIT:
                    return True
            return True
        except TimeoutError:
            return False
        finally:
            conn.close()

    def _kill_until_gone(self, c: Container, timeout: float) -> Container:
        """SIGKILL the container until its supervisor is done with it.

        A restart policy may start a new process after a kill, if the
        supervisor decided to restart before ManuallyStopped was set: each
        round kills again whatever runs then."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.runtime(c).kill(c.id, signals.SIGKILL, all=True)
            except (Conflict, NotFound):
                pass    # between two runs: nothing to kill this round
            if c.status == Status.PAUSED:
                try:
                    self.runtime(c).resume(c.id)
                except (Conflict, NotFound):
                    pass
            self._wait_exit(c, min(1.0, max(0.0, deadline - time.monotonic())))
            c = self.get(c.id)
            if c.status not in SUPERVISED:
                return c
            if time.monotonic() >= deadline:
                raise Conflict(f"could not kill container {c.short_id}")

    # -- stop, kill, restart, pause -----------------------------------------------

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> Container:
        c = self.get(ref)
        if c.status not in SUPERVISED:
            return c
        self.store.update_state(c.id, ManuallyStopped=True)
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        sig = _signal_number(signal or c.config.get("StopSignal") or "SIGTERM")
        if c.status == Status.PAUSED:
            self.runtime(c).resume(c.id)
        try:
            self.runtime(c).kill(c.id, sig)
        except (Conflict, NotFound):
            pass
        if timeout < 0 or not self._wait_exit(c, timeout if timeout >= 0 else None):
            try:
                self.runtime(c).kill(c.id, signals.SIGKILL, all=True)
            except (Conflict, NotFound):
                pass
            self._wait_exit(c, None)
        self.event(c, "stop")
        found = self.store.find(c.id)  # a --rm container is gone once it stopped
        return self.reconcile(found) if found else c

    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        c = self.get(ref)
        if c.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        sig = _signal_number(signal)
        self.event(c, "kill", signal=str(sig))
        if c.status == Status.PAUSED and sig == signals.SIGKILL:
            self.runtime(c).kill(c.id, sig, all=True)
            self.runtime(c).resume(c.id)
        else:
            self.runtime(c).kill(c.id, sig)
        if sig == signals.SIGKILL:
            self._wait_exit(c, 10)

    def restart(self, ref: str, timeout: int | None = None) -> Container:
        c = self.stop(ref, timeout)
        c = self.start(c.id)
        self.event(c, "restart")
        return c

    def pause(self, ref: str) -> None:
        c = self.get(ref)
        if c.status != Status.RUNNING:
            raise Conflict(f"Container {c.id} is not running")
        self.runtime(c).pause(c.id)
        self.store.transition(c.id, Event.PAUSE)
        self.event(c, "pause")

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if c.status != Status.PAUSED:
            raise Conflict(f"Container {c.id} is not paused")
        self.runtime(c).resume(c.id)
        self.store.transition(c.id, Event.UNPAUSE)
        self.event(c, "unpause")

    # -- remove -------------------------------------------------------------------

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.status in SUPERVISED:
            if not force:
                state = "paused" if c.status == Status.PAUSED else "running"
                raise Conflict(f"cannot remove container \"/{c.name}\": container is {state}: "
                               "stop the container before removing or force remove")
            self.store.update_state(c.id, ManuallyStopped=True)
            c = self._kill_until_gone(c, 30)
        if c.host_config.get("AutoRemove") and c.status == Status.EXITED and self.store.find(c.id) is None:
            return
        if c.status != Status.REMOVING:
            try:
                self.store.transition(c.id, Event.REMOVE)
            except NotFound:
                return  # --rm removed it meanwhile
        try:
            remove_container(self.state, self.store, c, self.runtime(c), anonymous_volumes=volumes)
        except BaseException:
            self.store.transition(c.id, Event.REMOVE_FAILED)
            raise
        self.event(c, "destroy")

    def exec(self, ref: str, cmd: list[str], *, tty: bool = False, env: list[str] = (), user: str = "",
             workdir: str = "", privileged: bool = False, detach: bool = False, stdio=None,
             console_socket: str | None = None, pid_file: str | None = None) -> int:
        """Run a process in a running container (docker exec); its exit code,
        or its PID when detached.  The runtime writes the PID to `pid_file`
        once the process runs (exec inspect's Pid)."""
        c = self.get(ref)
        if c.status == Status.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.status != Status.RUNNING:
            raise Conflict(f"container {c.id} is not running")
        if not cmd:
            raise InvalidArgument("No exec command specified")
        paths = self.paths(c.id)
        spec = json.loads((paths.bundle / "config.json").read_text())
        u = resolve_user(paths.rootfs, user or c.config.get("User") or "")
        config = dict(c.config, Tty=tty, Env=list(c.config.get("Env") or []) + list(env))
        process = rs.exec_process_spec(spec, rs.ProcessOptions(
            args=list(cmd), env=runspec.container_env(config, c.config["Hostname"]),
            cwd=workdir or c.config.get("WorkingDir") or "/",
            user=rs.User(uid=u.uid, gid=u.gid, additional_gids=u.additional_gids), terminal=tty),
            privileged=privileged, host=rs.HostInfo.probe())
        command = " ".join(cmd)
        self.event(c, f"exec_create: {command}")
        self.event(c, f"exec_start: {command}")
        result = self.runtime(c).exec(c.id, process, stdio=stdio, console_socket=console_socket,
                                      detach=detach, pid_file=pid_file)
        if not detach:
            self.event(c, "exec_die", exitCode=str(result))
        return result

    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        if c.name == new_name.lstrip("/"):
            raise Conflict("Renaming a container with the same name as its current name")
        self.store.rename(c.id, new_name)
        self.event(self.store.get(c.id), "rename", oldName="/" + c.name)

    def prune(self) -> tuple[list[str], int]:
        removed, reclaimed = [], 0
        for c in self.store.list():
            c = self.reconcile(c)
            if c.status in (Status.EXITED, Status.CREATED, Status.DEAD):
                reclaimed += _du(self.paths(c.id).upper)
                self.remove(c.id)
                removed.append(c.id)
        return removed, reclaimed

    # -- reading --------------------------------------------------------------------

    def list(self, *, all: bool = False, filters: dict[str, list[str]] | None = None,
             limit: int = -1, size: bool = False) -> list[ContainerSummary]:
        filters = filters or {}
        allowed = {"id", "name", "status", "label", "exited", "ancestor", "before", "since",
                   "volume", "network", "health", "is-task", "publish", "expose"}
        for key in filters:
            if key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")
        for value in filters.get("health", []):
            if value not in ("starting", "healthy", "unhealthy", "none"):
                raise InvalidArgument(f"Unrecognised filter value for health: {value}")
        out = []
        containers = [self.reconcile(c) for c in self.store.list()]
        anchors = {}
        for key in ("before", "since"):
            if key in filters:
                anchors[key] = self.store.resolve(filters[key][0]).created
        for c in containers:
            if not all and c.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING) \
                    and "status" not in filters and "exited" not in filters and limit <= 0:
                continue
            if not _matches(c, filters, anchors, self.images):
                continue
            out.append(self._summary(c, size))
        if limit > 0:
            out = out[:limit]
        return out

    def _summary(self, c: Container, size: bool) -> ContainerSummary:
        cmd = runspec.shell_join([c.spec["Path"], *c.spec["Args"]])
        return ContainerSummary(
            id=c.id, names=["/" + c.name], image=c.spec["ImageName"], image_id=c.image_id,
            command=cmd, created=c.created, status=human_status(c), state=c.status.value,
            labels=c.config.get("Labels") or {},
            size_rw=_du(self.paths(c.id).upper) if size else None,
            size_root_fs=(self.images.get(c.image_id).size + _du(self.paths(c.id).upper)) if size else None,
            mounts=c.spec.get("Mounts") or [],
            networks=list(self.sandboxes.settings(c).get("Networks") or {}),
            ports=self.sandboxes.ports(c))

    def inspect(self, ref: str, size: bool = False) -> dict:
        c = self.get(ref)
        paths = self.paths(c.id)
        state = {k: v for k, v in c.state.items() if k not in ("RestartCount", "ManuallyStopped")}
        # berth keeps a primary network's endpoint settings in HostConfig; Docker's has no such fields.
        hc = {k: v for k, v in c.host_config.items() if k not in ("NetworkAliases", "NetworkIPv4Address")}
        out = {
            "Id": c.id,
            "Created": _rfc3339(c.created),
            "Path": c.spec["Path"],
            "Args": c.spec["Args"],
            "State": state,
            "Image": c.image_id,
            "ResolvConfPath": str(paths.resolv_conf),
            "HostnamePath": str(paths.hostname),
            "HostsPath": str(paths.hosts),
            "LogPath": str(paths.log),
            "Name": "/" + c.name,
            "RestartCount": c.state.get("RestartCount", 0),
            "Driver": "overlay",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": hc,
            "GraphDriver": {"Data": {"UpperDir": str(paths.upper), "WorkDir": str(paths.work),
                                     "MergedDir": str(paths.rootfs)}, "Name": "overlay"},
            "Mounts": c.spec.get("Mounts") or [],
            "Config": c.config,
            "NetworkSettings": self.sandboxes.settings(c),
        }
        if size:
            out["SizeRw"] = _du(paths.upper)
            out["SizeRootFs"] = self.images.get(c.image_id).size + out["SizeRw"]
        return out

    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None, since: float | None = None,
             until: float | None = None, stop: Callable[[], bool] | None = None):
        """The container's log entries; following ends when it stops, or when stop() says so."""
        c = self.get(ref)
        paths = self.paths(c.id)

        def stopped() -> bool:
            return (stop is not None and stop()) or self.reconcile(self.store.get(c.id)).status not in SUPERVISED

        from berth.container.logs import read_logs  # loads logging: only `logs` needs it

        return read_logs(paths.log, since=since, until=until, tail=tail, follow=follow, stop=stopped)


def resolv_with(text: str, search: list[str], options: list[str]) -> str:
    """resolv.conf with --dns-search replacing its search domains ("." for
    none) and --dns-option its options of the same names."""
    lines = text.splitlines()
    if search:
        lines = [l for l in lines if l.split()[:1] not in (["search"], ["domain"])]
        if search != ["."]:
            lines.append("search " + " ".join(search))
    if options:
        named = {o.split(":", 1)[0] for o in options}
        kept = [o for l in lines if l.split()[:1] == ["options"] for o in l.split()[1:]
                if o.split(":", 1)[0] not in named]
        lines = [l for l in lines if l.split()[:1] != ["options"]]
        lines.append("options " + " ".join(kept + options))
    return "".join(l + "\n" for l in lines)


def _wants_volumes(host_config: dict, config: dict) -> bool:
    """Whether a new container has any volume, bind or tmpfs mount to plan."""
    return bool(config.get("Volumes") or any(host_config.get(key) for key in (
        "Binds", "Mounts", "Tmpfs", "VolumesFrom")))


def human_status(c: Container) -> str:
    """Docker's State description for `ps`: Up 5 minutes, Exited (0) 3 seconds ago."""
    now = time.time()
    if c.status == Status.RUNNING:
        health = (c.state.get("Health") or {}).get("Status")    # moby's Health.String()
        return "Up " + _duration(now - parse_time(c.state.get("StartedAt"))) + (
            "" if not health else " (health: starting)" if health == "starting" else f" ({health})")
    if c.status == Status.PAUSED:
        return "Up " + _duration(now - parse_time(c.state.get("StartedAt"))) + " (Paused)"
    if c.status == Status.RESTARTING:
        return (f"Restarting ({c.state.get('ExitCode', 0)}) "
                f"{_duration(now - parse_time(c.state.get('FinishedAt')))} ago")
    if c.status == Status.EXITED:
        return f"Exited ({c.state.get('ExitCode', 0)}) {_duration(now - parse_time(c.state.get('FinishedAt')))} ago"
    if c.status == Status.REMOVING:
        return "Removal In Progress"
    if c.status == Status.DEAD:
        return "Dead"
    return "Created"


def _duration(seconds: float) -> str:
    return human_duration(max(0.0, seconds))


def _matches(c: Container, filters: dict, anchors: dict, images: ImageStore) -> bool:
    def any_of(key, pred):
        values = filters.get(key)
        return values is None or any(pred(v) for v in values)

    if not any_of("id", lambda v: c.id.startswith(v)):
        return False
    if not any_of("name", lambda v: v.lstrip("/") in c.name):
        return False
    if not any_of("status", lambda v: v == c.status.value):
        return False
    if not any_of("exited", lambda v: c.status == Status.EXITED and str(c.state.get("ExitCode")) == v):
        return False
    if not any_of("health", lambda v: v == ((c.state.get("Health") or {}).get("Status") or "none")):
        return False
    labels = c.config.get("Labels") or {}
    for spec in filters.get("label", []):
        key, sep, value = spec.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    if "ancestor" in filters:
        ok = False
        for v in filters["ancestor"]:
            img = images.find(v)
            if img is not None and img.id == c.image_id:
                ok = True
        if not ok:
            return False
    if "before" in anchors and not c.created < anchors["before"]:
        return False
    if "since" in anchors and not c.created > anchors["since"]:
        return False
    return True


def _du(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _now() -> str:
    return _rfc3339(time.time())


def _rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e9):09d}Z"


class ContainerFilesystem:
    """diff, commit, export, top: a container's files and processes."""

    def __init__(self, manager: ContainerManager):
        self.containers = manager

    def _mount_stubs(self, c: Container, lowers: list[Path]) -> set[str]:
        """What the runtime's mounts alone created in the container's upper
        directory: not changes (Docker keeps them in its init layer)."""
        from berth.layer.mountpoints import INIT_PATHS, mount_stubs
        return mount_stubs(self.containers.paths(c.id).upper, lowers, INIT_PATHS)

    def changes(self, ref: str) -> list[tuple[str, str]]:
        from berth.layer.diff import changes
        c = self.containers.get(ref)
        upper = self.containers.paths(c.id).upper
        if not upper.exists():
            return []
        lowers = self.containers.image_lowers(c)
        return [(ch.kind.symbol, ch.path)
                for ch in changes(upper, lowers[::-1], exclude=self._mount_stubs(c, lowers))]

    def commit(self, ref: str, *, tag=None, message: str = "", author: str = "", pause: bool = True,
               change_config=lambda config: config):
        """A new image: the container's image plus what the container wrote.

        `change_config` applies `commit -c` instructions to the container's
        Config (the Dockerfile layer above knows how); the result becomes the
        image's config.
        """
        import tempfile

        from berth.layer.diff import diff_tar
        from berth.layer.ingest import ingest_layer

        c = self.containers.get(ref)
        paused_here = False
        if pause and c.status == Status.RUNNING:
            self.containers.pause(c.id)
            paused_here = True
        try:
            images = self.containers.images
            base = images.get(c.image_id)
            base_cfg = images.config(base)
            paths = self.containers.paths(c.id)
            state = self.containers.state
            with tempfile.TemporaryFile(dir=state.subdir("tmp")) as layer_tar:
                paths.upper.mkdir(parents=True, exist_ok=True)
                diff_tar(paths.upper, layer_tar,
                         exclude=self._mount_stubs(c, self.containers.image_lowers(c)))
                layer_tar.seek(0)
                with images.ingestion() as added:
                    layer = ingest_layer(layer_tar, state.blobs, added=added)
                    container_cfg = change_config(dict(c.config))
                    container_cfg.pop("Hostname", None)
                    created = cfgmod.now_rfc3339()
                    history = list(base_cfg.get("history") or [])
                    history.append({"created": created, "created_by": runspec.shell_join(
                        [c.spec["Path"], *c.spec["Args"]]), **({"author": author} if author else {}),
                        **({"comment": message} if message else {})})
                    cfg = cfgmod.new_config(
                        diff_ids=cfgmod.diff_ids(base_cfg) + [layer.diff_id], container_config=container_cfg,
                        created=created, history=history, author=author, comment=message, parent=base_cfg)
                    cfg["container"] = c.id
                    return images.add(cfgmod.canonical_json(cfg), images.layers(base) + [layer],
                                      tags=[tag] if tag else [], parent_id=base.id)
        finally:
            if paused_here:
                self.containers.unpause(c.id)

    def export(self, ref: str, out) -> None:
        """The container's whole filesystem as one tar (docker export)."""
        import tarfile

        c = self.containers.get(ref)
        paths = self.containers.paths(c.id)
        mounted_here = self.containers.mount_rootfs(c)
        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                root = str(paths.rootfs)
                for dirpath, dirnames, filenames in os.walk(root):
                    dirnames.sort()
                    rel = os.path.relpath(dirpath, root)
                    for name in sorted(dirnames) + sorted(filenames):
                        full = os.path.join(dirpath, name)
                        arc = name if rel == "." else f"{rel}/{name}"
                        ti = tar.gettarinfo(full, arc)
                        ti.uname = ti.gname = ""
                        if ti.isreg():
                            with open(full, "rb") as f:
                                tar.addfile(ti, f)
                        else:
                            tar.addfile(ti)
        finally:
            if mounted_here:
                unmount(paths.rootfs)

    def top(self, ref: str, ps_args: str = "-ef") -> dict:
        """Docker's top: the host's `ps` output, limited to the container's processes."""
        c = self.containers.get(ref)
        if c.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"Container {c.id} is not running")
        pids = _cgroup_pids(c)
        proc = subprocess.run(["ps", *ps_args.split()], capture_output=True, text=True)
        if proc.returncode != 0:
            raise InvalidArgument(f"Error running ps: {proc.stderr.strip()}")
        lines = proc.stdout.splitlines()
        titles = lines[0].split()
        try:
            pid_col = titles.index("PID")
        except ValueError:
            raise InvalidArgument("Couldn't find PID field in ps output") from None
        rows = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
                rows.append(fields)
        return {"Titles": titles, "Processes": rows}


def _cgroup_pids(c: Container) -> set[int]:
    """The processes in the container's cgroup (its pids or memory controller's,
    or the unified one), found through its init's /proc/PID/cgroup."""
    from berth.container.stats import cgroup_dirs

    dirs = cgroup_dirs(int(c.state.get("Pid") or 0), c.id, c.host_config.get("CgroupParent") or "")
    for path in (dirs.controller("pids"), dirs.controller("memory"), dirs.v2):
        try:
            with open(f"{path}/cgroup.procs") as f:
                pids = {int(line) for line in f if line.strip()}
        except (OSError, TypeError):
            continue
        if pids:
            return pids
    return set()
