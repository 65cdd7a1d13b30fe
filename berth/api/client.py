"""The engine's Python API over the Engine API: a client of `berth daemon`.

Design: `RemoteEngine(host)` has the attributes the CLI uses of an
`Engine` (containers, images, volumes, networks, system, registry), each a
proxy with the same method names, arguments and return types as the
engine service it stands for, that makes the matching Engine API request
and turns the answer back into the engine's own types (ContainerSummary,
ImageSummary, the Container record, LogEntry, ...).  Statuses become the
berth.errors categories again (httpstatus.error_for, the inverse of the
daemon's mapping), so `berth -H unix:///run/berth/berth.sock ps` runs the
same command code as `berth ps`, errors, exit codes and output included.

The supervisor protocol that the CLI's attach and run speak is emulated
over a hijacked attach stream: frames() yields STDOUT/STDERR as they come,
then EXIT with the code a wait request (sent before the start, as the
docker CLI does) returns; a start that fails becomes a FAILED frame.

Covered: the container lifecycle (create, start, stop, restart, kill,
pause, unpause, rm, rename, wait, prune), ps, inspect, logs (-f), attach
and run (tty and not), images, history, tag, rmi, image inspect, pull,
version, info, events, volumes and networks.  Not yet: exec, cp, build,
save/load, import, commit, push and login (each needs its own request
shape; the daemon side exists).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, urlencode

from berth import errors
from berth.api.httpstatus import error_for
from berth.container import protocol as proto
from berth.container.stdio import Demuxer
from berth.errors import BerthError, InvalidArgument

API_PREFIX = "/v1.47"


# -- transport -------------------------------------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            self.sock.settimeout(self.timeout)
        try:
            self.sock.connect(self.socket_path)
        except OSError as e:
            self.sock.close()
            raise errors.Unavailable(f"Cannot connect to the berth daemon at unix://{self.socket_path}. "
                                     f"Is the daemon running? ({e.strerror})") from None


class Transport:
    """One request per connection over the daemon's unix socket."""

    def __init__(self, host: str, timeout: float | None = None):
        if not host.startswith("unix://"):
            raise InvalidArgument(f"unsupported daemon address {host!r}: use unix:///path")
        self.path = host[len("unix://"):]
        self.timeout = timeout

    def open(self, method: str, path: str, *, query: dict | None = None, body: Any = None,
             headers: dict | None = None):
        """The response (status checked), still open for streaming; the caller closes it."""
        conn = _UnixConnection(self.path, self.timeout)
        url = API_PREFIX + path + ("?" + urlencode(_clean(query), doseq=True) if query else "")
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        conn.request(method, url, body=body, headers=headers)
        response = conn.getresponse()
        if response.status >= 400:
            data = response.read()
            conn.close()
            try:
                message = json.loads(data)["message"]
            except (ValueError, KeyError, TypeError):
                message = data.decode("utf-8", "replace").strip() or response.reason
            raise error_for(response.status, message)
        response.connection = conn
        return response

    def hijack(self, path: str, *, query: dict | None = None) -> socket.socket:
        """POST with an upgrade to a raw stream; the socket, positioned after the response head.

        Written by hand rather than with http.client, whose buffered reader
        would swallow the first bytes of the stream.
        """
        url = API_PREFIX + path + ("?" + urlencode(_clean(query), doseq=True) if query else "")
        conn = _UnixConnection(self.path, self.timeout)
        conn.connect()
        sock = conn.sock
        try:
            sock.sendall(f"POST {url} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                         "Upgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                byte = sock.recv(1)
                if not byte:
                    raise errors.Unavailable("the daemon closed the connection")
                head += byte
            status = int(head.split(b" ", 2)[1])
            if status >= 400:
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = b""
                while len(body) < length:
                    more = sock.recv(length - len(body))
                    if not more:
                        break
                    body += more
                try:
                    message = json.loads(body)["message"]
                except (ValueError, KeyError, TypeError):
                    message = body.decode("utf-8", "replace")
                raise error_for(status, message)
            sock.settimeout(None)
            return sock
        except BaseException:
            sock.close()
            raise

    def call(self, method: str, path: str, **kwargs) -> Any:
        response = self.open(method, path, **kwargs)
        try:
            data = response.read()
        finally:
            response.connection.close()
        if not data or not (response.getheader("Content-Type") or "").startswith("application/json"):
            return None
        return json.loads(data)

    def lines(self, method: str, path: str, **kwargs) -> Iterator[dict]:
        """A JSON message stream, one object at a time; an in-band error is raised."""
        response = self.open(method, path, **kwargs)
        try:
            for line in response:
                if not line.strip():
                    continue
                message = json.loads(line)
                if isinstance(message, dict) and message.get("error"):
                    raise BerthError(message["error"])
                yield message
        finally:
            response.connection.close()


def _clean(query: dict) -> dict:
    out = {}
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, dict):
            value = json.dumps(value)
        out[key] = value
    return out


