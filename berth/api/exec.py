"""/containers/{name}/exec and /exec/{id}: processes run in running containers.

Exec instances are the daemon's only state of its own: created by one
request, started by another (hijacked, with or without a terminal), then
inspected for the exit code.  The engine runs an exec synchronously, so a
worker thread runs it with pipes or a pty while the connection's thread
relays them to the client.
"""

from __future__ import annotations

import fcntl
import os
import select
import selectors
import struct
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from berth.api.routing import MULTIPLEXED_STREAM, RAW_STREAM, Hijack, Request, Response, Route, json_response
from berth.container.states import Status
from berth.container.stdio import STDERR, STDOUT, DetachScanner, frame, parse_detach_keys
from berth.errors import CommandNotFound, Conflict, InvalidArgument, NotExecutable, NotFound
from berth.runtime.interface import ConsoleSocket, Stdio

# Finished exec instances are kept this long for their inspect (moby keeps
# them until the container stops).
KEEP_FINISHED = 600
READ_SIZE = 1 << 16


class ExecBackend(Protocol):
    """The engine's ContainerManager: find a container, run a process in it."""

    def get(self, ref: str) -> Any: ...
    def exec(self, ref: str, cmd: list[str], *, tty: bool = False, env: list[str] = (), user: str = "",
             workdir: str = "", privileged: bool = False, detach: bool = False, stdio=None,
             console_socket: str | None = None, pid_file: str | None = None) -> int: ...


@dataclass
class ExecInstance:
    id: str
    container_id: str
    cmd: list[str]
    tty: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    env: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = ""
    privileged: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] = (0, 0)
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    finished_at: float = 0.0
    master_fd: int | None = None
    pid: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pid_file(self) -> str:
        """Where the runtime writes the process's PID once it runs."""
        return os.path.join(tempfile.gettempdir(), f"berth-exec-{self.id}.pid")

    def current_pid(self) -> int:
        if not self.pid and self.started:
            try:
                with open(self.pid_file) as f:
                    self.pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
        return self.pid

    def inspect(self) -> dict:
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0], "arguments": self.cmd[1:],
                                  "privileged": self.privileged, "user": self.user},
                "OpenStdin": self.stdin, "OpenStderr": self.stderr, "OpenStdout": self.stdout,
                "CanRemove": False, "ContainerID": self.container_id, "DetachKeys": self.detach_keys,
                "Pid": self.current_pid()}

    def resize(self, rows: int, cols: int) -> None:
        with self.lock:
            if self.master_fd is not None and rows and cols:
                fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class ExecStore:
    def __init__(self):
        self._lock = threading.Lock()
        self._execs: dict[str, ExecInstance] = {}

    def add(self, instance: ExecInstance) -> None:
        with self._lock:
            now = time.monotonic()
            for key in [k for k, e in self._execs.items()
                        if e.exit_code is not None and now - e.finished_at > KEEP_FINISHED]:
                del self._execs[key]
            self._execs[instance.id] = instance

    def get(self, exec_id: str) -> ExecInstance:
        with self._lock:
            found = self._execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return found


def _console_size(value) -> tuple[int, int]:
    if not value:
        return 0, 0
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v >= 0 for v in value)):
        raise InvalidArgument("ConsoleSize must be [height, width]")
    return value[0], value[1]


