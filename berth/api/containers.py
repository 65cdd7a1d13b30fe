"""/containers: create, lifecycle, inspect and list, logs, attach, wait,
files (changes, export, archive), processes (top, stats), prune.

The backends are the engine's container manager (`engine.containers`) and
its filesystem operations (`engine.filesystems`); attach and wait go
through the daemon's AttachHub (berth.api.sessions).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, Protocol

from berth.api import sessions, websocket
from berth.api.routing import (MULTIPLEXED_STREAM, RAW_STREAM, TAR, Hijack, Query, Request, Response, Route,
                               StreamResponse, json_body, json_response, no_content, not_modified)
from berth.api.streams import closing, written
from berth.container.states import SUPERVISED, Status
from berth.container.stdio import STDERR, STDOUT, frame, parse_detach_keys
from berth.errors import Conflict, InvalidArgument


class ContainerBackend(Protocol):
    """What the routes need of the engine's ContainerManager."""

    def get(self, ref: str) -> Any: ...
    def create(self, config: dict, host_config: dict | None = None, name: str | None = None) -> Any: ...
    def start(self, ref: str, *, attach_first: bool = False) -> Any: ...
    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> Any: ...
    def restart(self, ref: str, timeout: int | None = None) -> Any: ...
    def kill(self, ref: str, signal: str | int = "KILL") -> None: ...
    def pause(self, ref: str) -> None: ...
    def unpause(self, ref: str) -> None: ...
    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None: ...
    def rename(self, ref: str, new_name: str) -> None: ...
    def prune(self) -> tuple[list[str], int]: ...
    def list(self, *, all: bool = False, filters: dict | None = None, limit: int = -1,
             size: bool = False) -> list: ...
    def inspect(self, ref: str, size: bool = False) -> dict: ...
    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None, since: float | None = None,
             until: float | None = None, stop: Callable[[], bool] | None = None) -> Iterator: ...
    def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, rows: int = 0,
               cols: int = 0) -> sessions.Attachment: ...


class FilesystemBackend(Protocol):
    """The engine's container filesystem and process views (`engine.filesystems`)."""

    def changes(self, ref: str) -> list[tuple[str, str]]: ...
    def export(self, ref: str, out: BinaryIO) -> None: ...
    def top(self, ref: str, ps_args: str = "-ef") -> dict: ...


class NetworkAttachBackend(Protocol):
    """Joining networks beyond the first at create (`engine.networks`)."""

    def connect(self, network: str, container: str, *, aliases: list[str] = ()) -> None: ...


class ArchiveBackend(Protocol):
    """Paths in a container's filesystem, for docker cp (berth.container.archive)."""

    def stat(self, ref: str, path: str) -> Any: ...
    def get(self, ref: str, path: str) -> contextlib.AbstractContextManager: ...
    def put(self, ref: str, path: str, content: BinaryIO, *, copy_uid_gid: bool = False,
            allow_overwrite_dir_with_file: bool = False) -> None: ...


class StatsBackend(Protocol):
    """A container's resource usage (berth.container.stats)."""

    def stats(self, ref: str, *, stream: bool = True, one_shot: bool = False) -> Iterator[dict]: ...


_CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}
CHUNK = 1 << 16


def container_summary(s) -> dict:
    """ContainerSummary as GET /containers/json shows it."""
    out = {"Id": s.id, "Names": s.names, "Image": s.image, "ImageID": s.image_id, "Command": s.command,
           "Created": int(s.created), "Ports": s.ports, "Labels": s.labels, "State": s.state,
           "Status": s.status, "HostConfig": {"NetworkMode": s.networks[0] if s.networks else "default"},
           "NetworkSettings": {"Networks": {name: {} for name in s.networks}}, "Mounts": s.mounts}
    if s.size_rw is not None:
        out["SizeRw"] = s.size_rw
        out["SizeRootFs"] = s.size_root_fs
    return out


def _timestamp(value: str | None) -> float | None:
    """since/until as the docker CLI sends them: Unix seconds, with an optional fraction."""
    if not value or value == "0":
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidArgument(f"invalid timestamp: {value}") from None


