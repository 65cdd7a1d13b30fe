"""A container's stdio and attach clients, and the supervisor's idle phase.

`Pump` is the supervisor's event loop: it copies the container's output to
the json-file log and to attach clients, feeds their stdin to the
container, applies terminal sizes, accepts new clients, and reaps children
(the supervisor is the container's subreaper) until init exits.  For a
container with a HEALTHCHECK it also keeps the probe timer: when a probe
is due it spawns berth.container.health, a short-lived process of its own
that runs the check and records the result, and reaps it (see `arm_health`).

A supervisor lives as long as its container, one per container, so what it
holds while the container merely runs is berth's memory cost per
container.  The code that starts and ends a container (the database, the
OCI runtime wrapper, cleanup) needs far more than this loop, so the
supervisor runs as an exec chain in one process: the full supervisor sets
the container up and execs this module in a fresh interpreter that loads
nothing else (`main`); when init exits, this module execs the full
supervisor again to record the exit, restart or clean up.  exec keeps the PID, so the container's init stays
our child, the flock on supervisor.lock stays held, and the descriptors
named in the state handed over (a marshal'd dict in a memfd) stay open.

Hence the imports: no `socket` or `signal` (their enums alone cost a
megabyte per process), no `json`, no `re`, not even `os` (160 KiB with the
ABCs it loads); `posix`, `_socket` and `_signal` are the same functions
without those Python layers.
"""

from __future__ import annotations

import _signal
import _socket
import errno
import marshal
import posix
import select
import sys
import time

from berth.container import protocol as proto
from berth.container.jsonlog import JsonFileWriter

READ_SIZE = 65536
# After init exits, output still buffered in pipes is drained for at most this long.
DRAIN_SECONDS = 2.0
# How long the full supervisor keeps serving a container someone is attached
# to (see Supervisor.handoff_delay): one that exits sooner never pays for the
# exec chain on the way to its exit.
HANDOFF_AFTER = 1.0
# argv[1] of every phase, so that `ps` and pgrep see one supervisor per
# container: `berth.container.supervisor ROOT ID ...`.
PROCESS_LABEL = "berth.container.supervisor"
# argv[1] of a HEALTHCHECK probe (berth.container.health), and the exit status
# by which it says the container is still "starting" (which, during the start
# period, probes at the start interval).
PROBE_LABEL = "berth.container.health"
PROBE_STARTING = 3

_POLL_IN = select.POLLIN | select.POLLPRI
_STREAM_NAMES = {proto.STDOUT: "stdout", proto.STDERR: "stderr"}


class Client:
    """An attach connection (see berth.container.protocol)."""

    __slots__ = ("fd", "demux", "hello")

    def __init__(self, fd: int, hello: dict | None = None):
        self.fd = fd
        self.demux = proto.Demuxer()
        self.hello = hello

    def wants(self, stream: int) -> bool:
        return bool(self.hello) and bool(self.hello.get(_STREAM_NAMES[stream], False))

    def send(self, data: bytes) -> bool:
        """Write all of ``data``; False once the client is gone."""
        view = memoryview(data)
        try:
            while view:
                view = view[posix.write(self.fd, view):]
            return True
        except OSError:
            return False