def _q(ref: str) -> str:
    return quote(ref, safe="/:@")


# -- containers ---------------------------------------------------------------------------------

class RemoteAttachment:
    """The supervisor protocol of an attach, over a hijacked Engine API stream."""

    def __init__(self, sock: socket.socket, *, tty: bool, exit_code: Callable[[], int | None],
                 resize: Callable[[int, int], None], start_failure: BerthError | None = None):
        self.sock = sock
        self._tty = tty
        self._exit_code = exit_code
        self._resize = resize
        self._failure = start_failure

    def send_stdin(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_stdin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def resize(self, rows: int, cols: int) -> None:
        try:
            self._resize(rows, cols)
        except BerthError:
            pass

    def frames(self) -> Iterator[tuple[int, bytes]]:
        if self._failure is not None:
            failure = {"kind": type(self._failure).__name__, "message": str(self._failure)}
            yield proto.FAILED, json.dumps(failure).encode()
            return
        demux = Demuxer()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if self._tty:
                yield proto.STDOUT, data
            else:
                yield from demux.feed(data)
        code = self._exit_code()
        if code is not None:
            yield proto.EXIT, str(code).encode()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def _parse_time(text: str) -> float:
    from berth.image.config import parse_time
    return parse_time(text)


class RemoteContainers:
    def __init__(self, transport: Transport):
        self.http = transport
        self._attach_first: set[str] = set()

    # -- records ------------------------------------------------------------------------------

    def get(self, ref: str):
        from berth.container.record import Container
        from berth.container.states import Status
        d = self.http.call("GET", f"/containers/{_q(ref)}/json")
        spec = {"Config": d.get("Config") or {}, "HostConfig": d.get("HostConfig") or {}, "Path": d.get("Path"),
                "Args": d.get("Args") or [], "ImageName": (d.get("Config") or {}).get("Image", ""),
                "Mounts": d.get("Mounts") or []}
        state = dict(d.get("State") or {})
        return Container(id=d["Id"], name=d["Name"].lstrip("/"), image_id=d.get("Image", ""),
                         created=_parse_time(d.get("Created", "")), status=Status(state.get("Status", "created")),
                         spec=spec, state=state)

    def inspect(self, ref: str, size: bool = False) -> dict:
        return self.http.call("GET", f"/containers/{_q(ref)}/json", query={"size": size})

    def list(self, *, all: bool = False, filters: dict | None = None, limit: int = -1, size: bool = False):
        from berth.container.manager import ContainerSummary
        query = {"all": all, "size": size, "filters": filters or None, "limit": limit if limit > 0 else None}
        return [ContainerSummary(id=s["Id"], names=s.get("Names") or [], image=s.get("Image", ""),
                                 image_id=s.get("ImageID", ""), command=s.get("Command", ""),
                                 created=float(s.get("Created", 0)), status=s.get("Status", ""),
                                 state=s.get("State", ""), ports=s.get("Ports") or [], labels=s.get("Labels") or {},
                                 size_rw=s.get("SizeRw"), size_root_fs=s.get("SizeRootFs"),
                                 mounts=s.get("Mounts") or [],
                                 networks=list(((s.get("NetworkSettings") or {}).get("Networks") or {})))
                for s in self.http.call("GET", "/containers/json", query=query)]

    # -- lifecycle ----------------------------------------------------------------------------

    def create(self, config: dict, host_config: dict | None = None, name: str | None = None):
        body = dict(config, HostConfig=host_config or {})
        created = self.http.call("POST", "/containers/create", query={"name": name}, body=body)
        return self.get(created["Id"])

    def start(self, ref: str, *, attach_first: bool = False):
        c = self.get(ref)
        if attach_first:
            # Started by the attach that follows, as the docker CLI orders it.
            self._attach_first.add(c.id)
            return c
        self.http.call("POST", f"/containers/{c.id}/start")
        return self.get(c.id)

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None):
        self.http.call("POST", f"/containers/{_q(ref)}/stop", query={"t": timeout, "signal": signal})
        return self.get(ref)

    def restart(self, ref: str, timeout: int | None = None):
        self.http.call("POST", f"/containers/{_q(ref)}/restart", query={"t": timeout})
        return self.get(ref)

    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        self.http.call("POST", f"/containers/{_q(ref)}/kill", query={"signal": str(signal)})

    def pause(self, ref: str) -> None:
        self.http.call("POST", f"/containers/{_q(ref)}/pause")

    def unpause(self, ref: str) -> None:
        self.http.call("POST", f"/containers/{_q(ref)}/unpause")

    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        self.http.call("DELETE", f"/containers/{_q(ref)}", query={"force": force, "v": volumes})

    def rename(self, ref: str, new_name: str) -> None:
        self.http.call("POST", f"/containers/{_q(ref)}/rename", query={"name": new_name})

    def prune(self) -> tuple[list[str], int]:
        report = self.http.call("POST", "/containers/prune")
        return report.get("ContainersDeleted") or [], report.get("SpaceReclaimed", 0)

    def wait(self, ref: str, condition: str = "not-running") -> int:
        return self.http.call("POST", f"/containers/{_q(ref)}/wait", query={"condition": condition})["StatusCode"]

    # -- streams ------------------------------------------------------------------------------

    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None, since: float | None = None,
             until: float | None = None):
        from berth.container.logs import LogEntry
        c = self.get(ref)
        response = self.http.open("GET", f"/containers/{c.id}/logs", query={
            "stdout": True, "stderr": True, "timestamps": True, "follow": follow,
            "tail": "all" if tail is None else str(tail), "since": since, "until": until})
        tty = bool(c.config.get("Tty"))

        def entry(kind: int, line: bytes) -> LogEntry:
            # "TIMESTAMP data": the daemon puts each entry's time in front of it.
            stamp, _, data = line.partition(b" ")
            text = stamp.decode()
            when = _parse_time(text)
            return LogEntry("stdout" if kind == proto.STDOUT else "stderr", data, when, text, int(when * 1e9))

        def entries() -> Iterator[LogEntry]:
            demux, partial = Demuxer(), b""
            try:
                while True:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    if not tty:
                        for kind, payload in demux.feed(chunk):
                            yield entry(kind, payload)
                        continue
                    # A terminal's entries share one stream: one a line.
                    *lines, partial = (partial + chunk).split(b"\n")
                    for line in lines:
                        yield entry(proto.STDOUT, line + b"\n")
                if partial:
                    yield entry(proto.STDOUT, partial)
            finally:
                response.connection.close()
        return entries()

    def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, rows: int = 0,
               cols: int = 0) -> RemoteAttachment:
        c = self.get(ref)
        start = c.id in self._attach_first
        self._attach_first.discard(c.id)
        sock = self.http.hijack(f"/containers/{c.id}/attach", query={
            "stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr})
        try:
            waiting = None
            failure = None
            if start:
                # The daemon answers a wait's headers once it watches the
                # container, so the exit cannot slip by before the start.
                waiting = self.http.open("POST", f"/containers/{c.id}/wait", query={"condition": "next-exit"})
                try:
                    self.http.call("POST", f"/containers/{c.id}/start")
                except BerthError as e:
                    failure = e
                if rows and cols and failure is None:
                    self.resize(c.id, rows, cols)
        except BaseException:
            sock.close()
            raise

        def exit_code() -> int | None:
            if waiting is None:
                return self._wait_quietly(c.id, "not-running")
            try:
                return json.loads(waiting.read())["StatusCode"]
            except (OSError, ValueError, KeyError):
                return None
            finally:
                waiting.connection.close()
        return RemoteAttachment(sock, tty=bool(c.config.get("Tty")), exit_code=exit_code,
                                resize=lambda r, w: self.resize(c.id, r, w), start_failure=failure)

    def _wait_quietly(self, container_id: str, condition: str) -> int | None:
        try:
            return self.wait(container_id, condition)
        except BerthError:
            return None

    def resize(self, ref: str, rows: int, cols: int) -> None:
        self.http.call("POST", f"/containers/{_q(ref)}/resize", query={"h": rows, "w": cols})


# -- images ---------------------------------------------------------------------------------------

class RemoteImages:
    def __init__(self, transport: Transport):
        self.http = transport

    @property
    def store(self) -> "RemoteImages":
        """The CLI asks `images.store.find(name)` before pulling; answer the same question."""
        return self

    def find(self, name: str):
        try:
            return _ImageRef(self.http.call("GET", f"/images/{_q(name)}/json")["Id"])
        except errors.NotFound:
            return None

    def list(self, *, all: bool = False, filters: dict | None = None):
        from berth.engine.images import ImageSummary
        return [ImageSummary(id=s["Id"], parent_id=s.get("ParentId", ""), repo_tags=s.get("RepoTags") or [],
                             repo_digests=s.get("RepoDigests") or [], created=float(s.get("Created", 0)),
                             size=s.get("Size", 0), shared_size=max(0, s.get("SharedSize", 0)),
                             labels=s.get("Labels") or {}, containers=max(0, s.get("Containers", 0)),
                             intermediate=False)
                for s in self.http.call("GET", "/images/json", query={"all": all, "filters": filters or None})]

    def inspect(self, name: str) -> dict:
        return self.http.call("GET", f"/images/{_q(name)}/json")

    def history(self, name: str):
        from berth.engine.images import HistoryEntry
        return [HistoryEntry(id=h["Id"], created=float(h.get("Created", 0)), created_by=h.get("CreatedBy", ""),
                             size=h.get("Size", 0), comment=h.get("Comment", ""), tags=h.get("Tags") or [])
                for h in self.http.call("GET", f"/images/{_q(name)}/history")]

    def tag(self, source: str, target: str) -> None:
        from berth.image.reference import parse_normalized_named
        ref = parse_normalized_named(target)
        self.http.call("POST", f"/images/{_q(source)}/tag", query={"repo": ref.familiar_name,
                                                                   "tag": ref.tag or "latest"})

    def remove(self, name: str, *, force: bool = False, prune: bool = True) -> list[dict]:
        return self.http.call("DELETE", f"/images/{_q(name)}", query={"force": force, "noprune": not prune})


@dataclass
class _ImageRef:
    id: str


@dataclass
class _Pulled:
    reference: str


class RemoteRegistry:
    def __init__(self, transport: Transport, images: RemoteImages):
        self.http = transport
        self.images = images

    def pull(self, name: str, *, platform: str | None = None, all_tags: bool = False, progress=None):
        from berth.image.reference import parse
        from berth.registry.progress import Progress
        ref = parse(name)
        tag = ref.digest or ref.tag or ("" if all_tags else "latest")
        query = {"fromImage": ref.name, "tag": tag or None, "platform": platform}
        for message in self.http.lines("POST", "/images/create", query=query):
            if progress is not None and "status" in message:
                detail = message.get("progressDetail") or {}
                progress(Progress(message["status"], message.get("id", ""), detail.get("current", 0),
                                  detail.get("total", 0)))
        return [_Pulled(str(ref.tagged_or_latest()) if not all_tags else ref.name)]

    def ensure_image(self, name: str, *, policy: str = "missing", platform: str | None = None, progress=None,
                     announce=None):
        if policy != "always":
            found = self.images.find(name)
            if found is not None or policy == "never":
                if found is None:
                    raise errors.NotFound(f"No such image: {name}")
                return found
            if announce is not None:
                from berth.image.reference import parse
                announce(f"Unable to find image '{parse(name).tagged_or_latest().familiar()}' locally")
        self.pull(name, platform=platform, progress=progress)
        return self.images.find(name)


# -- volumes, networks, system ------------------------------------------------------------------

class RemoteVolumes:
    def __init__(self, transport: Transport):
        self.http = transport

    def create(self, name: str | None = None, *, driver: str = "local", labels=None, options=None) -> dict:
        return self.http.call("POST", "/volumes/create", body={"Name": name or "", "Driver": driver,
                                                               "Labels": dict(labels or {}),
                                                               "DriverOpts": dict(options or {})})

    def inspect(self, name: str) -> dict:
        return self.http.call("GET", f"/volumes/{_q(name)}")

    def list(self, filters=None) -> list[dict]:
        return self.http.call("GET", "/volumes", query={"filters": dict(filters) if filters else None})["Volumes"] \
            or []

    def remove(self, name: str, *, force: bool = False) -> None:
        self.http.call("DELETE", f"/volumes/{_q(name)}", query={"force": force})

    def prune(self, *, all: bool = False, filters=None) -> tuple[list[str], int]:
        wanted = dict(filters or {})
        if all:
            wanted["all"] = ["true"]
        report = self.http.call("POST", "/volumes/prune", query={"filters": wanted or None})
        return report.get("VolumesDeleted") or [], report.get("SpaceReclaimed", 0)


class RemoteNetworks:
    def __init__(self, transport: Transport):
        self.http = transport

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, attachable: bool = False, labels=None, options=None) -> dict:
        ipam = {"Config": [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}]} if subnet else {}
        return self.http.call("POST", "/networks/create", body={
            "Name": name, "Driver": driver, "Internal": internal, "Attachable": attachable, "IPAM": ipam,
            "Labels": dict(labels or {}), "Options": dict(options or {})})

    def inspect(self, ref: str) -> dict:
        return self.http.call("GET", f"/networks/{_q(ref)}")

    def list(self, filters=None) -> list[dict]:
        return self.http.call("GET", "/networks", query={"filters": dict(filters) if filters else None})

    def remove(self, ref: str) -> None:
        self.http.call("DELETE", f"/networks/{_q(ref)}")

    def connect(self, network: str, container: str, *, aliases=()) -> None:
        self.http.call("POST", f"/networks/{_q(network)}/connect",
                       body={"Container": container, "EndpointConfig": {"Aliases": list(aliases)}})

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        self.http.call("POST", f"/networks/{_q(network)}/disconnect", body={"Container": container, "Force": force})

    def prune(self, filters=None) -> list[str]:
        return self.http.call("POST", "/networks/prune", query={"filters": dict(filters) if filters else None}
                              ).get("NetworksDeleted") or []


class RemoteSystem:
    def __init__(self, transport: Transport):
        self.http = transport

    def version(self) -> dict:
        return self.http.call("GET", "/version")

    def info(self, containers=None) -> dict:
        return self.http.call("GET", "/info")

    def events(self, filters: dict, *, since: float | None = None, until: float | None = None):
        return self.http.lines("GET", "/events", query={"filters": filters or None, "since": since,
                                                         "until": until})


class RemoteEngine:
    """An Engine whose services live in a daemon (see the module's docstring)."""

    def __init__(self, host: str):
        self.transport = Transport(host)
        self.containers = RemoteContainers(self.transport)
        self.images = RemoteImages(self.transport)
        self.registry = RemoteRegistry(self.transport, self.images)
        self.volumes = RemoteVolumes(self.transport)
        self.networks = RemoteNetworks(self.transport)
        self.system = RemoteSystem(self.transport)

    def close(self) -> None:
        pass
