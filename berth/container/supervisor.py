"""The per-container supervisor: berth's conmon.

One process per running container.  It outlives the command that started
it, makes itself the child subreaper so the container's init is its child,
holds the container's stdio (pipes or the pty master), writes the json-file
log, serves attach clients on a unix socket, runs the HEALTHCHECK probes
(berth.container.health), records the exit code and finish time, applies
the restart policy, and removes `--rm` containers.
For its whole life it holds an exclusive lock on the container's
`supervisor.lock`: a free lock with a record that says running means the
supervisor died, which `reconcile` notices.

The process is an exec chain (see berth.container.pump): this module sets
the container up, then hands it to the lean idle loop of
berth.container.pump, which execs this module again (`--state`) once init
exits, to record the exit and restart or clean up.  While someone is
attached, waiting for the exit, the hand-over waits HANDOFF_AFTER seconds,
so a short-lived container (`run --rm IMAGE true`) never leaves this
program.

A supervisor starts as a fork of its starter when that is safe
(`fork_supervisor`: no interpreter start, nothing to import), else as
`command(...)`: `... berth.container.supervisor ROOT ID READY_FD
[--attach-first]`.  It reports on READY_FD: `listening` (with
--attach-first, before the first client attaches), then `started PID` or
`failed KIND MESSAGE`.  A forked supervisor goes by its starter's command
line until the hand-over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from berth.container import protocol as proto
from berth.container.events import emit_container_event
from berth.container.jsonlog import JsonFileWriter
from berth.container.paths import ContainerPaths
from berth.container.pump import (HANDOFF_AFTER, PROCESS_LABEL, Pump, exec_phase, interpreter_argv,
                                  read_state)
from berth.container.record import ZERO_TIME
from berth.container.runtimes import runtime_for
from berth.container.states import Event, Status
from berth.container.store import ContainerStore
from berth.errors import BerthError, CommandNotFound, NotExecutable
from berth.runtime.interface import ConsoleSocket, Stdio, fork_flushed, set_child_subreaper
from berth.store.db import Database
from berth.store.events import EventLog
from berth.lazy import lazy_import

health = lazy_import("berth.container.health")  # only containers with a healthcheck load it

FIRST_ATTACH_TIMEOUT = 60.0
# Docker's restart backoff: 100 ms doubling, capped at one minute.
BACKOFF_START, BACKOFF_MAX = 0.1, 60.0


def rfc3339_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Supervisor:
    def __init__(self, root: Path, container_id: str, lock_fd: int, ready_fd: int = -1):
        self.root = root
        self.paths = ContainerPaths(root, container_id)
        self.id = container_id
        self.lock_fd = lock_fd
        self.ready_fd = ready_fd
        self.db = Database(root / "berth.db")
        self.events = EventLog(root)
        self.store = ContainerStore(self.db)
        self.container = self.store.get(container_id)
        self.tty = bool(self.container.config.get("Tty"))
        self.open_stdin = bool(self.container.config.get("OpenStdin"))
        self.stdin_once = bool(self.container.config.get("StdinOnce"))
        self.runtime = runtime_for(self.container.host_config.get("Runtime"), self.paths.runtime_root)
        self.pump: Pump | None = None
        self.started_at = 0.0
        self.backoff = BACKOFF_START
        self.oom_killed = False

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

    def run(self, attach_first: bool) -> int:
        """A fresh supervisor: start the container and see it through."""
        set_child_subreaper()   # kept across exec, like the PID
        self.pump = Pump(self.listen(), self.open_log(), tty=self.tty, open_stdin=self.open_stdin,
                         stdin_once=self.stdin_once)
        if attach_first:
            self.report("listening")
            self.wait_first_client()
        return self.supervise(exited=False)

    def resume(self, state: dict) -> int:
        """Carry on after the idle phase, whose init has exited."""
        os.set_inheritable(self.lock_fd, False)
        self.started_at, self.backoff = state["started_at"], state["backoff"]
        if "error" in state:
            raise BerthError(state["error"])
        self.pump = Pump.take_over(state["pump"])
        return self.supervise(exited=True)

    def supervise(self, exited: bool) -> int:
        while True:
            if not exited:
                self.started_at = time.monotonic()
                if not self.start():
                    return 0    # could not start: already recorded
                if not self.pump.run(handoff_after=self.handoff_delay()):
                    self.hand_over()
            exited = False
            exit_code = self.after_exit()
            self.container = self.store.get(self.id)
            if not self.should_restart(exit_code):
                self.finish(exit_code)
                return 0
            count = self.container.state.get("RestartCount", 0) + 1
            self.store.transition(self.id, Event.RESTART, RestartCount=count, ExitCode=exit_code,
                                  FinishedAt=rfc3339_now(), Pid=0)
            emit_container_event(self.events, self.container, "die", exitCode=str(exit_code))
            self.broadcast_exit(exit_code)
            # A container that ran for a while restarts at once (Docker resets
            # the backoff after 10 s of running).
            self.backoff = (BACKOFF_START if time.monotonic() - self.started_at > 10
                            else min(self.backoff * 2, BACKOFF_MAX))
            if self.sleep_unless_stopped(self.backoff):
                self.finish(exit_code)
                return 0

    def handoff_delay(self) -> float:
        """How long this program serves a started container before the idle
        loop takes over.  Someone attached waits for the exit, whose handling
        is quickest here, so a short-lived container (`run --rm IMAGE true`)
        never pays for the exec chain; with nobody waiting (`run -d`), the
        container goes to the lean loop at once."""
        return HANDOFF_AFTER if self.pump.clients else 0.0

    def hand_over(self) -> None:
        """Exec the idle loop; it execs this module again when init exits."""
        self.db.close()
        os.set_inheritable(self.lock_fd, True)
        state = {"pump": self.pump.hand_over(), "lock": self.lock_fd, "started_at": self.started_at,
                 "backoff": self.backoff}
        exec_phase("berth.container.pump", str(self.root), self.id, state)

    def listen(self) -> int:
        """The attach socket, listening; its descriptor."""
        self.paths.run.mkdir(parents=True, exist_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock_path = str(self.paths.attach_socket)
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        server.bind(sock_path)
        os.chmod(sock_path, 0o600)
        server.listen(16)
        return server.detach()

    def open_log(self) -> JsonFileWriter:
        opts = (self.container.host_config.get("LogConfig") or {}).get("Config") or {}
        if not opts:
            return JsonFileWriter(self.paths.log)
        from berth.container.logs import JsonFileOptions  # the option parser is big; most have none

        log_opts = JsonFileOptions.from_log_opts(opts)
        return JsonFileWriter(self.paths.log, max_size=log_opts.max_size, max_file=log_opts.max_file,
                              compress=log_opts.compress)

    def wait_first_client(self) -> None:
        deadline = time.monotonic() + FIRST_ATTACH_TIMEOUT
        while not any(c.hello is not None for c in self.pump.clients) and time.monotonic() < deadline:
            self.pump.poll(0.5)

    def start(self) -> bool:
        """Start the process; on failure record it, tell everyone, and return False."""
        try:
            self.start_process()
        except BerthError as e:
            code = 127 if isinstance(e, CommandNotFound) else 126 if isinstance(e, NotExecutable) else 128
            kind = type(e).__name__
            self.release()
            self.store.transition(self.id, Event.START, Pid=0)
            self.store.transition(self.id, Event.DIE, ExitCode=code, Error=str(e),
                                  FinishedAt=rfc3339_now())
            self.report(f"failed {kind} {e}")
            self.close_report()
            for c in self.pump.clients:
                c.send(proto.failed(kind, str(e)))
            self.broadcast_exit(code)
            if self.container.host_config.get("AutoRemove"):
                self.remove()
            return False
        pid = self.pump.init_pid
        check = health.settings(self.container.config) if self.container.config.get("Healthcheck") else None
        # Each start begins "starting" (moby's initHealthMonitor); no healthcheck, no Health.
        probing = {"Health": health.initial(self.container.state)} if check else {}
        self.store.transition(self.id, Event.START, Pid=pid, StartedAt=rfc3339_now(),
                              ExitCode=0, Error="", OOMKilled=False, FinishedAt=ZERO_TIME, **probing)
        if check:
            self.pump.arm_health(health.probe_argv(self.root, self.id), interval=check.interval / 1e9,
                                 start_interval=check.start_interval / 1e9,
                                 start_period=check.start_period / 1e9, started=self.started_at)
        emit_container_event(self.events, self.container, "start")
        self.report(f"started {pid}")
        self.close_report()
        self.db.close()  # reopened at the exit; a running container's supervisor holds no database
        for c in self.pump.clients:
            c.send(proto.frame(proto.STARTED, str(pid).encode()))
        return True

    def start_process(self) -> None:
        """Create and start the container's process, its stdio given to the pump."""
        ours: list[int] = []        # our ends, until the pump has them
        theirs: list[int] = []      # the process's ends, closed here once it has them
        try:
            if self.tty:
                with ConsoleSocket() as console:
                    pid = self.runtime.create(self.id, self.paths.bundle, console_socket=console.path)
                    master = console.receive()
                ours.append(master)
                self.pump.attach_process(pid, {master: proto.STDOUT}, stdin_fd=master, master_fd=master)
            else:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                ours.append(out_r)
                theirs.append(out_w)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                ours.append(err_r)
                theirs.append(err_w)
                stdin = stdin_w = None
                if self.open_stdin:
                    stdin, stdin_w = os.pipe2(os.O_CLOEXEC)
                    ours.append(stdin_w)
                    theirs.append(stdin)
                pid = self.runtime.create(self.id, self.paths.bundle,
                                          stdio=Stdio(stdin=stdin, stdout=out_w, stderr=err_w))
                self.pump.attach_process(pid, {out_r: proto.STDOUT, err_r: proto.STDERR}, stdin_fd=stdin_w)
            ours = []
            self.runtime.start(self.id)
        except BaseException:
            for fd in ours:
                os.close(fd)
            self.pump.end_process()
            raise
        finally:
            for fd in theirs:
                os.close(fd)

    def after_exit(self) -> int:
        """What follows every exit of init: the runtime's record goes; the exit code."""
        self.oom_killed = _oom_killed(self.paths.bundle, self.id)  # read before delete removes the cgroup
        if self.oom_killed:
            emit_container_event(self.events, self.container, "oom")
        try:
            # The runtime's record of this run must go before a restart creates the next.
            self.runtime.delete(self.id, force=True)
        except BerthError:
            pass
        return self.pump.exit_code

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
            self.pump.poll(min(0.1, deadline - time.monotonic()))
            if self.store.get(self.id).state.get("ManuallyStopped"):
                return True
        return False

    def finish(self, exit_code: int) -> None:
        self.release()
        self.store.transition(self.id, Event.DIE, ExitCode=exit_code, FinishedAt=rfc3339_now(), Pid=0,
                              OOMKilled=self.oom_killed)
        emit_container_event(self.events, self.container, "die", exitCode=str(exit_code))
        if self.container.host_config.get("AutoRemove"):
            self.remove()
            emit_container_event(self.events, self.container, "destroy")
        self.broadcast_exit(exit_code)
        self.close_report()

    def release(self) -> None:
        self.full_environment()
        from berth.container.cleanup import release_resources  # loaded at the exit only
        from berth.store.state import State
        release_resources(State(self.root), self.container, self.runtime)

    def remove(self) -> None:
        self.full_environment()
        from berth.container.cleanup import remove_container
        from berth.store.state import State
        remove_container(State(self.root), self.store, self.container, self.runtime, anonymous_volumes=True)

    def full_environment(self) -> None:
        """Bring site-packages in for a release hook (a provider's module may
        need them); the tens of milliseconds of .pth handling are spent only then."""
        if self.container.spec.get("ReleaseHook"):
            _full_environment()

    def broadcast_exit(self, exit_code: int) -> None:
        message = proto.frame(proto.EXIT, str(exit_code).encode())
        for c in list(self.pump.clients):
            c.send(message)
            self.pump.drop(c)