class Pump:
    """The event loop of one supervisor process.

    Owns the attach server, the clients, the container's stdio descriptors
    and the log writer.  Create one per process: it installs the SIGCHLD
    handler that wakes the loop.
    """

    def __init__(self, server_fd: int, log: JsonFileWriter, *, tty: bool, open_stdin: bool,
                 stdin_once: bool):
        self.server = _socket.socket(fileno=server_fd)
        self.log = log
        self.tty = tty
        self.open_stdin = open_stdin
        self.stdin_once = stdin_once
        self.poller = select.poll()
        self.handlers: dict[int, object] = {}     # fd -> "output", "accept", "signal" or a Client
        self.clients: list[Client] = []
        self.init_pid = 0
        self.init_status: int | None = None
        self.outputs: dict[int, int] = {}         # fd -> stream id
        self.stdin_fd: int | None = None
        self.master_fd: int | None = None
        # The HEALTHCHECK timer (see arm_health); None: no healthcheck, no cost.
        self.health: dict | None = None
        self._watch(server_fd, "accept")
        self.wake_r, wake_w = posix.pipe2(posix.O_NONBLOCK | posix.O_CLOEXEC)
        _signal.set_wakeup_fd(wake_w)
        _signal.signal(_signal.SIGCHLD, _wake)
        self._watch(self.wake_r, "signal")

    def _watch(self, fd: int, what) -> None:
        self.handlers[fd] = what
        self.poller.register(fd, _POLL_IN)

    def _unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    # -- the process --------------------------------------------------------------

    def attach_process(self, pid: int, outputs: dict[int, int], *, stdin_fd: int | None = None,
                       master_fd: int | None = None) -> None:
        """Serve a started process: its init's PID and our ends of its stdio."""
        self.init_pid = pid
        self.init_status = None
        self.outputs = dict(outputs)
        self.stdin_fd = stdin_fd
        self.master_fd = master_fd
        for fd in self.outputs:
            posix.set_blocking(fd, False)
            self._watch(fd, "output")
        if self.master_fd is not None:
            self.apply_client_size()
        self.reap()   # init may have exited before our SIGCHLD handler was in place

    def run(self, handoff_after: float | None = None) -> bool:
        """Serve until init exited and its output is drained: True.  With
        ``handoff_after``, stop early (False) at the first quiet moment after
        that many seconds, to hand the loop over (see `hand_over`)."""
        handoff_at = None if handoff_after is None else time.monotonic() + handoff_after
        drain_deadline = None
        while True:
            now = time.monotonic()
            if self.init_status is not None:
                if not self.outputs or (drain_deadline is not None and now > drain_deadline):
                    break
                if drain_deadline is None:
                    drain_deadline = now + DRAIN_SECONDS
                timeout = 0.2
            elif handoff_at is not None:
                if now >= handoff_at and self._quiet():
                    return False
                timeout = max(0.05, handoff_at - now)
            else:
                timeout = None
            self.poll(timeout)
        self.end_process()
        return True

    def end_process(self) -> None:
        """Close our ends of the process's stdio, logging unfinished lines."""
        for fd in list(self.outputs):
            self.close_output(fd)
        self.close_stdio()
        if self.health is not None:
            self.health["armed"] = False    # a probe still running is reaped all the same

    # -- the HEALTHCHECK timer ----------------------------------------------------------

    def arm_health(self, argv: list[str], *, interval: float, start_interval: float,
                   start_period: float, started: float) -> None:
        """Probe the started process as moby's health monitor does: ``argv``
        (a probe of berth.container.health) runs ``interval`` seconds after
        the end of the previous probe, or after ``started`` (monotonic) for
        the first; while the status is "starting" within ``start_period``
        the wait is ``start_interval``, and never past the period's end.  A
        probe still running (of an earlier run, say) is never doubled."""
        previous = self.health["pid"] if self.health is not None else 0
        self.health = {"argv": list(argv), "interval": interval, "start_interval": start_interval,
                       "start_period": start_period, "started": started, "starting": True,
                       "armed": True, "pid": previous, "next": None}
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        h = self.health
        now = time.monotonic()
        interval = h["interval"]
        remaining = h["start_period"] - (now - h["started"])
        if remaining > 0:       # moby's getInterval
            interval = remaining if remaining < interval else (
                h["start_interval"] if h["starting"] else interval)
        h["next"] = now + interval

    def _health_timer(self, timeout: float | None) -> float | None:
        """Start a probe that is due; the poll timeout, shortened to the next one."""
        h = self.health
        if not h["armed"] or h["next"] is None:
            return timeout
        wait = h["next"] - time.monotonic()
        if wait > 0:
            return wait if timeout is None or wait < timeout else timeout
        h["next"] = None        # set again once this probe is reaped
        if not h["pid"] and self.init_status is None:
            try:
                h["pid"] = posix.posix_spawn(h["argv"][0], h["argv"], posix.environ)
            except OSError:
                self._schedule_probe()
        return timeout

    def _quiet(self) -> bool:
        # A frame half received stays in its Demuxer; none may be lost.
        return all(not c.demux.buffered for c in self.clients)

    @property
    def exit_code(self) -> int:
        """init's exit code, 128+N for a signal (valid once `run` returned True)."""
        code = posix.waitstatus_to_exitcode(self.init_status or 0)
        return 128 - code if code < 0 else code

    # -- the loop ---------------------------------------------------------------------

    def poll(self, timeout: float | None) -> None:
        if self.health is not None:
            timeout = self._health_timer(timeout)
        for fd, _ in self.poller.poll(None if timeout is None else timeout * 1000):
            what = self.handlers.get(fd)
            if what is None:        # dropped by an earlier event of this round
                continue
            if what == "output":
                self.on_output(fd)
            elif what == "accept":
                self.on_accept()
            elif what == "signal":
                self.on_signal()
            else:
                self.on_client(what)

    def on_output(self, fd: int) -> None:
        try:
            data = posix.read(fd, READ_SIZE)
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
        self.log.write(_STREAM_NAMES[stream], data)
        payload = proto.frame(stream, data)
        for c in list(self.clients):
            if c.wants(stream) and not c.send(payload):
                self.drop(c)

    def close_output(self, fd: int) -> None:
        if fd in self.outputs:
            stream = self.outputs.pop(fd)
            self._unwatch(fd)
            if fd != self.master_fd:
                posix.close(fd)
            # Each stream ends on its own: its unfinished last line is logged now.
            self.log.flush_partial(_STREAM_NAMES[stream])

    def close_stdio(self) -> None:
        for fd in {self.stdin_fd, self.master_fd} - {None}:
            try:
                posix.close(fd)
            except OSError:
                pass
        self.stdin_fd = self.master_fd = None

    def on_accept(self) -> None:
        try:
            fd, _ = self.server._accept()
        except OSError:
            return
        self.add_client(Client(fd))

    def add_client(self, client: Client) -> None:
        self.clients.append(client)
        self._watch(client.fd, client)

    def on_client(self, client: Client) -> None:
        try:
            data = posix.read(client.fd, READ_SIZE)
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        for kind, payload in client.demux.feed(data):
            if kind == proto.HELLO:
                try:
                    client.hello = parse_hello(payload)
                except ValueError:
                    self.drop(client)
                    return
                if self.tty and self.master_fd is not None:
                    self.apply_client_size()
            elif client.hello is None:
                continue            # nothing counts before the hello
            elif kind == proto.STDIN and self.stdin_fd is not None and client.hello.get("stdin"):
                try:
                    posix.write(self.stdin_fd, payload)
                except OSError:
                    pass
            elif kind == proto.STDIN_EOF and client.hello.get("stdin"):
                if self.stdin_once and not self.tty and self.stdin_fd is not None:
                    posix.close(self.stdin_fd)
                    self.stdin_fd = None
            elif kind == proto.RESIZE and self.master_fd is not None:
                try:
                    rows, cols = (int(x) for x in payload.split())
                except ValueError:
                    continue
                _set_winsize(self.master_fd, rows, cols)

    def drop(self, client: Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            self._unwatch(client.fd)
            posix.close(client.fd)
            if (client.hello or {}).get("stdin") and self.stdin_once and not self.tty \
                    and self.stdin_fd is not None:
                posix.close(self.stdin_fd)
                self.stdin_fd = None

    def broadcast(self, data: bytes) -> None:
        for c in list(self.clients):
            if not c.send(data):
                self.drop(c)

    def apply_client_size(self) -> None:
        for c in self.clients:
            if c.hello and c.hello.get("rows") and c.hello.get("cols"):
                _set_winsize(self.master_fd, c.hello["rows"], c.hello["cols"])
                return

    def on_signal(self) -> None:
        try:
            while posix.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self.reap()

    def reap(self) -> None:
        """Collect every exited child: init's status is kept; orphans the
        container left to us (we are its subreaper) are just reaped."""
        while True:
            try:
                pid, status = posix.waitpid(-1, posix.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self.init_status = status
            elif self.health is not None and pid == self.health["pid"]:
                h = self.health
                h["pid"] = 0
                h["starting"] = posix.waitstatus_to_exitcode(status) == PROBE_STARTING
                if h["armed"]:
                    self._schedule_probe()

    # -- across exec ---------------------------------------------------------------------

    def hand_over(self) -> dict:
        """Stop, and describe the loop for `take_over` in the next program exec'd
        in this process: its descriptors are left open across exec."""
        _signal.set_wakeup_fd(-1)
        log = {"path": self.log.path, "max_size": self.log.max_size, "max_file": self.log.max_file,
               "compress": self.log.compress, "carry": self.log.hand_over()}
        server_fd = self.server.detach()
        fds = [server_fd, *self.outputs, *(c.fd for c in self.clients),
               *({self.stdin_fd, self.master_fd} - {None})]
        for fd in fds:
            posix.set_inheritable(fd, True)
        return {"server": server_fd, "log": log, "tty": self.tty, "open_stdin": self.open_stdin,
                "stdin_once": self.stdin_once, "init_pid": self.init_pid,
                "init_status": self.init_status, "outputs": self.outputs, "stdin": self.stdin_fd,
                "master": self.master_fd, "clients": [(c.fd, c.hello) for c in self.clients],
                "health": self.health}

    @classmethod
    def take_over(cls, state: dict) -> Pump:
        log = state["log"]
        writer = JsonFileWriter(log["path"], max_size=log["max_size"], max_file=log["max_file"],
                                compress=log["compress"], carry=log["carry"])
        inherited = [state["server"], *state["outputs"], *(fd for fd, _ in state["clients"]),
                     *({state["stdin"], state["master"]} - {None})]
        for fd in inherited:
            posix.set_inheritable(fd, False)
        pump = cls(state["server"], writer, tty=state["tty"], open_stdin=state["open_stdin"],
                   stdin_once=state["stdin_once"])
        for fd, hello in state["clients"]:
            pump.add_client(Client(fd, hello))
        pump.health = state.get("health")     # before any reap: a probe may have ended meanwhile
        if state["init_pid"]:
            pump.attach_process(state["init_pid"], state["outputs"], stdin_fd=state["stdin"],
                                master_fd=state["master"])
            if state["init_status"] is not None:
                pump.init_status = state["init_status"]
        return pump


def parse_hello(payload: bytes) -> dict:
    """The HELLO frame's JSON object as protocol.hello writes it: flat, its
    values booleans, integers or null.  ValueError for anything else (which
    a full JSON parser, with its megabyte of imports, would not make useful)."""
    text = payload.decode().strip()
    if text[:1] != "{" or text[-1:] != "}":
        raise ValueError("not a JSON object")
    hello: dict = {}
    body = text[1:-1].strip()
    for item in body.split(",") if body else ():
        key, sep, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or len(key) < 2 or key[0] != '"' or key[-1] != '"' or "\\" in key:
            raise ValueError(f"unexpected hello member {item!r}")
        hello[key[1:-1]] = _LITERALS[value] if value in _LITERALS else int(value)
    return hello


_LITERALS = {"true": True, "false": False, "null": None}


def _wake(signum, frame) -> None:
    """SIGCHLD's handler: the wakeup fd does the work."""


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    import fcntl
    import termios      # terminals only

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, _winsize(rows, cols))
    except OSError:
        pass


def _winsize(rows: int, cols: int) -> bytes:
    """struct winsize {rows, cols, xpixel, ypixel}: four native unsigned shorts."""
    return b"".join(v.to_bytes(2, sys.byteorder) for v in (rows, cols, 0, 0))


# -- the exec chain ---------------------------------------------------------------------

def interpreter_argv(module: str, args: list[str], label: str = PROCESS_LABEL) -> list[str]:
    """argv running ``module.main(argv)`` in a fresh interpreter that loads
    only what that module imports: -I -S skip site-packages (tens of
    milliseconds, and megabytes, of .pth handling); berth's own location
    goes on sys.path explicitly instead."""
    here = __file__ if __file__.startswith("/") else f"{posix.getcwd()}/{__file__}"
    package_parent = here.rsplit("/", 3)[0]        # .../berth/container/pump.py
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            f"from {module} import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", code, label, *args]


