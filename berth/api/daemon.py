"""`berth daemon`: the Engine API served from an Engine.

Wiring only: each route group gets the engine service it needs (its
narrow backend), the daemon adds the little state of its own the HTTP
sessions need (exec instances, attaches waiting for a start), and the
server listens where -H says.  Containers run under their own supervisors,
so they outlive the daemon and are found again by the next one.
"""

from __future__ import annotations

import grp
import os
import signal
import socket
import ssl
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import berth
from berth.api.build import BuildRouter
from berth.api.containers import ContainersRouter, container_summary
from berth.api.distribution import DistributionRouter
from berth.api.exec import ExecRouter, ExecStore
from berth.api.images import ImagesRouter, image_summary
from berth.api.networks import NetworksRouter
from berth.api.routing import Router
from berth.api.server import ApiServer, Application
from berth.api.sessions import AttachHub
from berth.api.system import SystemRouter
from berth.api.volumes import VolumesRouter
from berth.errors import Conflict, InvalidArgument

DEFAULT_HOST = "unix:///run/berth/berth.sock"
DEFAULT_GROUP = "berth"


@dataclass(frozen=True)
class TLSFiles:
    ca: str
    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        ctx.load_verify_locations(self.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED  # --tlsverify: clients must present a certificate we trust
        return ctx


def _optional(engine, name: str):
    """An engine service this build of the engine may not have (None then)."""
    if not hasattr(type(engine), name):
        return None
    return getattr(engine, name)


class EngineUsage:
    """`system df` and `info` counts, from the engine's services."""

    def __init__(self, engine):
        self.engine = engine

    def layers_size(self) -> int:
        return self.engine.system.disk_usage(self.engine.containers_using)["LayersSize"]

    def images(self) -> list:
        return self.engine.images.list(all=True)

    def containers(self, *, size: bool) -> list:
        return self.engine.containers.list(all=True, size=size)

    def volumes(self) -> list[dict]:
        return self.engine.volumes.disk_usage()


class ContainerArchives:
    """berth.container.archive's operations on the engine's containers, as `cp` uses them."""

    def __init__(self, containers):
        self.containers = containers

    def stat(self, ref: str, path: str):
        from berth.container import archive
        return archive.stat_path(self.containers, ref, path)

    def get(self, ref: str, path: str):
        from berth.container import archive
        return archive.archive_path(self.containers, ref, path)

    def put(self, ref: str, path: str, content, *, copy_uid_gid: bool = False,
            allow_overwrite_dir_with_file: bool = False) -> None:
        from berth.container import archive
        archive.extract_to_dir(self.containers, ref, path, content, copy_uid_gid=copy_uid_gid,
                               allow_overwrite_dir_with_file=allow_overwrite_dir_with_file)


class ContainerStats:
    """berth.container.stats on the engine's containers."""

    def __init__(self, containers):
        self.containers = containers

    def stats(self, ref: str, *, stream: bool = True, one_shot: bool = False):
        from berth.container import stats
        return stats.stats(self.containers, ref, stream=stream, one_shot=one_shot)


def build_router(engine, *, hub: AttachHub | None = None, execs: ExecStore | None = None) -> Router:
    """Every route group, each given the engine service it needs."""
    containers = engine.containers
    hub = hub or AttachHub(containers, journal=engine.system)
    networks = _optional(engine, "networks")
    registry = _optional(engine, "registry")
    builder = _optional(engine, "build")
    groups = [
        SystemRouter(engine.system, EngineUsage(engine), login=registry,
                     image_summary=lambda s: image_summary(s, legacy_virtual_size=False),
                     container_summary=container_summary),
        ContainersRouter(containers, engine.filesystems, hub, networks=networks,
                         archive=ContainerArchives(containers), stats=ContainerStats(containers),
                         update=getattr(engine, "update_container", None)),
        ExecRouter(containers, execs),
        ImagesRouter(engine.images, registry=registry, commits=engine.filesystems),
        VolumesRouter(engine.volumes),
    ]
    if networks is not None:
        groups.append(NetworksRouter(networks))
    if builder is not None:
        groups.append(BuildRouter(builder))
    if registry is not None and hasattr(registry, "distribution"):
        groups.append(DistributionRouter(registry))
    router = Router()
    for group in groups:
        for route in group.routes():
            router.add(route)
    return router


def application(engine, log=lambda line: None, debug: bool = False) -> Application:
    return Application(build_router(engine), api_version=berth.API_VERSION,
                       min_api_version=berth.MIN_API_VERSION,
                       server=f"berth/{berth.__version__} (linux)", log=log, debug=debug)


# -- listeners -------------------------------------------------------------------------------

def unix_listener(path: str, group: str | None, *, group_required: bool) -> socket.socket:
    """A unix socket, 0660 and owned by root and `group` (when it exists), as dockerd's."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() or p.is_symlink():
        if not stat.S_ISSOCK(p.lstat().st_mode):
            raise InvalidArgument(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            p.unlink()  # left behind by a daemon that died
        else:
            raise Conflict(f"{path} is in use: another daemon is listening on it")
        finally:
            probe.close()
    gid = None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            if group_required:
                raise InvalidArgument(f"group {group} not found") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # no window in which the socket is open to everyone
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(128)
    return sock


def tcp_listener(address: str) -> socket.socket:
    parts = urlsplit(address)
    host, port = parts.hostname or "127.0.0.1", parts.port or 2376
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def open_listeners(hosts: list[str], *, group: str | None, group_required: bool,
                   tls: TLSFiles | None) -> tuple[list[socket.socket], list[tuple[str, int]]]:
    """Sockets for each -H, and the unix paths (with their inodes) to remove at exit."""
    listeners, paths = [], []
    try:
        for host in hosts:
            if host.startswith("unix://"):
                path = host[len("unix://"):]
                if not path.startswith("/"):
                    raise InvalidArgument(f"unix socket path must be absolute: {host}")
                listeners.append(unix_listener(path, group, group_required=group_required))
                paths.append((path, os.stat(path).st_ino))
            elif host.startswith("tcp://"):
                if tls is None:
                    raise InvalidArgument("berth daemon listens on TCP only with --tlsverify, --tlscacert, "
                                          "--tlscert and --tlskey")
                listeners.append(tcp_listener(host))
            else:
                raise InvalidArgument(f"invalid daemon address {host!r}: use unix:///path or tcp://host:port")
    except BaseException:
        for sock in listeners:
            sock.close()
        _remove_sockets(paths)
        raise
    return listeners, paths


def _remove_sockets(paths: list[tuple[str, int]]) -> None:
    """Remove our socket files, but not one a newer daemon has bound at the same path since."""
    for path, inode in paths:
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass


def serve(engine, hosts: list[str], *, group: str | None = DEFAULT_GROUP, group_required: bool = False,
          tls: TLSFiles | None = None, debug: bool = False) -> int:
    def log(line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        print(f"{stamp} {line}", file=sys.stderr, flush=True)

    tls_context = tls.context() if tls is not None else None
    listeners, paths = open_listeners(hosts or [DEFAULT_HOST], group=group, group_required=group_required,
                                      tls=tls)
    networks = _optional(engine, "networks")
    if networks is not None and hasattr(networks, "recover"):
        networks.recover()  # give back what containers that died meanwhile held in the kernel
    # This process is multi-threaded: supervisors are forked by a helper instead.
    fork_server = engine.use_fork_server(log=log) if hasattr(type(engine), "use_fork_server") else None
    server = ApiServer(application(engine, log=log, debug=debug), listeners, tls_context)
    previous = {sig: signal.signal(sig, lambda *_: server.shutdown()) for sig in (signal.SIGTERM, signal.SIGINT)}
    for host in hosts or [DEFAULT_HOST]:
        log(f"API listening on {host}")
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in listeners:
            sock.close()
        _remove_sockets(paths)
        if fork_server is not None:
            fork_server.close()
        log("daemon shut down; containers keep running under their supervisors")
    return 0
