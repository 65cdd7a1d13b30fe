"""The engine's Python API over the Engine API: a client of `berth daemon`.

Design: `RemoteEngine(host)` has the attributes the CLI uses of an
`Engine` (containers, filesystems, images, registry, volumes, networks,
system, build), each a proxy with the same method names, arguments and
return types as the engine service it stands for, that makes the matching
Engine API request and turns the answer back into the engine's own types
(ContainerSummary, ImageSummary, the Container record, LogEntry, PathStat,
...).  Statuses become the berth.errors categories again
(httpstatus.error_for, the inverse of the daemon's mapping), so
`berth -H unix:///run/berth/berth.sock ps` runs the same command code as
`berth ps`, errors, exit codes and output included.  All requests go
through one Transport (a request per connection; JSON, streamed and
chunked bodies; JSON message streams; hijacked streams).

The supervisor protocol that the CLI's attach and run speak is emulated
over a hijacked attach stream: frames() yields STDOUT/STDERR as they come,
then EXIT with the code a wait request (sent before the start, as the
docker CLI does) returns; a start that fails becomes a FAILED frame.  An
exec with a terminal plays the runtime's part: the caller gets a pty
master over its console socket, and the pty's other end is relayed to the
daemon's terminal.  `cp` and `stats` call functions of the container
layer (berth.container.archive, .stats) with the manager; the remote
manager carries stand-ins for them (`archive`, `stats`).

What cannot be remote raises InvalidArgument ("... is not supported with
-H"): `insert`, `system check`, build's --ca-bundle/--host-ca.  Logins
stay on the client (config.json), checked by the daemon (POST /auth) and
sent with pulls and pushes as X-Registry-Auth, as the docker CLI does.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, NoReturn
from urllib.parse import quote, urlencode

from berth import errors
from berth.api.httpstatus import error_for
from berth.container import protocol as proto
from berth.container.stdio import Demuxer
from berth.errors import BerthError, InvalidArgument

API_PREFIX = "/v1.47"
CHUNK = 1 << 16


# -- transport -------------------------------------------------------------------------------

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None):
        super().__init__("localhost", timeout=timeout, blocksize=CHUNK)
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


class _ChunkWriter:
    """A file to write a request body to, sent as HTTP/1.1 chunks as it is written."""

    def __init__(self, conn: http.client.HTTPConnection):
        self.conn = conn

    def write(self, data) -> int:
        if data:
            self.conn.send(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
        return len(data)

    def flush(self) -> None:
        pass


def _raise_for(status: int, reason: str, data: bytes) -> NoReturn:
    """The daemon's error answer as the berth.errors category it stands for."""
    try:
        message = json.loads(data)["message"]
    except (ValueError, KeyError, TypeError):
        message = data.decode("utf-8", "replace").strip() or reason
    raise error_for(status, message)


def _in_band_error(message: dict) -> BerthError:
    return BerthError(message["error"])


