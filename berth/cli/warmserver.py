"""The warm berth: a resident process with the CLI imported, forking one
worker per command for `berth.cli.launcher` (which explains why, and the
protocol).

Rules it keeps:
- Single-threaded, and it never opens the database or runs a command
  itself: each worker is a fork of a process that only imported code, so
  no lock, connection or cache of one command reaches another.
- A worker becomes the client's process before running the CLI: its stdio
  descriptors, working directory, umask, environment, locale and argv, a
  process group of its own (signals the client relays go to the group, as a
  terminal's would), Python's default signal handling.
- Code changes are noticed: before each fork the server compares the
  modification times of every berth module it loaded (and of sys.path's
  directories, which `pip install` touches) with those at its start; if
  any differs it refuses as stale, stops listening, and exits once its
  workers end.  The client then starts a fresh server.
- It exits after IDLE_SECONDS without a command running, or on `stop`.
- It serves only a process it could be: the client's credentials,
  capabilities, no_new_privs, seccomp mode, namespaces and root directory
  (read from /proc by the peer's PID, not taken from the client) must be
  its own, else it refuses and the client runs the CLI itself.  A worker
  takes on the client's rlimits, CPU affinity, nice value and OOM score
  adjustment; it stays in the server's cgroup.
- A client that vanishes without a word was SIGKILLed (catchable signals
  are relayed): its worker is SIGKILLed too, as the process itself would
  have been in a plain `berth`.
"""

from __future__ import annotations

import os
import sys

from berth.cli.launcher import MAX_MESSAGE, PROTOCOL

IDLE_SECONDS = 600.0
REQUEST_TIMEOUT = 5.0


def main(argv: list[str]) -> None:
    """argv: LABEL SOCKET_PATH LISTEN_FD KEY."""
    _label, path, listen_fd, key = argv
    listen_fd = int(listen_fd)
    # A parent's inherited descriptors (pipes a caller waits on to close)
    # must not live as long as the server.
    os.closerange(3, listen_fd)
    os.closerange(listen_fd + 1, 1 << 16)
    os.chdir("/")
    import socket

    listener = socket.socket(fileno=listen_fd)
    listener.set_inheritable(False)
    Server(listener, path, key).serve()
    os._exit(0)


def preload() -> None:
    """Import every berth module and load the lazily bound ones, so no
    worker pays for an import."""
    import importlib
    import pkgutil

    import berth

    for info in pkgutil.walk_packages(berth.__path__, "berth."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:   # noqa: BLE001 - an optional dependency missing: the worker finds out
            pass
    from berth.lazy import load_all
    load_all()


class Server:
    def __init__(self, listener, path: str, key: str):
        import selectors

        self.listener = listener
        self.path = path
        self.key = key
        self.selector = selectors.DefaultSelector()
        self.workers: dict[int, Worker] = {}     # by pidfd
        self.listening = True
        preload()
        import gc

        self.stamps = code_stamps()
        self.identity = identity("self")
        self.socket_ino = _inode(path)
        gc.collect()
        gc.freeze()     # what is loaded stays shared with the workers: no collection touches it

    def serve(self) -> None:
        import selectors

        self.selector.register(self.listener, selectors.EVENT_READ, None)
        while self.listening or self.workers:
            events = self.selector.select(None if self.workers else IDLE_SECONDS)
            if not events and not self.workers:
                break
            for selkey, _mask in events:
                if selkey.data is None:
                    self._accept()
                else:
                    worker, what = selkey.data
                    if what == "ended":
                        self._reap(worker)
                    elif not worker.ended:      # reaped earlier in this batch: its conn is closed
                        self._relay(worker)
        self._stop_listening()

    # -- requests --------------------------------------------------------------------------

    def _accept(self) -> None:
        import socket

        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(REQUEST_TIMEOUT)
            message, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 3, socket.MSG_CMSG_CLOEXEC)
            conn.settimeout(None)
            fields = message.split(b"\0")
            if fields[:1] != [PROTOCOL] or len(fields) < 3 or fields[2].decode() != self.key:
                conn.send(b"refused mismatch")
            elif fields[1] == b"stop":
                self._stop_listening()
                conn.send(b"stopping")
            elif fields[1] != b"run" or len(fds) != 3:
                conn.send(b"refused malformed")
            elif not self.listening or self._stale():
                self._stop_listening()
                conn.send(b"refused stale")
            elif identity(client := _peer_pid(conn)) != self.identity:
                conn.send(b"refused identity")
            else:
                self._fork(conn, Request.parse(client, fields[3:]), fds)
                return
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        finally:
            for fd in fds:
                os.close(fd)
        conn.close()

    def _stale(self) -> bool:
        for path, stamp in self.stamps.items():
            try:
                if os.stat(path).st_mtime_ns != stamp:
                    return True
            except OSError:
                if stamp != -1:
                    return True
        return False

    def _fork(self, conn, request: Request, fds: list[int]) -> None:
        import selectors

        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self._forget()
                os.close(conn.detach())
                code = run_worker(request, fds)
            except BaseException:   # noqa: BLE001 - the copy must end here whatever happens
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass    # it did so itself and may even have ended
        worker = Worker(pid, os.pidfd_open(pid), conn)
        self.workers[worker.pidfd] = worker
        self.selector.register(worker.pidfd, selectors.EVENT_READ, (worker, "ended"))
        self.selector.register(conn, selectors.EVENT_READ, (worker, "message"))
        try:
            conn.send(b"started %d" % pid)
        except OSError:
            pass    # the client is gone: _relay sees it next

    def _forget(self) -> None:
        """In a new worker: close the server's descriptors (detached, so no
        object of the server's closes a number the worker reuses)."""
        self.selector.close()
        os.close(self.listener.detach())
        for worker in self.workers.values():
            os.close(worker.pidfd)
            os.close(worker.conn.detach())

    def _relay(self, worker: Worker) -> None:
        import signal

        try:
            message = worker.conn.recv(MAX_MESSAGE)
        except OSError:
            message = b""
        if message.startswith(b"signal "):
            try:
                os.killpg(worker.pid, int(message[7:]))
            except (OSError, ValueError):
                pass
        elif not message:
            self.selector.unregister(worker.conn)
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except OSError:
                pass

    def _reap(self, worker: Worker) -> None:
        _, status = os.waitpid(worker.pid, 0)
        worker.ended = True
        self.selector.unregister(worker.pidfd)
        os.close(worker.pidfd)
        del self.workers[worker.pidfd]
        code = os.waitstatus_to_exitcode(status)
        try:
            worker.conn.send(b"exit %d" % code if code >= 0 else b"signal %d" % -code)
        except OSError:
            pass
        try:
            self.selector.unregister(worker.conn)
        except KeyError:
            pass
        worker.conn.close()

    def _stop_listening(self) -> None:
        """New clients start a new server from now on."""
        if not self.listening:
            return
        self.listening = False
        try:
            self.selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        if _inode(self.path) == self.socket_ino:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.listener.close()


