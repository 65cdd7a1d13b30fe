"""The per-container supervisor: berth's conmon.

One small process per running container.  It outlives the command that
started it, makes itself the child subreaper so the container's init is its
child, holds the container's stdio (pipes or the pty master), writes the
json-file log, serves attach clients on a unix socket, records the exit code
and finish time, applies the restart policy, and removes `--rm` containers.
For its whole life it holds an exclusive lock on the container's
`supervisor.lock`: a free lock with a record that says running means the
supervisor died, which `reconcile` notices.

Started as `python -m berth.container.supervisor ROOT ID READY_FD [--attach-first]`.
It reports on READY_FD: `listening` (with --attach-first, before the first
client attaches), then `started PID` or `failed KIND MESSAGE`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time
from pathlib import Path

from berth.container import protocol as proto
from berth.container.logs import JsonFileOptions, JsonFileWriter
from berth.container.paths import ContainerPaths
from berth.container.record import ZERO_TIME
from berth.container.runtimes import runtime_for
from berth.container.states import Event, Status
from berth.container.store import ContainerStore
from berth.container.events import emit_container_event
from berth.errors import BerthError, CommandNotFound, NotExecutable
from berth.runtime.interface import ConsoleSocket, Stdio, set_child_subreaper
from berth.store.db import Database
from berth.store.events import EventLog

READ_SIZE = 65536
# After init exits, output still buffered in pipes is drained for at most this long.
DRAIN_SECONDS = 2.0
FIRST_ATTACH_TIMEOUT = 60.0
# Docker's restart backoff: 100 ms doubling, capped at one minute.
BACKOFF_START, BACKOFF_MAX = 0.1, 60.0


def rfc3339_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.demux = proto.Demuxer()
        self.hello: dict | None = None

    def wants(self, stream: int) -> bool:
        return bool(self.hello) and self.hello.get({1: "stdout", 2: "stderr"}[stream], False)

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False


class Supervisor:
    def __init__(self, root: Path, container_id: str, ready_fd: int, attach_first: bool):
        self.root = root
        self.paths = ContainerPaths(root, container_id)
        self.id = container_id
        self.ready_fd = ready_fd
        self.attach_first = attach_first
        # Only what an idle supervisor needs is loaded: it lives as long as its
        # container, one per container, so its memory is the engine's overhead.
        self.db = Database(root / "berth.db")
        self.events = EventLog(root)
        self.store = ContainerStore(self.db)
        self.container = self.store.get(container_id)
        self.tty = bool(self.container.config.get("Tty"))
        self.open_stdin = bool(self.container.config.get("OpenStdin"))
        self.stdin_once = bool(self.container.config.get("StdinOnce"))
        self.runtime = runtime_for(self.container.host_config.get("Runtime"), self.paths.runtime_root)
        log_opts = JsonFileOptions.from_log_opts(
            (self.container.host_config.get("LogConfig") or {}).get("Config") or {})
        self.log = JsonFileWriter(self.paths.log, max_size=log_opts.max_size,
                                  max_file=log_opts.max_file, compress=log_opts.compress)
        self.sel = selectors.DefaultSelector()
        self.clients: list[Client] = []
        self.pending: dict[int, Client] = {}
        self.init_pid = 0
        self.init_status: int | None = None
        self.outputs: dict[int, int] = {}  # fd -> stream id
        self.stdin_fd: int | None = None
        self.master_fd: int | None = None

    # -- reporting ------------------------------------------------------------

    def report(self, line: str) -> None:
        if self.ready_fd < 0:
            return
        try:
            os.write(self.ready_fd, (line + "\n").encode())
        except OSError:
            pass

    def close_report(self) -> None:
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1

    # -- main -----------------------------------------------------------------

    def run(self) -> int:
        set_child_subreaper()
        self.paths.run.mkdir(parents=True, exist_ok=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock_path = str(self.paths.attach_socket)
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        self.server.bind(sock_path)
        os.chmod(sock_path, 0o600)
        self.server.listen(16)
        self.sel.register(self.server, selectors.EVENT_READ, "accept")
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "signal")
        if self.attach_first:
            self.report("listening")
            self.wait_first_client()

        backoff = BACKOFF_START
        while True:
            started_at = time.monotonic()
            exit_code = self.run_once()
            if exit_code is None:  # could not start: already recorded
                break
            self.container = self.store.get(self.id)
            if not self.should_restart(exit_code):
                self.finish(exit_code)
                break
            count = self.container.state.get("RestartCount", 0) + 1
            self.store.transition(self.id, Event.RESTART, RestartCount=count, ExitCode=exit_code,
                                  FinishedAt=rfc3339_now(), Pid=0)
            emit_container_event(self.events, self.container, "die", exitCode=str(exit_code))
            self.broadcast_exit(exit_code)
            # A container that ran for a while restarts at once (Docker resets
            # the backoff after 10 s of running).
            backoff = BACKOFF_START if time.monotonic() - started_at > 10 else min(backoff * 2, BACKOFF_MAX)
            if self.sleep_unless_stopped(backoff):
                self.finish(exit_code)
                break
        return 0

    def wait_first_client(self) -> None:
        deadline = time.monotonic() + FIRST_ATTACH_TIMEOUT
        while not any(c.hello is not None for c in self.clients) and time.monotonic() < deadline:
            self.poll(0.5)

    def run_once(self) -> int | None:
        """Start the process, pump its stdio until it exits; its exit code."""
        try:
            self.start_process()
        except BerthError as e:
            code = 127 if isinstance(e, CommandNotFound) else 126 if isinstance(e, NotExecutable) else 128
            kind = type(e).__name__
            self.close_stdio()
            self.release()
            self.store.transition(self.id, Event.START, Pid=0)
            self.store.transition(self.id, Event.DIE, ExitCode=code, Error=str(e),
                                  FinishedAt=rfc3339_now())
            self.report(f"failed {kind} {e}")
            self.close_report()
            for c in self.clients:
                c.send(proto.failed(kind, str(e)))
            self.broadcast_exit(code)
            if self.container.host_config.get("AutoRemove"):
                self.remove()
            return None
        self.store.transition(self.id, Event.START, Pid=self.init_pid, StartedAt=rfc3339_now(),
                              ExitCode=0, Error="", OOMKilled=False, FinishedAt=ZERO_TIME)
        emit_container_event(self.events, self.container, "start")
        self.report(f"started {self.init_pid}")
        self.close_report()
        self.db.close()  # reopened at the exit; an idle supervisor holds no database
        for c in self.clients:
            c.send(proto.frame(proto.STARTED, str(self.init_pid).encode()))
        self.pump()
        self.oom_killed = _oom_killed(self.paths.bundle)  # read before delete removes the cgroup
        if self.oom_killed:
            emit_container_event(self.events, self.container, "oom")
        try:
            # The runtime's record of this run must go before a restart creates the next.
            self.runtime.delete(self.id, force=True)
        except BerthError:
            pass
        status = self.init_status or 0
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code

    def start_process(self) -> None:
        self.init_status = None
        child_fds: list[int] = []
        try:
            if self.tty:
                with ConsoleSocket() as console:
                    self.init_pid = self.runtime.create(self.id, self.paths.bundle,
                                                        console_socket=console.path)
                    self.master_fd = console.receive()
                os.set_blocking(self.master_fd, False)
                self.outputs = {self.master_fd: proto.STDOUT}
                self.stdin_fd = self.master_fd
                self.apply_client_size()
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                child_fds += [out_w, err_w]
                stdin = None
                if self.open_stdin:
                    in_r, in_w = os.pipe2(os.O_CLOEXEC)
                    child_fds.append(in_r)
                    stdin, self.stdin_fd = in_r, in_w
                self.outputs = {out_r: proto.STDOUT, err_r: proto.STDERR}
                for fd in self.outputs:
                    os.set_blocking(fd, False)
                self.init_pid = self.runtime.create(
                    self.id, self.paths.bundle, stdio=Stdio(stdin=stdin, stdout=out_w, stderr=err_w))
            self.runtime.start(self.id)
        finally:
            for fd in child_fds:
                os.close(fd)
        for fd in self.outputs:
            self.sel.register(fd, selectors.EVENT_READ, "output")

    # -- the event loop ---------------------------------------------------------

    def pump(self) -> None:
        drain_deadline = None
        while True:
            if self.init_status is not None:
                if not self.outputs:
                    break
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + DRAIN_SECONDS
                elif time.monotonic() > drain_deadline:
                    break
            self.poll(0.2 if self.init_status is not None else None)
        for fd in list(self.outputs):
            self.close_output(fd)
        self.close_stdio()

    def poll(self, timeout: float | None) -> None:
        for key, _ in self.sel.select(timeout):
            what = key.data
            if what == "output":
                self.on_output(key.fd)
            elif what == "accept":
                self.on_accept()
            elif what == "signal":
                self.on_signal()
            else:
                self.on_client(what)

    def on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                raise
            data = b""
        if not data:
            self.close_output(fd)
            return
        stream = self.outputs[fd]
        self.log.write("stdout" if stream == proto.STDOUT else "stderr", data)
        payload = proto.frame(stream, data)
        for c in list(self.clients):
            if c.wants(stream) and not c.send(payload):
                self.drop(c)

    def close_output(self, fd: int) -> None:
        if fd in self.outputs:
            stream = self.outputs.pop(fd)
            self.sel.unregister(fd)
            if fd != self.master_fd:
                os.close(fd)
            # Each stream ends on its own: its unfinished last line is logged now.
            self.log.flush_partial("stdout" if stream == proto.STDOUT else "stderr")

    def close_stdio(self) -> None:
        for fd in {self.stdin_fd, self.master_fd} - {None}:
            try:
                os.close(fd)
            except OSError:
                pass
        self.stdin_fd = self.master_fd = None

    def on_accept(self) -> None:
        sock, _ = self.server.accept()
        client = Client(sock)
        self.clients.append(client)
        self.sel.register(sock, selectors.EVENT_READ, client)

    def on_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        for kind, payload in client.demux.feed(data):
            if kind == proto.HELLO:
                client.hello = json.loads(payload)
                if self.tty and self.master_fd is not None:
                    self.apply_client_size()
            elif kind == proto.STDIN and self.stdin_fd is not None and client.hello.get("stdin"):
                try:
                    os.write(self.stdin_fd, payload)
                except OSError:
                    pass
            elif kind == proto.STDIN_EOF and client.hello.get("stdin"):
                if self.stdin_once and not self.tty and self.stdin_fd is not None:
                    os.close(self.stdin_fd)
                    self.stdin_fd = None
            elif kind == proto.RESIZE and self.master_fd is not None:
                rows, cols = (int(x) for x in payload.split())
                _set_winsize(self.master_fd, rows, cols)

    def drop(self, client: Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            self.sel.unregister(client.sock)
            client.sock.close()
            if (client.hello or {}).get("stdin") and self.stdin_once and not self.tty \
                    and self.stdin_fd is not None:
                os.close(self.stdin_fd)
                self.stdin_fd = None

    def apply_client_size(self) -> None:
        for c in self.clients:
            if c.hello and c.hello.get("rows") and c.hello.get("cols"):
                _set_winsize(self.master_fd, c.hello["rows"], c.hello["cols"])
                return

    def on_signal(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self.init_status = status

    # -- after an exit ----------------------------------------------------------

    def should_restart(self, exit_code: int) -> bool:
        policy = self.container.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if self.container.state.get("ManuallyStopped") or self.container.host_config.get("AutoRemove"):
            return False
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            limit = policy.get("MaximumRetryCount") or 0
            return exit_code != 0 and (limit == 0 or self.container.state.get("RestartCount", 0) < limit)
        return False

    def sleep_unless_stopped(self, seconds: float) -> bool:
        """Wait out the restart backoff; True when `stop` was asked meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll(min(0.1, deadline - time.monotonic()))
            if self.store.get(self.id).state.get("ManuallyStopped"):
                return True
        return False

    def finish(self, exit_code: int) -> None:
        oom = getattr(self, "oom_killed", False)
        self.release()
        self.store.transition(self.id, Event.DIE, ExitCode=exit_code, FinishedAt=rfc3339_now(), Pid=0,
                              OOMKilled=oom)
        emit_container_event(self.events, self.container, "die", exitCode=str(exit_code))
        if self.container.host_config.get("AutoRemove"):
            self.remove()
            emit_container_event(self.events, self.container, "destroy")
        self.broadcast_exit(exit_code)
        self.close_report()

    def release(self) -> None:
        _full_environment()
        from berth.container.cleanup import release_resources  # loaded at the exit only
        from berth.store.state import State
        release_resources(State(self.root), self.container, self.runtime)

    def remove(self) -> None:
        _full_environment()
        from berth.container.cleanup import remove_container
        from berth.store.state import State
        remove_container(State(self.root), self.store, self.container, self.runtime, anonymous_volumes=True)

    def broadcast_exit(self, exit_code: int) -> None:
        for c in list(self.clients):
            c.send(proto.frame(proto.EXIT, str(exit_code).encode()))
            self.drop(c)