class ExecRouter:
    def __init__(self, containers: ExecBackend, store: ExecStore | None = None):
        self.containers = containers
        self.store = store or ExecStore()

    def routes(self) -> list[Route]:
        return [Route("POST", "/containers/{name}/exec", self.create),
                Route("POST", "/exec/{id}/start", self.start),
                Route("POST", "/exec/{id}/resize", self.resize),
                Route("GET", "/exec/{id}/json", self.inspect)]

    def create(self, req: Request):
        body = req.json(required=True)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list):
            raise InvalidArgument("No exec command specified")
        detach_keys = body.get("DetachKeys") or ""
        parse_detach_keys(detach_keys)  # reject a bad spec now, as dockerd does
        c = self.containers.get(req.params["name"])
        if c.status == Status.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.status != Status.RUNNING:
            raise Conflict(f"container {c.id} is not running")
        instance = ExecInstance(
            id=os.urandom(32).hex(), container_id=c.id, cmd=[str(a) for a in cmd], tty=bool(body.get("Tty")),
            stdin=bool(body.get("AttachStdin")), stdout=bool(body.get("AttachStdout")),
            stderr=bool(body.get("AttachStderr")), env=list(body.get("Env") or []), user=body.get("User") or "",
            workdir=body.get("WorkingDir") or "", privileged=bool(body.get("Privileged")),
            detach_keys=detach_keys, console_size=_console_size(body.get("ConsoleSize")))
        self.store.add(instance)
        return json_response({"Id": instance.id}, status=201)

    def inspect(self, req: Request):
        return json_response(self.store.get(req.params["id"]).inspect())

    def resize(self, req: Request):
        instance = self.store.get(req.params["id"])
        instance.resize(req.query.int("h", 0), req.query.int("w", 0))
        return Response(200, b"", content_type=None)

    def start(self, req: Request):
        instance = self.store.get(req.params["id"])
        body = req.json()
        with instance.lock:
            if instance.started:
                raise Conflict(f"Error: Exec command {instance.id} is already running" if instance.running
                               else f"Error: Exec command {instance.id} has already run")
            instance.started = instance.running = True
        if body.get("ConsoleSize"):
            instance.console_size = _console_size(body["ConsoleSize"])
        c = self.containers.get(instance.container_id)
        if c.status != Status.RUNNING:
            with instance.lock:
                instance.started = instance.running = False
            raise Conflict(f"container {c.id} is not running")
        if body.get("Detach"):
            threading.Thread(target=self._run_detached, args=(instance,), daemon=True,
                             name="berth-api-exec").start()
            return Response(200, b"", content_type=None)
        tty = instance.tty
        content_type = RAW_STREAM if tty or not req.version_at_least(1, 42) else MULTIPLEXED_STREAM
        return Hijack(lambda raw: self._session(instance, raw), content_type=content_type)

    # -- running ---------------------------------------------------------------------------

    def _run(self, instance: ExecInstance, stdio: Stdio | None, console: str | None) -> str | None:
        """Run the process to its end; the error message if it could not start."""
        message = None
        try:
            code = self.containers.exec(instance.container_id, instance.cmd, tty=instance.tty, env=instance.env,
                                        user=instance.user, workdir=instance.workdir,
                                        privileged=instance.privileged, stdio=stdio, console_socket=console,
                                        pid_file=instance.pid_file)
        except CommandNotFound as e:
            code, message = 127, str(e)
        except NotExecutable as e:
            code, message = 126, str(e)
        except Exception as e:  # noqa: BLE001 - reported to the client on its stream
            code, message = 126, str(e)
        instance.current_pid()      # Docker keeps reporting it after the exit
        try:
            os.unlink(instance.pid_file)
        except FileNotFoundError:
            pass
        with instance.lock:
            instance.exit_code = code
            instance.running = False
            instance.finished_at = time.monotonic()
        return message

    def _run_detached(self, instance: ExecInstance) -> None:
        """`exec -d`: no client; a terminal's output is read and dropped."""
        if not instance.tty:
            self._run(instance, Stdio(None, None, None), None)
            return
        with ConsoleSocket() as console:
            worker = threading.Thread(target=self._run, args=(instance, None, console.path), daemon=True,
                                      name="berth-api-exec")
            worker.start()
            master = self._receive_pty(console, worker)
        if master is not None:
            with instance.lock:
                instance.master_fd = master
            instance.resize(*instance.console_size)
            _drain_pty(instance, master)
        worker.join()

    @staticmethod
    def _receive_pty(console: ConsoleSocket, worker: threading.Thread) -> int | None:
        """The exec's pty master, or None when the exec ended without one (it failed)."""
        while worker.is_alive():
            try:
                return console.receive(timeout=0.2)
            except OSError:  # TimeoutError included: the process may not have started yet
                continue
        return None

    def _session(self, instance: ExecInstance, raw) -> None:
        if instance.tty:
            self._tty_session(instance, raw)
        else:
            self._pipe_session(instance, raw)

    def _pipe_session(self, instance: ExecInstance, raw) -> None:
        # Who closes what: the worker closes the process's ends once the
        # process has exited, the stdin pump closes the stdin pipe's write
        # end, this function the output pipes' read ends.
        theirs: list[int] = []
        outputs: dict[int, int] = {}        # read end -> stream id
        stdin_r = stdin_w = None
        ends = {STDOUT: None, STDERR: None}
        try:
            if instance.stdin:
                stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
                theirs.append(stdin_r)
            for wanted, stream in ((instance.stdout, STDOUT), (instance.stderr, STDERR)):
                if wanted:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    outputs[r] = stream
                    theirs.append(w)
                    ends[stream] = w
        except OSError:
            for fd in [*theirs, *outputs, *([stdin_w] if stdin_w is not None else [])]:
                os.close(fd)
            raise
        result: dict = {}

        def work() -> None:
            try:
                result["message"] = self._run(instance, Stdio(stdin_r, ends[STDOUT], ends[STDERR]), None)
            finally:
                for fd in theirs:
                    os.close(fd)

        worker = threading.Thread(target=work, daemon=True, name="berth-api-exec")
        worker.start()
        threading.Thread(target=self._pump_stdin, args=(instance, raw, stdin_w), daemon=True,
                         name="berth-api-exec-stdin").start()
        sel = selectors.DefaultSelector()
        try:
            for fd in outputs:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                for key, _ in sel.select():
                    data = os.read(key.fd, READ_SIZE)
                    if data:
                        raw.sendall(frame(outputs[key.fd], data))
                    else:
                        sel.unregister(key.fd)
            worker.join()
            if result.get("message"):
                raw.sendall(frame(STDOUT, (result["message"] + "\r\n").encode()))
        except OSError:
            pass  # the client went away; the process runs on without its output
        finally:
            sel.close()
            for fd in outputs:
                os.close(fd)

    def _pump_stdin(self, instance: ExecInstance, raw, stdin_w: int | None) -> None:
        """Client to process, until the client stops sending (half-close) or detaches."""
        scanner = DetachScanner(parse_detach_keys(instance.detach_keys))
        try:
            while True:
                data = raw.recv()
                if not data:
                    break
                if stdin_w is None:
                    continue  # not attached: only waiting for the client to finish
                data, detached = scanner.feed(data)
                if data:
                    _write_all(stdin_w, data)
                if detached:
                    break
        except OSError:
            pass
        finally:
            if stdin_w is not None:
                os.close(stdin_w)  # the process's stdin ends

    def _tty_session(self, instance: ExecInstance, raw) -> None:
        result: dict = {}
        with ConsoleSocket() as console:
            worker = threading.Thread(target=lambda: result.update(message=self._run(instance, None, console.path)),
                                      daemon=True, name="berth-api-exec")
            worker.start()
            master = self._receive_pty(console, worker)
        if master is None:
            worker.join()
            if result.get("message"):
                try:
                    raw.sendall((result["message"] + "\r\n").encode())
                except OSError:
                    pass
            return
        with instance.lock:
            instance.master_fd = master
        instance.resize(*instance.console_size)
        if self._relay_pty(instance, master, raw):
            worker.join()
        else:
            # The client left or detached: the process runs on, its output drained.
            threading.Thread(target=_drain_pty, args=(instance, master), daemon=True,
                             name="berth-api-exec-drain").start()
            return
        with instance.lock:
            instance.master_fd = None
        os.close(master)

    def _relay_pty(self, instance: ExecInstance, master: int, raw) -> bool:
        """Copy between the pty and the client; True when the process side ended."""
        scanner = DetachScanner(parse_detach_keys(instance.detach_keys))
        poller = select.poll()
        poller.register(master, select.POLLIN)
        client = raw.fileno()
        poller.register(client, select.POLLIN)
        reading_client = True
        try:
            while True:
                ready = [(client, select.POLLIN)] if raw.pending else poller.poll()
                for fd, events in ready:
                    if fd == master:
                        try:
                            data = os.read(master, READ_SIZE)
                        except OSError:
                            data = b""  # EIO: everything holding the pty's other end exited
                        if not data:
                            return True
                        raw.sendall(data)
                    elif events & select.POLLHUP:
                        return False  # the client closed the whole connection
                    elif reading_client:
                        data = raw.recv()
                        if not data:
                            # Half-close: no more input, but keep watching for the hang-up.
                            reading_client = False
                            poller.modify(client, select.POLLHUP)
                            continue
                        data, detached = scanner.feed(data)
                        if data:
                            _write_all(master, data)
                        if detached:
                            return False
        except OSError:
            return False


def _drain_pty(instance: ExecInstance, master: int) -> None:
    try:
        while os.read(master, READ_SIZE):
            pass
    except OSError:
        pass
    with instance.lock:
        instance.master_fd = None
    os.close(master)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