def exec_phase(module: str, root: str, container_id: str, state: dict) -> None:
    """Replace this program by ``module``'s, handing it ``state`` (plain data;
    descriptors in it must be inheritable).  Does not return."""
    fd = posix.memfd_create("berth-supervisor-state", 0)   # inherited: the next phase reads it
    data = marshal.dumps(state)
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view):]
    posix.lseek(fd, 0, 0)
    sys.stderr.flush()
    posix.execv(sys.executable, interpreter_argv(module, [root, container_id, "--state", str(fd)]))


def read_state(fd: int) -> dict:
    """The state `exec_phase` handed over; closes its descriptor."""
    chunks = []
    while chunk := posix.read(fd, 1 << 20):
        chunks.append(chunk)
    posix.close(fd)
    return marshal.loads(b"".join(chunks))


def main(argv: list[str]) -> int:
    """The idle phase: serve until init exits, then hand back to the supervisor."""
    _label, root, container_id, _flag, state_fd = argv
    state = read_state(int(state_fd))
    lock = state["lock"]
    posix.set_inheritable(lock, False)     # no probe this loop spawns may hold it
    try:
        pump = Pump.take_over(state.pop("pump"))
        pump.run()
        state["pump"] = pump.hand_over()
    except BaseException as e:  # noqa: BLE001 - the supervisor must get control back
        import traceback
        traceback.print_exc()
        state["error"] = f"supervisor error: {e}"
    posix.set_inheritable(lock, True)
    exec_phase("berth.container.supervisor", root, container_id, state)
    return 1