class Transport:
    """One request per connection over the daemon's unix socket."""

    def __init__(self, host: str, timeout: float | None = None):
        if not host.startswith("unix://"):
            raise InvalidArgument(f"unsupported daemon address {host!r}: use unix:///path")
        self.path = host[len("unix://"):]
        self.timeout = timeout

    @staticmethod
    def url(path: str, query: dict | None) -> str:
        return API_PREFIX + path + ("?" + urlencode(_clean(query), doseq=True) if query else "")

    def open(self, method: str, path: str, *, query: dict | None = None, body: Any = None,
             headers: dict | None = None):
        """The response (status checked), still open for streaming; the caller closes it.

        `body`: bytes, a dict or list (sent as JSON), a stream to read (sent
        in chunks), or a function that writes the body to the file it is given.
        """
        conn = _UnixConnection(self.path, self.timeout)
        url = self.url(path, query)
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            if callable(body):
                conn.putrequest(method, url, skip_accept_encoding=True)
                for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
                    conn.putheader(name, value)
                conn.endheaders()
                body(_ChunkWriter(conn))
                conn.send(b"0\r\n\r\n")
            else:
                conn.request(method, url, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon stopped reading: its answer says why
        except BaseException:
            conn.close()
            raise
        try:
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise errors.Unavailable(f"the daemon closed the connection: {e}") from None
        if response.status >= 400:
            data = response.read()
            conn.close()
            _raise_for(response.status, response.reason, data)
        response.connection = conn
        return response

    def hijack(self, path: str, *, query: dict | None = None, body: dict | None = None) -> socket.socket:
        """POST (with a JSON body) and an upgrade to a raw stream; the socket,
        positioned after the response head.

        Written by hand rather than with http.client, whose buffered reader
        would swallow the first bytes of the stream.
        """
        data = json.dumps(body).encode() if body is not None else b""
        conn = _UnixConnection(self.path, self.timeout)
        conn.connect()
        sock = conn.sock
        try:
            sock.sendall(f"POST {self.url(path, query)} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                         f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                         .encode() + data)
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
                answer = b""
                while len(answer) < length:
                    more = sock.recv(length - len(answer))
                    if not more:
                        break
                    answer += more
                _raise_for(status, "", answer)
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

    def copy(self, method: str, path: str, out, **kwargs) -> None:
        """Write the response's body to the file `out` (an export, a save, an archive)."""
        response = self.open(method, path, **kwargs)
        try:
            shutil.copyfileobj(response, out, CHUNK)
        finally:
            response.connection.close()

    def lines(self, method: str, path: str, *, error: Callable[[dict], BerthError] = _in_band_error,
              **kwargs) -> Iterator[dict]:
        """A JSON message stream, one object at a time; an in-band error is raised (as `error` makes it)."""
        response = self.open(method, path, **kwargs)
        try:
            for line in response:
                if not line.strip():
                    continue
                message = json.loads(line)
                if isinstance(message, dict) and message.get("error"):
                    raise error(message)
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
        # Stand-ins for the container-side modules `cp` and `stats` call.
        self.archive = RemoteArchive(transport)
        self.stats = RemoteStats(transport)

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

    # -- exec ---------------------------------------------------------------------------------

    def exec(self, ref: str, cmd: list[str], *, tty: bool = False, env: list[str] = (), user: str = "",
             workdir: str = "", privileged: bool = False, detach: bool = False, stdio=None,
             console_socket: str | None = None) -> int:
        """Run a process in a running container (docker exec): its exit code (0 when detached).

        Without a terminal the process reads stdio.stdin and writes to
        stdio.stdout and stdio.stderr (descriptors; None: nothing).  With
        one, the caller receives a pty master over `console_socket`, as from
        a runtime; its other end is relayed to the daemon's terminal.
        """
        from berth.runtime.interface import Stdio
        stdio = stdio or Stdio()
        attach = not detach
        try:
            exec_id = self.http.call("POST", f"/containers/{_q(ref)}/exec", body={
                "Cmd": list(cmd), "Tty": tty, "AttachStdin": attach and (tty or stdio.stdin is not None),
                "AttachStdout": attach, "AttachStderr": attach, "Env": list(env), "User": user,
                "WorkingDir": workdir, "Privileged": privileged})["Id"]
            start = {"Detach": detach, "Tty": tty}
            size = _terminal_size() if console_socket else (0, 0)
            if all(size):
                start["ConsoleSize"] = list(size)
            if detach:
                self.http.call("POST", f"/exec/{exec_id}/start", body=start)
                return 0
            sock = self.http.hijack(f"/exec/{exec_id}/start", body=start)
        except BaseException:
            if console_socket:
                try:
                    _hand_over(console_socket, None)   # the caller stops waiting for a terminal
                except OSError:
                    pass
            raise
        with sock:
            if console_socket:
                _relay_terminal(sock, console_socket, size,
                                lambda rows, cols: self._resize_exec(exec_id, rows, cols))
            else:
                _relay_pipes(sock, stdio)
        code = self.http.call("GET", f"/exec/{exec_id}/json")["ExitCode"]
        return 0 if code is None else code      # None: detached from a process still running

    def _resize_exec(self, exec_id: str, rows: int, cols: int) -> None:
        try:
            self.http.call("POST", f"/exec/{exec_id}/resize", query={"h": rows, "w": cols})
        except BerthError:
            pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _terminal_size() -> tuple[int, int]:
    """(rows, columns) of the terminal on standard output, as the docker CLI sends its ConsoleSize."""
    try:
        columns, lines = os.get_terminal_size(1)
    except OSError:
        return 0, 0
    return lines, columns


def _hand_over(console_socket: str, master: int | None) -> None:
    """Send the pty master over the console socket, as a runtime does; None: none (a failure)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(console_socket)
        socket.send_fds(conn, [b"\0"], [master] if master is not None else [])


def _relay_pipes(sock: socket.socket, stdio) -> None:
    """An exec's multiplexed stream to stdio's descriptors, stdin (if any) to the stream."""
    def pump_stdin() -> None:
        try:
            while data := os.read(stdio.stdin, CHUNK):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    if stdio.stdin is not None:
        threading.Thread(target=pump_stdin, daemon=True, name="berth-exec-stdin").start()
    else:
        sock.shutdown(socket.SHUT_WR)
    demux = Demuxer()
    while data := sock.recv(CHUNK):
        for kind, payload in demux.feed(data):
            fd = stdio.stdout if kind == proto.STDOUT else stdio.stderr
            if fd is not None:
                _write_all(fd, payload)


def _relay_terminal(sock: socket.socket, console_socket: str, size: tuple[int, int],
                    resize: Callable[[int, int], None]) -> None:
    """Stand in for the daemon's terminal: hand the caller the master of a
    local pty in raw mode (it passes bytes through unchanged), `size` (rows,
    columns) as the daemon's has, and copy between its other end and the
    stream, passing on window size changes, until the process ends (the
    stream closes) or the caller closes the master (a detach)."""
    import fcntl
    import select
    import struct
    import termios
    import tty as ttymod

    master, slave = os.openpty()
    try:
        ttymod.setraw(slave)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        _hand_over(console_socket, master)
    except BaseException:
        os.close(slave)
        raise
    finally:
        os.close(master)      # the caller holds its own copy
    poller = select.poll()
    poller.register(slave, select.POLLIN)
    poller.register(sock, select.POLLIN)
    try:
        while True:
            columns, lines = os.get_terminal_size(slave)
            if (lines, columns) != size and lines and columns:
                size = (lines, columns)
                resize(lines, columns)
            for fd, _ in poller.poll(250):
                if fd == slave:
                    try:
                        data = os.read(slave, CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    sock.sendall(data)
                else:
                    data = sock.recv(CHUNK)
                    if not data:
                        return
                    _write_all(slave, data)
    finally:
        os.close(slave)


class RemoteArchive:
    """What `cp` calls of berth.container.archive (stat_path, archive_path,
    extract_to_dir), with the same signatures, over /containers/{id}/archive;
    their `manager` argument is unused (the daemon has the containers)."""

    def __init__(self, transport: Transport):
        self.http = transport

    def stat_path(self, manager, ref: str, path: str):
        response = self.http.open("HEAD", f"/containers/{_q(ref)}/archive", query={"path": path})
        response.connection.close()
        return _path_stat(response)

    @contextmanager
    def archive_path(self, manager, ref: str, path: str):
        response = self.http.open("GET", f"/containers/{_q(ref)}/archive", query={"path": path})
        try:
            yield _path_stat(response), response
        finally:
            response.connection.close()

    def extract_to_dir(self, manager, ref: str, path: str, content, *, copy_uid_gid: bool = False,
                       allow_overwrite_dir_with_file: bool = False) -> None:
        """`content`: a tar stream to read, or a function writing the tar to the file it is given."""
        self.http.call("PUT", f"/containers/{_q(ref)}/archive", body=content, headers=_TAR, query={
            "path": path, "copyUIDGID": copy_uid_gid, "noOverwriteDirNonDir": not allow_overwrite_dir_with_file})


def _path_stat(response):
    """The X-Docker-Container-Path-Stat header as archive.PathStat."""
    from berth.container.archive import PathStat
    d = json.loads(base64.b64decode(response.getheader("X-Docker-Container-Path-Stat") or "e30="))
    return PathStat(d.get("name", ""), d.get("size", 0), _st_mode(d.get("mode", 0)),
                    int(_parse_time(d.get("mtime", "")) * 1e9), d.get("linkTarget", ""))


def _st_mode(go_mode: int) -> int:
    """A Go os.FileMode (the header's mode) as st_mode: archive.go_file_mode's inverse."""
    from berth.container.archive import go_file_mode
    kinds = (stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK)
    kind = next((k for k in kinds if go_mode & go_file_mode(k) == go_file_mode(k)), stat.S_IFREG)
    special = sum(bit for bit in (stat.S_ISUID, stat.S_ISGID, stat.S_ISVTX)
                  if go_mode & go_file_mode(stat.S_IFREG | bit))
    return kind | special | go_mode & 0o777


class RemoteStats:
    """What `stats` calls of berth.container.stats (sample), over GET /containers/{id}/stats."""

    def __init__(self, transport: Transport):
        self.http = transport

    def sample(self, c):
        from berth.container.stats import ZERO_TIME, Sample
        r = self.http.call("GET", f"/containers/{c.id}/stats", query={"stream": False, "one-shot": True})
        if r["read"] == ZERO_TIME:
            return None     # not running
        return Sample(int(_parse_time(r["read"]) * 1e9), r["cpu_stats"], r["memory_stats"], r["pids_stats"],
                      r["blkio_stats"], r.get("networks") or {})


class RemoteFilesystems:
    """The engine's container filesystems and processes (diff, export, top, commit)."""

    def __init__(self, transport: Transport):
        self.http = transport

    def changes(self, ref: str) -> list[tuple[str, str]]:
        return [(_CHANGE_SYMBOLS.get(c["Kind"], "C"), c["Path"])
                for c in self.http.call("GET", f"/containers/{_q(ref)}/changes") or []]

    def export(self, ref: str, out) -> None:
        self.http.copy("GET", f"/containers/{_q(ref)}/export", out)

    def top(self, ref: str, ps_args: str = "-ef") -> dict:
        return self.http.call("GET", f"/containers/{_q(ref)}/top", query={"ps_args": ps_args})

    def commit(self, ref: str, *, repository: str | None = None, changes: list[str] = (), message: str = "",
               author: str = "", pause: bool = True):
        created = self.http.call("POST", "/commit", query={
            "container": ref, **_repo_tag(repository), "changes": list(changes), "comment": message or None,
            "author": author or None, "pause": pause})
        return _ImageRef(created["Id"])


_CHANGE_SYMBOLS = {0: "C", 1: "A", 2: "D"}
_TAR = {"Content-Type": "application/x-tar"}


def _repo_tag(name: str | None) -> dict:
    """A REPOSITORY[:TAG] as the API's repo and tag parameters."""
    if not name:
        return {}
    from berth.image.reference import parse_normalized_named
    ref = parse_normalized_named(name)
    return {"repo": ref.familiar_name, "tag": ref.tag}


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
        self.http.call("POST", f"/images/{_q(source)}/tag", query=_repo_tag(target))

    def remove(self, name: str, *, force: bool = False, prune: bool = True) -> list[dict]:
        return self.http.call("DELETE", f"/images/{_q(name)}", query={"force": force, "noprune": not prune})

    def prune(self, *, all: bool = False, filters: dict | None = None):
        from berth.engine.images import PruneReport
        wanted = dict(filters or {})
        if all:
            wanted["dangling"] = ["false"]
        report = self.http.call("POST", "/images/prune", query={"filters": wanted or None})
        return PruneReport(report.get("ImagesDeleted") or [], report.get("SpaceReclaimed", 0))

    def save(self, names: list[str], out) -> None:
        self.http.copy("GET", "/images/get", out, query={"names": list(names)})

    def load(self, src) -> list[str]:
        return [m["stream"].rstrip("\n") for m in self.http.lines("POST", "/images/load", body=src, headers=_TAR)
                if m.get("stream", "").strip()]

    def import_image(self, source: str, *, stdin=None, repository: str | None = None, changes: list[str] = (),
                     message: str = ""):
        """A file or `-` is sent as the body (fromSrc=-); the daemon fetches a URL itself."""
        query = {"fromSrc": source, **_repo_tag(repository), "changes": list(changes), "message": message or None}
        if source.startswith(("http://", "https://")):
            return self._imported(query, None)
        if source == "-":
            if stdin is None:
                raise InvalidArgument("no standard input to read the archive from")
            return self._imported(query, stdin)
        try:
            with open(source, "rb") as f:
                return self._imported(dict(query, fromSrc="-"), f)
        except FileNotFoundError:
            raise errors.NotFound(f"open {source}: no such file or directory") from None
        except IsADirectoryError:
            raise InvalidArgument(f"{source} is a directory, not an archive") from None

    def _imported(self, query: dict, body):
        image_id = None
        for message in self.http.lines("POST", "/images/create", query=query, body=body, headers=_TAR):
            image_id = message.get("status", image_id)
        return _ImageRef(image_id)

    def insert(self, name: str, source: str, path: str, *, stdin=None):
        raise _not_remote("insert")

    def sweep(self) -> list[str]:
        raise _not_remote("system check --repair")


def _not_remote(what: str) -> InvalidArgument:
    return InvalidArgument(f"{what} is not supported with -H: the Engine API has no request for it")


@dataclass
class _ImageRef:
    id: str


@dataclass
class _Pulled:
    reference: str


class RemoteRegistry:
    """Pull and push run in the daemon with the client's stored login (sent as
    X-Registry-Auth); logins are checked by the daemon (POST /auth) and kept
    on the client, as the docker CLI keeps them."""

    def __init__(self, transport: Transport, images: RemoteImages):
        self.http = transport
        self.images = images

    @cached_property
    def _logins(self):
        """The client's own credentials (config.json and helpers under DOCKER_CONFIG)."""
        from berth.engine.registry import RegistryService
        return RegistryService(store=None)

    def _auth(self, domain: str) -> dict:
        from berth.registry.credentials import server_address
        creds = self._logins.credentials.get(domain)
        if creds is None or creds.empty:
            return {}
        config = ({"identitytoken": creds.identity_token} if creds.identity_token
                  else {"username": creds.username, "password": creds.password})
        config["serveraddress"] = server_address(domain)
        return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(config).encode()).decode()}

    def _messages(self, path: str, ref, query: dict, progress) -> Iterator[dict]:
        """A pull's or push's messages: progress reported, the rest (aux) yielded."""
        from berth.registry.progress import Progress
        for message in self.http.lines("POST", path, query=query, headers=self._auth(ref.domain)):
            if "status" in message:
                if progress is not None:
                    detail = message.get("progressDetail") or {}
                    progress(Progress(message["status"], message.get("id", ""), detail.get("current", 0),
                                      detail.get("total", 0)))
            else:
                yield message

    def pull(self, name: str, *, platform: str | None = None, all_tags: bool = False, progress=None):
        from berth.image.reference import parse
        ref = parse(name)
        tag = ref.digest or ref.tag or ("" if all_tags else "latest")
        for _ in self._messages("/images/create", ref, {"fromImage": ref.name, "tag": tag or None,
                                                        "platform": platform}, progress):
            pass
        return [_Pulled(str(ref.tagged_or_latest()) if not all_tags else ref.name)]

    def push(self, name: str, *, all_tags: bool = False, progress=None):
        from berth.image.reference import parse
        from berth.registry.push import PushResult
        ref = parse(name)
        tag = ref.digest or ref.tag or (None if all_tags else "latest")
        return [PushResult(ref.with_tag(aux["Tag"]), aux.get("Digest", ""), aux.get("Size", 0))
                for aux in (m.get("aux") for m in self._messages(f"/images/{_q(ref.name)}/push", ref,
                                                                 {"tag": tag}, progress))
                if aux and aux.get("Tag")]

    def stored_credentials(self, server: str | None):
        return self._logins.stored_credentials(server)

    def login(self, server: str | None, credentials):
        from berth.engine.registry import LoginOutcome
        from berth.registry.credentials import domain_of_server, server_address
        domain = domain_of_server(server or "")
        self.http.call("POST", "/auth", body={"username": credentials.username, "password": credentials.password,
                                              "identitytoken": credentials.identity_token,
                                              "serveraddress": server_address(domain)})
        store = self._logins.credentials
        helper = store.helper_for(domain)
        return LoginOutcome(server_address(domain), store.store(domain, credentials), helper is not None)

    def logout(self, server: str | None) -> tuple[str, bool]:
        return self._logins.logout(server)

    def search(self, term: str, *, limit: int = 25, filters=None):
        from berth.registry.search import SearchOutcome, SearchResult, split_term
        found = self.http.call("GET", "/images/search", query={"term": term, "limit": limit,
                                                               "filters": dict(filters) if filters else None},
                               headers=self._auth(split_term(term)[0]))
        return SearchOutcome(split_term(term)[0], [
            SearchResult(r["name"], r.get("description") or "", r.get("star_count", 0),
                         bool(r.get("is_official")), bool(r.get("is_automated"))) for r in found or []],
            from_catalog=False)

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

    def port(self, container: str, private: str | None = None) -> list[str]:
        """`docker port`, from the container's published ports as inspect shows them."""
        from berth.network.ports import parse_port_key, port_lines
        from berth.network.store import PortMapping
        d = self.http.call("GET", f"/containers/{_q(container)}/json")
        mappings = [PortMapping(d["Id"], proto_, port, b.get("HostIp", ""), int(b["HostPort"]))
                    for key, bindings in ((d.get("NetworkSettings") or {}).get("Ports") or {}).items()
                    for port, proto_ in [parse_port_key(key)] for b in bindings or [] if b.get("HostPort")]
        lines = port_lines(mappings, private)
        if private and not lines and (d.get("State") or {}).get("Running"):
            key = private if "/" in private else f"{private}/tcp"
            raise errors.NotFound(f"No public port '{key}' published for {container}")
        return lines


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

    def disk_usage(self, containers_using=None) -> dict:
        """`system df`'s image figures from GET /system/df.  What active images
        use counts their own layers and, once, the largest part they share
        with others (exact when they share one base, as usual)."""
        df = self.http.call("GET", "/system/df")
        images = df.get("Images") or []
        active = [i for i in images if i.get("Containers", 0) > 0]
        shared = [max(0, i.get("SharedSize", 0)) for i in active]
        used = sum(i["Size"] for i in active) - sum(shared) + max(shared, default=0)
        return {"LayersSize": df.get("LayersSize", 0), "Images": images, "ActiveImages": len(active),
                "ReclaimableImages": max(0, df.get("LayersSize", 0) - used)}

    def check(self):
        raise _not_remote("system check")


# -- build ----------------------------------------------------------------------------------------

class RemoteBuildContext:
    """A build context on its way to the daemon: what the CLI needs of a
    BuildContext (size, close) and what POST /build takes (the tar, the
    Dockerfile's name in it)."""

    def __init__(self, body, dockerfile: str | None, size: int, cleanup: Callable[[], None] = lambda: None):
        self.body = body            # a stream, or a function writing the tar to the file it is given
        self.dockerfile = dockerfile
        self.size = size
        self._cleanup = cleanup

    def close(self) -> None:
        self._cleanup()


class RemoteBuild:
    def __init__(self, transport: Transport):
        self.http = transport

    def context_from_directory(self, path: str, dockerfile: str | None = None,
                               dockerfile_text: str | None = None) -> RemoteBuildContext:
        """The directory as the docker CLI sends it: filtered by .dockerignore,
        owned by root, the Dockerfile added under a name of its own when it
        is not the context's file (from elsewhere, or from stdin)."""
        from berth.build.context import context_from_directory
        context = context_from_directory(path, dockerfile, dockerfile_text)
        tree, name = context.tree, context.dockerfile_name
        extra = None
        if not _holds(tree, name, context.dockerfile):
            name, extra = f".dockerfile.{os.urandom(10).hex()}", context.dockerfile.encode()
        return RemoteBuildContext(lambda out: _write_context(tree, out, name, extra), name, context.size)

    def context_from_stream(self, stream, dockerfile: str | None = None) -> RemoteBuildContext:
        """A tar or a lone Dockerfile, as given (spooled first, to know its size)."""
        import tempfile
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - the context owns it: close() closes it
        try:
            shutil.copyfileobj(stream, spool, CHUNK)
            size = spool.tell()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return RemoteBuildContext(spool, dockerfile, size, spool.close)

    def build(self, context: RemoteBuildContext, options, out: Callable[[bytes], None]):
        """Docker's build output goes to `out` as the daemon streams it; a
        failed step is raised as BuildFailed with the code the daemon gives."""
        from berth.build.builder import BuildResult
        if options.ca_bundle:
            raise InvalidArgument("--ca-bundle and --host-ca are not supported with -H: the daemon's host "
                                  "decides what RUN steps trust")
        query = {"t": list(options.tags), "dockerfile": context.dockerfile,
                 "buildargs": dict(options.build_args) or None, "labels": dict(options.labels) or None,
                 "target": options.target, "nocache": options.no_cache, "rm": options.remove,
                 "forcerm": options.force_remove, "pull": options.pull or None,
                 "networkmode": options.network_mode, "extrahosts": ",".join(options.extra_hosts) or None,
                 "platform": options.platform}
        if options.resources:
            from berth.build.builder import RESOURCE_PARAMS
            for name, value in options.resources.items():
                query[RESOURCE_PARAMS[name]] = json.dumps(value) if name == "Ulimits" else value
        image_id = ""
        for message in self.http.lines("POST", "/build", query=query, body=context.body, headers=_TAR,
                                       error=_build_failure):
            if "stream" in message:
                out(message["stream"].encode())
            elif (message.get("aux") or {}).get("ID"):
                image_id = message["aux"]["ID"]
        return BuildResult(image_id, list(options.tags))


def _build_failure(message: dict) -> BerthError:
    from berth.build.builder import BuildFailed
    return BuildFailed(message["error"], (message.get("errorDetail") or {}).get("code") or 1)


def _holds(tree, name: str, text: str) -> bool:
    """Whether the context's file `name` is the Dockerfile `text`."""
    entry = tree.lookup(name)
    if entry is None or entry.kind != "file":
        return False
    with tree.open(name) as f:
        return f.read().decode("utf-8", "replace") == text


def _write_context(tree, out, dockerfile_name: str, dockerfile: bytes | None) -> None:
    """The context's entries as a tar, owned by root as the docker CLI sends
    them, plus the Dockerfile when it is not one of them."""
    import io
    import tarfile
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in tree.walk(""):
            entry = tree.lookup(rel)
            if not rel or entry.kind == "socket":
                continue
            ti = tarfile.TarInfo(rel)
            ti.type, ti.mode, ti.mtime = entry.typeflag().encode(), entry.mode, entry.mtime_ns // 10**9
            ti.linkname = entry.linkname
            if entry.rdev:
                ti.devmajor, ti.devminor = os.major(entry.rdev), os.minor(entry.rdev)
            if entry.kind == "file":
                ti.size = entry.size
                with tree.open(rel) as f:
                    tar.addfile(ti, f)
            else:
                tar.addfile(ti)
        if dockerfile is not None:
            ti = tarfile.TarInfo(dockerfile_name)
            ti.size, ti.mode = len(dockerfile), 0o600
            tar.addfile(ti, io.BytesIO(dockerfile))


class RemoteEngine:
    """An Engine whose services live in a daemon (see the module's docstring)."""

    def __init__(self, host: str):
        self.transport = Transport(host)
        self.containers = RemoteContainers(self.transport)
        self.filesystems = RemoteFilesystems(self.transport)
        self.images = RemoteImages(self.transport)
        self.registry = RemoteRegistry(self.transport, self.images)
        self.volumes = RemoteVolumes(self.transport)
        self.networks = RemoteNetworks(self.transport)
        self.system = RemoteSystem(self.transport)
        self.build = RemoteBuild(self.transport)

    def containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(container ID, running) of every container created from the image."""
        return [(s.id, s.state == "running") for s in self.containers.list(all=True) if s.image_id == image_id]

    def close(self) -> None:
        pass