class Worker:
    __slots__ = ("pid", "pidfd", "conn", "ended")

    def __init__(self, pid: int, pidfd: int, conn):
        self.pid, self.pidfd, self.conn, self.ended = pid, pidfd, conn, False


class Request:
    """A client's process, as the launcher sends it."""

    __slots__ = ("pid", "cwd", "umask", "argv", "env")

    def __init__(self, pid: int, cwd: bytes, umask: int, argv: list[str], env: dict[str, str]):
        self.pid, self.cwd, self.umask, self.argv, self.env = pid, cwd, umask, argv, env

    @classmethod
    def parse(cls, pid: int, fields: list[bytes]) -> Request:
        cwd, umask, argc, *rest = fields
        n = int(argc)
        argv = [os.fsdecode(a) for a in rest[:n]]
        env = {}
        for entry in rest[n:]:
            name, sep, value = entry.partition(b"=")
            if sep:
                env[os.fsdecode(name)] = os.fsdecode(value)
        return cls(pid, cwd, int(umask, 8), argv, env)


def run_worker(request: Request, fds: list[int]) -> int:
    """Become the client's process and run its command; returns only on failure."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    fds.clear()
    os.setpgid(0, 0)
    _take_limits(request.pid)
    _fresh_stdio()
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    try:
        import locale
        locale.setlocale(locale.LC_CTYPE, "")
    except Exception:   # noqa: BLE001 - an unknown locale: Python's own start ignores it too
        pass
    try:
        os.chdir(request.cwd)
    except OSError as e:
        print(f"berth: the working directory: {e.strerror}", file=sys.stderr)
        return 125
    sys.argv = ["berth", *request.argv]
    from berth.cli.main import main
    main(request.argv)
    return 0


def _take_limits(pid: int) -> None:
    """The client's rlimits, CPU affinity, nice value and OOM score adjustment
    (read while the client waits, so it is still there to read)."""
    import resource

    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            which = getattr(resource, name)
            try:
                resource.setrlimit(which, resource.prlimit(pid, which))
            except (OSError, ValueError):
                pass
    try:
        os.sched_setaffinity(0, os.sched_getaffinity(pid))
        os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, pid))
        with open(f"/proc/{pid}/oom_score_adj") as src, open("/proc/self/oom_score_adj", "w") as dst:
            dst.write(src.read())
    except OSError:
        pass


def _fresh_stdio() -> None:
    """sys.stdin/stdout/stderr as Python makes them at start, for the
    client's descriptors (line buffering on a terminal, for one)."""
    encoding, errors = sys.stdout.encoding, sys.stdout.errors
    sys.stdin = sys.__stdin__ = open(0, "r", encoding=encoding, errors=errors, newline="\n", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding=encoding, errors=errors, newline="\n", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, encoding=encoding, errors="backslashreplace",
                                       newline="\n", closefd=False)


IDENTITY_FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                   "NoNewPrivs", "Seccomp")


def identity(pid: int | str) -> tuple:
    """What a worker inherits from the server and cannot take from a client:
    credentials, capabilities, no_new_privs, seccomp, namespaces, root."""
    proc = f"/proc/{pid}"
    try:
        with open(f"{proc}/status") as f:
            status = [line for line in f if line.split(":", 1)[0] in IDENTITY_FIELDS]
        links = [os.readlink(f"{proc}/ns/{ns}") for ns in sorted(os.listdir(f"{proc}/ns"))]
        links.append(os.readlink(f"{proc}/root"))
    except OSError:
        return ()
    return (*status, *links)


def _peer_pid(conn) -> int:
    import socket
    import struct

    pid, _uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    return pid


def code_stamps() -> dict[str, int]:
    """Modification times of the loaded berth modules and of sys.path's directories."""
    import berth

    package = berth.__path__[0]
    files = [m.__file__ for m in list(sys.modules.values())
             if isinstance(getattr(m, "__file__", None), str) and m.__file__.startswith(package)]
    stamps = {}
    for path in [*files, *sys.path]:
        try:
            stamps[path] = os.stat(path).st_mtime_ns
        except OSError:
            stamps[path] = -1
    return stamps


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
