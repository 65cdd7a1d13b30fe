"""What the container supervisor needs from an OCI runtime.

`Runtime` is the OCI runtime lifecycle (create, start, state, kill, delete)
plus exec, pause and resume.  Implementations raise berth.errors:
NotFound for an unknown container, Conflict for an operation the
container's state forbids, CommandNotFound / NotExecutable when the
process's executable is missing / cannot be executed (the caller turns
those into exit codes 127 / 126), BerthError for anything else.

Process model: after `create` the container's init is no child of any
runtime process.  It is re-parented to the nearest child subreaper above
the caller, so the supervisor calling `create` should first make itself
one (`set_child_subreaper()`) to reap init and learn its exit status.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Mapping, Protocol

STATUSES = ("creating", "created", "running", "paused", "stopped")


@dataclass(frozen=True)
class RuntimeState:
    """The OCI state of a container, as `runc state` reports it."""

    id: str
    status: str  # one of STATUSES
    pid: int  # init's PID in the caller's namespace; 0 once stopped
    bundle: str = ""
    created: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stdio:
    """Descriptors the container's process inherits as 0, 1 and 2 (None: /dev/null)."""

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


class Runtime(Protocol):
    def create(self, container_id: str, bundle: str | os.PathLike, *, stdio: Stdio | None = None,
               console_socket: str | None = None, pid_file: str | None = None) -> int:
        """Set the container up, its init waiting to exec; returns init's PID.
        `console_socket` (see ConsoleSocket) is required iff the spec asks for a terminal."""

    def start(self, container_id: str) -> None:
        """Let a created container's init exec the user's process."""

    def run(self, container_id: str, bundle: str | os.PathLike, *, stdio: Stdio | None = None,
            console_socket: str | None = None, pid_file: str | None = None) -> int:
        """create + start; returns init's PID."""

    def state(self, container_id: str) -> RuntimeState: ...

    def kill(self, container_id: str, signal: int | str = 15, *, all: bool = False) -> None:
        """Signal init, or with all=True every process in the container."""

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove a stopped (or created) container; force kills a running one first.
        Leaves no process, mount or cgroup behind."""

    def exec(self, container_id: str, process: Mapping, *, stdio: Stdio | None = None,
             console_socket: str | None = None, detach: bool = True,
             pid_file: str | None = None) -> int:
        """Run an OCI `process` in the container: returns its PID when detached
        (the caller's subreaper reaps it), else waits and returns its exit status."""

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...


def single_threaded() -> bool:
    """Whether the calling process may fork and go on running Python in the
    child: with other threads, the child could find their locks held forever."""
    return len(os.listdir("/proc/self/task")) == 1


def fork_flushed() -> int:
    """os.fork(), once Python's stdout and stderr are flushed: else the child
    could write the caller's buffered output a second time."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return os.fork()


def set_child_subreaper() -> None:
    """Make the calling process adopt orphaned descendants (PR_SET_CHILD_SUBREAPER),
    as containerd's shim does, so container processes stay its children."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class ConsoleSocket:
    """The listening end of `--console-socket`: the runtime connects and sends
    the pty master, which `receive()` returns (the caller then owns it).

    Use as a context manager; the socket lives in a private temporary directory.
    """

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="berth-console-")
        self.path = os.path.join(self._dir, "console.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(1)

    def receive(self, timeout: float = 30.0) -> int:
        """The pty master sent by the runtime (blocks until it connects)."""
        self._sock.settimeout(timeout)
        conn, _ = self._sock.accept()
        with conn:
            conn.settimeout(timeout)
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise OSError("the runtime sent no terminal over the console socket")
        for extra in fds[1:]:
            os.close(extra)
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        try:
            os.rmdir(self._dir)
        except OSError:
            pass

    def __enter__(self) -> "ConsoleSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
