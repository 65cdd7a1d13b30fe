"""A fork server for container supervisors: how `berth daemon` forks them.

`supervisor.fork_supervisor` starts a supervisor as a fork of its starter,
saving an interpreter start and the imports (tens of milliseconds on every
container start).  The daemon cannot use it: it is multi-threaded, and a
fork of it could find another thread's locks held forever.  So the daemon
starts this helper once (`ForkServer`): a fresh, single-threaded
interpreter (-I -S, like a supervisor's own) that imports what a
supervisor needs, then forks one supervisor per request with
`fork_supervisor` itself (multiprocessing's forkserver, for supervisors).

The protocol, over a SOCK_SEQPACKET socketpair: the server says `ready`
once its imports are done; a request is `ROOT NUL ID NUL ATTACH_FIRST`
with the supervisor's ready descriptor attached (SCM_RIGHTS); the server
forks, reaps the intermediate child and answers `ok` (or `error MESSAGE`
when it could not fork).  The supervisor then reports on the ready
descriptor as `supervisor.command` describes.

The server never opens the database (no SQLite connection may cross a
fork) and never starts a thread.  It lives as long as its daemon: it exits
when its end of the socket reads EOF, which happens when the daemon is gone
however it ended (no other process holds the daemon's end: it is
close-on-exec, and the server's own end is closed in every supervisor by
`fork_supervisor`, as an inherited descriptor).  The daemon replaces a
server it finds dead.  Supervisors outlive both: each is in a session of
its own, a child of neither.

A forked supervisor goes by the server's command line (`... -c ...
berth.container.forkserver`) until its hand-over to the idle loop, as one
forked by `berth run` goes by that command's.
"""

from __future__ import annotations

import gc
import importlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

PROCESS_LABEL = "berth.container.forkserver"
# What a supervisor imports on its way: loaded once here, not in each supervisor.
PRELOAD = ("berth.container.supervisor", "berth.container.cleanup", "berth.container.health", "berth.store.state",
           "berth.runtime.builtin.cli", "berth.runtime.builtin.lifecycle", "berth.runtime.builtin.container",
           "berth.runtime.builtin.seccomp", "signal", "traceback")
READY_TIMEOUT = 30.0      # the server's start (its imports)
REPLY_TIMEOUT = 30.0      # one fork
MAX_MESSAGE = 4096


def command(fd: int) -> list[str]:
    """argv of a fork server talking on descriptor ``fd``."""
    package_parent = str(Path(__file__).resolve().parents[2])    # .../berth/container/forkserver.py
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            f"from berth.container.forkserver import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", code, PROCESS_LABEL, str(fd)]


class ForkServer:
    """The daemon's handle on its fork server: started by `start` (or the
    first `spawn`), replaced when found dead, stopped by `close`.  Thread-safe:
    requests take turns (a fork is a millisecond or two)."""

    def __init__(self, log: Callable[[str], None] | None = None):
        self.log = log or (lambda line: None)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._ready = False

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the server now (it loads in the background), unless it runs."""
        with self._lock:
            try:
                self._ensure_started()
            except OSError as e:
                self.log(f"fork server: cannot start it: {e}")  # the next spawn tries again

    def spawn(self, root: Path, container_id: str, ready_fd: int, attach_first: bool) -> bool:
        """Have a supervisor forked for the container, reporting on ``ready_fd``
        (which the caller still closes).  False when the server could not take
        the request (the caller starts a supervisor some other way); True once
        it did, even if the server then failed: the ready descriptor tells."""
        message = b"\0".join([os.fsencode(str(root)), container_id.encode(), b"1" if attach_first else b"0"])
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._ensure_started()
                    self._await_ready()
                    socket.send_fds(self._sock, [message], [ready_fd])
                except (OSError, ForkServerError) as e:
                    self.log(f"fork server: {e}; {'restarting it' if attempt == 1 else 'not used for this start'}")
                    self._stop()
                    continue
                try:
                    reply = self._receive(REPLY_TIMEOUT)
                except (OSError, ForkServerError) as e:
                    # It had the request: a supervisor may exist, and the ready
                    # descriptor (whose other copies are gone with the server) tells.
                    self.log(f"fork server: {e}; replacing it")
                    self._stop()
                    return True
                if reply == b"ok":
                    return True
                self.log(f"fork server: {reply.decode(errors='replace')}")
                return False
            return False

    def close(self) -> None:
        with self._lock:
            self._stop()

    # -- the process ------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._proc is not None:
            self.log(f"fork server {self._proc.pid} exited ({self._proc.returncode}); starting another")
        self._stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # A session of its own: the daemon's terminal signals are the daemon's.
            self._proc = subprocess.Popen(command(theirs.fileno()), pass_fds=(theirs.fileno(),),
                                          start_new_session=True, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, cwd="/")
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self._ready = False

    def _await_ready(self) -> None:
        if not self._ready:
            reply = self._receive(READY_TIMEOUT)
            if reply != b"ready":
                raise ForkServerError(f"unexpected greeting {reply!r}")
            self._ready = True

    def _receive(self, timeout: float) -> bytes:
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(MAX_MESSAGE)
        except TimeoutError:
            raise ForkServerError(f"no answer in {timeout:.0f} s") from None
        if not data:
            raise ForkServerError("it exited")
        return data

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()      # EOF: the server exits
            self._sock = None
        proc, self._proc = self._proc, None
        self._ready = False
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class ForkServerError(Exception):
    pass


# -- the server -------------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    """argv: LABEL FD.  Serve fork requests until the daemon's end closes."""
    sock = socket.socket(fileno=int(argv[1]))
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass    # loaded by each supervisor that needs it, then
    from berth.container.supervisor import fork_supervisor

    gc.freeze()     # what is loaded stays shared with the supervisors: no collection touches it
    # Inheritable (pass_fds made it so): fork_supervisor closes it in each supervisor.
    os.set_inheritable(sock.fileno(), True)
    sock.send(b"ready")
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 1, socket.MSG_CMSG_CLOEXEC)
        except OSError:
            return 0
        if not message:
            return 0    # the daemon is gone
        try:
            reply = _fork(fork_supervisor, message, fds)
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(reply)
        except OSError:
            return 0


def _fork(fork_supervisor, message: bytes, fds: list[int]) -> bytes:
    try:
        root, container_id, attach_first = message.split(b"\0")
        if len(fds) != 1:
            return b"error no ready descriptor in the request"
        pid = fork_supervisor(Path(os.fsdecode(root)), container_id.decode(), fds[0], attach_first == b"1")
        os.waitpid(pid, 0)
    except Exception as e:  # noqa: BLE001 - the server stays up; the daemon learns why
        return f"error {type(e).__name__}: {e}".encode()
    return b"ok"


if __name__ == "__main__":
    sys.exit(main([PROCESS_LABEL, *sys.argv[1:]]))