def command(root: Path, container_id: str, ready_fd: int, attach_first: bool) -> list[str]:
    """argv of a supervisor: a lean interpreter (-I -S: no site-packages at
    start) that loads only what an idle supervisor needs."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from berth.container.supervisor import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", code, str(root), container_id, str(ready_fd)] + (
        ["--attach-first"] if attach_first else [])


def _full_environment() -> None:
    """Bring site-packages in for the exit path (release hooks may need them)."""
    if sys.flags.no_site and not getattr(_full_environment, "done", False):
        import site
        site.main()
        _full_environment.done = True


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass


def _oom_killed(bundle: Path) -> bool:
    """Whether the kernel's OOM killer acted in the container's memory cgroup."""
    try:
        spec = json.loads((bundle / "config.json").read_text())
    except (OSError, ValueError):
        return False
    path = (spec.get("linux") or {}).get("cgroupsPath", "").strip("/")
    if not path:
        return False
    for f in (f"/sys/fs/cgroup/memory/{path}/memory.oom_control", f"/sys/fs/cgroup/{path}/memory.events"):
        try:
            with open(f) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        except OSError:
            continue
    return False


def main(argv: list[str]) -> int:
    root, container_id, ready_fd = Path(argv[0]), argv[1], int(argv[2])
    attach_first = "--attach-first" in argv[3:]
    # Detach from the starting command: it reaps the parent at once, and the
    # supervisor lives on in its own session.
    if os.fork():
        os._exit(0)
    paths = ContainerPaths(root, container_id)
    log_fd = os.open(paths.supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.dup2(log_fd, 2)
    lock_fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.write(ready_fd, b"failed Conflict the container already has a supervisor\n")
        return 1
    sup = Supervisor(root, container_id, ready_fd, attach_first)
    try:
        return sup.run()
    except BaseException as e:
        import traceback
        traceback.print_exc()
        sup.report(f"failed BerthError supervisor error: {e}")
        try:
            sup.release()
            c = sup.store.get(container_id)
            if c.status in (Status.RUNNING, Status.PAUSED):
                sup.store.transition(container_id, Event.DIE, ExitCode=255, Error=str(e),
                                     FinishedAt=rfc3339_now(), Pid=0)
        except Exception:  # noqa: BLE001 - best effort on the way down
            traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