def _create_request(body: dict) -> tuple[dict, dict, list[tuple[str, list[str]]]]:
    """Docker's create body as (Config, HostConfig, further networks to join with their aliases).

    The network named by HostConfig.NetworkMode is joined at start, its
    aliases carried in HostConfig as berth's container layer expects.
    """
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    host_config = dict(body.get("HostConfig") or {})
    endpoints: Mapping[str, Any] = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, Mapping):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    mode = host_config.get("NetworkMode") or "default"
    if mode == "default" and len(endpoints) == 1:
        mode = host_config["NetworkMode"] = next(iter(endpoints))
    further = []
    for network, endpoint in endpoints.items():
        aliases = list((endpoint or {}).get("Aliases") or [])
        if network == mode:
            if aliases and not host_config.get("NetworkAliases"):
                host_config["NetworkAliases"] = aliases
            address = ((endpoint or {}).get("IPAMConfig") or {}).get("IPv4Address")
            if address:
                host_config["NetworkIPv4Address"] = address
            if (endpoint or {}).get("MacAddress") and not config.get("MacAddress"):
                config["MacAddress"] = endpoint["MacAddress"]   # where API 1.44 and later put it
        else:
            further.append((network, aliases))
    return config, host_config, further


class ContainersRouter:
    def __init__(self, containers: ContainerBackend, filesystems: FilesystemBackend, hub: sessions.AttachHub,
                 networks: NetworkAttachBackend | None = None, archive: ArchiveBackend | None = None,
                 stats: StatsBackend | None = None,
                 update: Callable[[str, dict], list[str]] | None = None):
        self.containers = containers
        self.update_backend = update
        self.filesystems = filesystems
        self.hub = hub
        self.networks = networks
        self.archive = archive
        self.stats = stats

    def routes(self) -> list[Route]:
        routes = [
            Route("GET", "/containers/json", self.list),
            Route("POST", "/containers/create", self.create),
            Route("POST", "/containers/prune", self.prune),
            Route("GET", "/containers/{name}/json", self.inspect),
            Route("GET", "/containers/{name}/top", self.top),
            Route("GET", "/containers/{name}/logs", self.logs),
            Route("GET", "/containers/{name}/changes", self.changes),
            Route("GET", "/containers/{name}/export", self.export),
            Route("POST", "/containers/{name}/start", self.start),
            Route("POST", "/containers/{name}/stop", self.stop),
            Route("POST", "/containers/{name}/restart", self.restart),
            Route("POST", "/containers/{name}/kill", self.kill),
            Route("POST", "/containers/{name}/pause", self.pause),
            Route("POST", "/containers/{name}/unpause", self.unpause),
            Route("POST", "/containers/{name}/rename", self.rename),
            Route("POST", "/containers/{name}/resize", self.resize),
            Route("POST", "/containers/{name}/attach", self.attach),
            Route("GET", "/containers/{name}/attach/ws", self.attach_ws),
            Route("POST", "/containers/{name}/wait", self.wait),
            Route("DELETE", "/containers/{name}", self.remove),
        ]
        if self.archive is not None:
            routes += [Route("GET", "/containers/{name}/archive", self.get_archive),
                       Route("HEAD", "/containers/{name}/archive", self.stat_archive),
                       Route("PUT", "/containers/{name}/archive", self.put_archive)]
        if self.stats is not None:
            routes.append(Route("GET", "/containers/{name}/stats", self.stats_route))
        if self.update_backend is not None:
            routes.append(Route("POST", "/containers/{name}/update", self.update))
        return routes

    # -- create, list, inspect ------------------------------------------------------------

    def create(self, req: Request):
        body = req.json(required=True)
        config, host_config, further = _create_request(body)
        name = req.query.get("name") or None
        if further and self.networks is None:
            raise InvalidArgument("this daemon cannot connect a container to several networks")
        c = self.containers.create(config, host_config, name)
        try:
            for network, aliases in further:
                self.networks.connect(network, c.id, aliases=aliases)
        except BaseException:
            self.containers.remove(c.id, force=True)
            raise
        return json_response({"Id": c.id, "Warnings": []}, status=201)

    def list(self, req: Request):
        summaries = self.containers.list(all=req.query.bool("all"), filters=req.query.filters(),
                                         limit=req.query.int("limit", -1), size=req.query.bool("size"))
        return json_response([container_summary(s) for s in summaries])

    def inspect(self, req: Request):
        return json_response(self.containers.inspect(req.params["name"], size=req.query.bool("size")))

    def top(self, req: Request):
        return json_response(self.filesystems.top(req.params["name"], req.query.get("ps_args") or "-ef"))

    def changes(self, req: Request):
        changes = self.filesystems.changes(req.params["name"])
        return json_response([{"Path": path, "Kind": _CHANGE_KINDS.get(kind, 0)} for kind, path in changes]
                             or None)

    def export(self, req: Request):
        name = req.params["name"]
        return StreamResponse(written(lambda out: self.filesystems.export(name, out)), content_type=TAR,
                              prime=True)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, req: Request):
        c = self.containers.get(req.params["name"])
        if c.status in (Status.RUNNING, Status.RESTARTING):
            return not_modified()
        self.hub.start(c.id)
        return no_content()

    def stop(self, req: Request):
        c = self.containers.get(req.params["name"])
        if c.status not in SUPERVISED:
            return not_modified()
        self.containers.stop(c.id, req.query.int("t"), req.query.get("signal") or None)
        return no_content()

    def update(self, req: Request):
        """Restart policy and resources (the engine's update_container)."""
        body = req.json(required=True)
        if not isinstance(body, dict):
            raise InvalidArgument("the update must be a JSON object")
        warnings = self.update_backend(req.params["name"], body)
        return json_response({"Warnings": warnings})

    def restart(self, req: Request):
        self.containers.restart(req.params["name"], req.query.int("t"))
        return no_content()

    def kill(self, req: Request):
        self.containers.kill(req.params["name"], req.query.get("signal") or "KILL")
        return no_content()

    def pause(self, req: Request):
        self.containers.pause(req.params["name"])
        return no_content()

    def unpause(self, req: Request):
        self.containers.unpause(req.params["name"])
        return no_content()

    def rename(self, req: Request):
        new_name = req.query.get("name")
        if not new_name:
            raise InvalidArgument("name is required to rename a container")
        self.containers.rename(req.params["name"], new_name)
        return no_content()

    def remove(self, req: Request):
        if req.query.bool("link"):
            raise InvalidArgument("removing links is not supported")
        self.containers.remove(req.params["name"], force=req.query.bool("force"), volumes=req.query.bool("v"))
        return no_content()

    def prune(self, req: Request):
        if req.query.filters():
            raise InvalidArgument("container prune takes no filters here")
        removed, reclaimed = self.containers.prune()
        return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": reclaimed})

    def wait(self, req: Request):
        block = self.hub.waiter(req.params["name"], req.query.get("condition") or "")

        def body() -> Iterator[bytes]:
            code, error = block()
            yield json_body({"StatusCode": code, "Error": {"Message": error} if error else None})
        # Headers go out at once: the docker CLI starts the container only
        # after they arrive, knowing the daemon is already watching.
        return StreamResponse(body())

    # -- terminal, streams --------------------------------------------------------------------

    def resize(self, req: Request):
        height, width = req.query.int("h", 0), req.query.int("w", 0)
        c = self.containers.get(req.params["name"])
        if c.status not in SUPERVISED:
            raise Conflict(f"Container {c.id} is not running")
        conn = self.containers.attach(c.id, stdin=False, stdout=False, stderr=False)
        try:
            conn.resize(height, width)
        finally:
            conn.close()
        return no_content()

    def logs(self, req: Request):
        q = req.query
        stdout, stderr = q.bool("stdout"), q.bool("stderr")
        if not (stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tail_text = q.get("tail") or "all"
        try:
            tail = None if tail_text == "all" else int(tail_text)
        except ValueError:
            raise InvalidArgument(f"invalid value for tail: {tail_text}") from None
        if tail is not None and tail < 0:
            tail = None
        c = self.containers.get(req.params["name"])
        tty = bool(c.config.get("Tty"))
        entries = self.containers.logs(c.id, follow=q.bool("follow"), tail=tail, since=_timestamp(q.get("since")),
                                       until=_timestamp(q.get("until")), stop=req.disconnected)
        timestamps = q.bool("timestamps")

        def chunks() -> Iterator[bytes]:
            for entry in entries:
                is_stdout = entry.stream == "stdout"
                if not (stdout if is_stdout else stderr):
                    continue
                data = entry.line(timestamps)
                yield data if tty else frame(STDOUT if is_stdout else STDERR, data)
        return StreamResponse(chunks(), content_type=self._stream_type(req, tty))

    @staticmethod
    def _stream_type(req: Request, tty: bool) -> str:
        return RAW_STREAM if tty or not req.version_at_least(1, 42) else MULTIPLEXED_STREAM

    def attach(self, req: Request):
        c = self.containers.get(req.params["name"])
        tty = bool(c.config.get("Tty"))
        session = self.attach_session(c, req.query, multiplexed=not tty)
        return Hijack(session, content_type=self._stream_type(req, tty))

    def attach_ws(self, req: Request):
        """The same attach over a websocket: never multiplexed, and before API 1.42 every stream."""
        headers = websocket.handshake(req)
        if isinstance(headers, Response):
            return headers
        c = self.containers.get(req.params["name"])
        session = self.attach_session(c, req.query, multiplexed=False,
                                      all_streams=not req.version_at_least(1, 42))
        return websocket.hijack(headers, session, text=not req.version_at_least(1, 28))

    def attach_session(self, c, q: Query, *, multiplexed: bool, all_streams: bool = False) -> Callable[[Any], None]:
        """An attach to `c` as the query asks, to run over a hijacked stream (recv, sendall, fileno).

        Errors a client must see as HTTP statuses are raised here, before the hijack."""
        detach_keys = parse_detach_keys(q.get("detachKeys") or "")
        if c.status is Status.PAUSED:
            raise Conflict(f"container {c.id} is paused, unpause the container before attach")
        if c.status is Status.RESTARTING:
            raise Conflict(f"container {c.id} is restarting, wait until the container is running")
        stdin = (all_streams or q.bool("stdin")) and bool(c.config.get("OpenStdin"))
        stdout, stderr = all_streams or q.bool("stdout"), all_streams or q.bool("stderr")
        stream, logs = q.bool("stream"), q.bool("logs")
        if not (stream or logs):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        pending = None
        if stream and c.status not in SUPERVISED:
            pending = self.hub.register(c.id, stdin=stdin, stdout=stdout, stderr=stderr)

        def session(raw) -> None:
            try:
                if logs:
                    self._replay_logs(raw, c.id, multiplexed=multiplexed, stdout=stdout, stderr=stderr)
                if not stream:
                    return
                if pending is not None:
                    conn, frames = self.hub.await_start(c.id, pending)
                    if conn is None:
                        return
                else:
                    conn = self.containers.attach(c.id, stdin=stdin, stdout=stdout, stderr=stderr)
                    frames = conn.frames()
                # relay's `tty` means raw payloads, as a TTY's output is sent.
                sessions.relay(raw, conn, frames, tty=not multiplexed, stdin=stdin, detach_keys=detach_keys)
            finally:
                if pending is not None:
                    self.hub.unregister(c.id, pending)
        return session

    def _replay_logs(self, raw, container_id: str, *, multiplexed: bool, stdout: bool, stderr: bool) -> None:
        for entry in self.containers.logs(container_id):
            is_stdout = entry.stream == "stdout"
            if stdout if is_stdout else stderr:
                raw.sendall(frame(STDOUT if is_stdout else STDERR, entry.data) if multiplexed else entry.data)

    # -- archive, stats ------------------------------------------------------------------------

    def stat_archive(self, req: Request):
        stat = self.archive.stat(req.params["name"], self._archive_path(req))
        return Response(200, b"", content_type=None,
                        headers=[("X-Docker-Container-Path-Stat", _encode_stat(stat))])

    def get_archive(self, req: Request):
        with contextlib.ExitStack() as stack:
            stat, stream = stack.enter_context(self.archive.get(req.params["name"], self._archive_path(req)))
            exits = stack.pop_all()  # from here on the response owns the archiver

        def chunks() -> Iterator[bytes]:
            while data := stream.read(CHUNK):
                yield data
        # Closed however the response ends; the archiver's errors surface then.
        return StreamResponse(closing(chunks(), exits.close), content_type=TAR,
                              headers=[("X-Docker-Container-Path-Stat", _encode_stat(stat))])

    def put_archive(self, req: Request):
        self.archive.put(req.params["name"], self._archive_path(req), req.body,
                         copy_uid_gid=req.query.bool("copyUIDGID"),
                         allow_overwrite_dir_with_file=not req.query.bool("noOverwriteDirNonDir"))
        return Response(200, b"", content_type=None)

    @staticmethod
    def _archive_path(req: Request) -> str:
        path = req.query.get("path")
        if not path:
            raise InvalidArgument("path is required")
        return path

    def stats_route(self, req: Request):
        stream = req.query.bool("stream", True)
        samples = self.stats.stats(req.params["name"], stream=stream, one_shot=req.query.bool("one-shot"))
        if not stream:
            return json_response(next(iter(samples)))
        return StreamResponse((json_body(s) for s in samples), prime=True)


def _encode_stat(stat: Any) -> str:
    return base64.b64encode(json.dumps(stat.to_api()).encode()).decode()