def command(root: Path, container_id: str, ready_fd: int, attach_first: bool) -> list[str]:
    """argv of a new supervisor: a lean interpreter (-I -S: no site-packages at
    start) that loads only what the supervisor needs."""
    return interpreter_argv("berth.container.supervisor", [str(root), container_id, str(ready_fd)] + (
        ["--attach-first"] if attach_first else []))


def _full_environment() -> None:
    """Bring site-packages in for the exit path (release hooks may need them)."""
    if sys.flags.no_site and not getattr(_full_environment, "done", False):
        import site
        site.main()
        _full_environment.done = True


def _oom_killed(bundle: Path, container_id: str) -> bool:
    """Whether the kernel's OOM killer acted in the container's memory cgroup."""
    try:
        spec = json.loads((bundle / "config.json").read_text())
    except (OSError, ValueError):
        return False
    path = (spec.get("linux") or {}).get("cgroupsPath", "")
    if not path:
        return False
    from berth.runtime.builtin.cgroups import CgroupError, resolve_paths

    try:
        # A relative path (--cgroup-parent without a leading /) is the runtime's:
        # from its own cgroup, which is this process's.
        dirs, _ = resolve_paths(path, container_id)
    except CgroupError:
        return False
    files = [f"{dirs[key]}/{name}" for key, name in (("memory", "memory.oom_control"), ("", "memory.events"))
             if key in dirs]
    for f in files:
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
    """argv: LABEL ROOT ID READY_FD [--attach-first], or LABEL ROOT ID --state FD
    when the idle phase hands back (see berth.container.pump)."""
    _label, root, container_id, *rest = argv
    if rest[0] == "--state":
        state = read_state(int(rest[1]))
        _exit(_guarded(Path(root), container_id, state["lock"], -1, lambda sup: sup.resume(state)))
    # Detach from the starting command: it reaps the parent at once, and the
    # supervisor lives on in its own session.
    if os.fork():
        os._exit(0)
    _exit(_start(Path(root), container_id, int(rest[0]), "--attach-first" in rest[1:]))


def _exit(code: int) -> None:
    """End at once: EXIT went to the clients last, and one acting on it (a
    `wait`, then a check that nothing is left) must not find us tearing
    down an interpreter.  Nothing is left to flush but stderr."""
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)


def fork_supervisor(root: Path, container_id: str, ready_fd: int, attach_first: bool) -> int:
    """Start a supervisor as a fork of the calling process, which saves it an
    interpreter start and the imports the caller has already done.

    The caller must be `single_threaded()` and hold no SQLite connection (one must
    never cross a fork).  Returns the PID of a child that exits at once
    (wait for it); the supervisor is its child, in a new session, and
    reports on ``ready_fd`` as `command` describes.
    """
    pid = fork_flushed()
    if pid:
        return pid
    code = 1
    try:        # never return into the caller's code: this is a copy of it
        os.setsid()
        if os.fork():
            code = 0
        else:
            _forget_caller(keep=ready_fd)
            code = _start(root, container_id, ready_fd, attach_first)
    except BaseException:   # noqa: BLE001 - the copy must end here whatever happens
        import traceback
        traceback.print_exc()
    finally:
        _exit(code)


def _forget_caller(keep: int) -> None:
    """Leave a forked caller's environment for a fresh interpreter's: default
    signal handling, no terminal or pipes of the caller's held open."""
    import signal

    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(sig, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # Descriptors the caller inherited (ours are all close-on-exec and go at
    # the first exec); a parent waiting for one to close must not wait for us.
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                if os.get_inheritable(fd):
                    os.close(fd)
            except OSError:
                pass
    os.chdir("/")


def _start(root: Path, container_id: str, ready_fd: int, attach_first: bool) -> int:
    """A new supervisor, detached from its starter: log, lock, run."""
    paths = ContainerPaths(root, container_id)
    log_fd = os.open(paths.supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    lock_fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.write(ready_fd, b"failed Conflict the container already has a supervisor\n")
        return 1
    return _guarded(root, container_id, lock_fd, ready_fd, lambda sup: sup.run(attach_first))


def _guarded(root: Path, container_id: str, lock_fd: int, ready_fd: int, body) -> int:
    """Run ``body(supervisor)``; if it fails, record the container's end anyway."""
    sup = None
    try:
        sup = Supervisor(root, container_id, lock_fd, ready_fd)
        return body(sup)
    except BaseException as e:
        import traceback
        traceback.print_exc()
        if sup is None:
            if ready_fd >= 0:
                os.write(ready_fd, f"failed BerthError supervisor error: {e}\n".encode())
            return 1
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
    sys.exit(main([PROCESS_LABEL, *sys.argv[1:]]))
