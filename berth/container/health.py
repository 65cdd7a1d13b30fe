"""HEALTHCHECK: Docker's health monitor (moby daemon/health.go), in berth's shape.

A container's Config.Healthcheck is {Test, Interval, Timeout, StartPeriod,
StartInterval, Retries}, durations in nanoseconds, zero meaning the default;
Test is ["NONE"], ["CMD", arg...] or ["CMD-SHELL", command].  Its results go
to the container's State.Health: {Status, FailingStreak, Log}, Status
"starting" at each start, "healthy" after a passing probe, "unhealthy" after
Retries failures in a row (failures within StartPeriod of the start do not
count while still starting), Log the last five results.

The timer lives in the supervisor's event loop (berth.container.pump, which
must stay lean): when a probe is due, it spawns this module (`main`) as a
process of its own, which runs one probe and exits.  The probe execs the
test in the container through the OCI runtime, as `berth exec` does, waits
for it at most Timeout (then kills it: exit code -1), keeps 4096 bytes of
its output, records the result in the container's record in one
transaction (dropped if the container stopped or started again meanwhile),
emits `health_status: ...` when the status changes, and tells the timer by
its exit status whether the container is still starting.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from berth.container.events import emit_container_event
from berth.container.pump import PROBE_LABEL, PROBE_STARTING, interpreter_argv
from berth.container.record import Container
from berth.container.states import Status

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
STATUSES = (STARTING, HEALTHY, UNHEALTHY, NONE)     # `ps --filter health=`

_SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * _SECOND
DEFAULT_TIMEOUT = 30 * _SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * _SECOND
DEFAULT_RETRIES = 3
MAX_OUTPUT = 4096
MAX_LOG_ENTRIES = 5


@dataclass(frozen=True)
class Settings:
    """A container's healthcheck with Docker's defaults applied (nanoseconds)."""

    test: tuple[str, ...]
    interval: int
    timeout: int
    start_period: int
    start_interval: int
    retries: int


def settings(config: Mapping) -> Settings | None:
    """The healthcheck a container's Config asks for, or None (none, or NONE)."""
    hc = config.get("Healthcheck") or {}
    test = tuple(hc.get("Test") or ())
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        return None

    def value(key: str, default: int) -> int:
        v = hc.get(key) or 0
        return int(v) if v > 0 else default

    return Settings(test=test, interval=value("Interval", DEFAULT_INTERVAL),
                    timeout=value("Timeout", DEFAULT_TIMEOUT),
                    start_period=value("StartPeriod", DEFAULT_START_PERIOD),
                    start_interval=value("StartInterval", DEFAULT_START_INTERVAL),
                    retries=value("Retries", DEFAULT_RETRIES))


def merge(user: Mapping | None, image: Mapping | None) -> dict | None:
    """moby's merge() of Healthcheck: the container's fields win, an empty
    Test or a zero duration inherits the image's."""
    if not user:
        return dict(image) if image else None
    out = dict(user)
    if image:
        if not out.get("Test"):
            out["Test"] = image.get("Test")
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not out.get(key) and image.get(key):
                out[key] = image[key]
    return {k: v for k, v in out.items() if v is not None}


def command(c: Container, s: Settings) -> list[str]:
    """The process a probe runs: CMD's arguments, or CMD-SHELL's under the
    container's Shell (`/bin/sh -c` by default)."""
    args = list(s.test[1:])
    if s.test[0] == "CMD-SHELL":
        return list(c.config.get("Shell") or ["/bin/sh", "-c"]) + args
    return args


def initial(state: Mapping) -> dict:
    """State.Health at a start: starting, no streak; the log is kept (as moby does)."""
    old = state.get("Health") or {}
    return {"Status": STARTING, "FailingStreak": 0, "Log": list(old.get("Log") or [])}


def probe_argv(root: Path, container_id: str) -> list[str]:
    """argv of one probe, as the supervisor's loop spawns it."""
    return interpreter_argv("berth.container.health", [str(root), container_id], label=PROBE_LABEL)


def judge(health: Mapping | None, result: Mapping, s: Settings, since_start: float) -> dict:
    """moby's handleProbeResult: State.Health after ``result``, a probe that
    began ``since_start`` seconds after the container started."""
    health = dict(health or {"Status": STARTING, "FailingStreak": 0, "Log": []})
    status, streak = health.get("Status") or STARTING, health.get("FailingStreak") or 0
    log = (list(health.get("Log") or []) + [dict(result)])[-MAX_LOG_ENTRIES:]
    if result["ExitCode"] == 0:
        status, streak = HEALTHY, 0
    elif not (status == STARTING and since_start * _SECOND < s.start_period):
        streak += 1
        if streak >= s.retries:
            status = UNHEALTHY
    return {"Status": status, "FailingStreak": streak, "Log": log}


# -- one probe, in a process of its own ---------------------------------------------------

def main(argv: list[str]) -> int:
    """argv: LABEL ROOT ID.  Run one probe; exit PROBE_STARTING while the
    container is still starting, else 0."""
    _label, root, container_id = argv[:3]
    code = 1
    try:
        code = _probe(Path(root), container_id)
    except BaseException:   # noqa: BLE001 - a probe's failure is the supervisor log's business
        import traceback
        traceback.print_exc()
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)


def _probe(root: Path, container_id: str) -> int:
    from berth.container.store import ContainerStore
    from berth.errors import NotFound
    from berth.image.config import parse_time
    from berth.runtime.interface import set_child_subreaper
    from berth.store.db import Database
    from berth.store.events import EventLog
    from berth.units import format_rfc3339_nano

    set_child_subreaper()   # the exec'd test becomes our child once the runtime exits
    store = ContainerStore(Database(root / "berth.db"))
    try:
        c = store.get(container_id)
    except NotFound:
        return 0
    s = settings(c.config)
    if s is None or c.status != Status.RUNNING:
        return 0    # paused (moby stops probing meanwhile), or stopped
    started_at = c.state.get("StartedAt")
    events = EventLog(root)
    start_ns = time.time_ns()
    exit_code, output = _run(root, c, s, events)
    result = {"Start": format_rfc3339_nano(start_ns), "End": format_rfc3339_nano(time.time_ns()),
              "ExitCode": exit_code, "Output": output}
    since_start = start_ns / _SECOND - parse_time(started_at)
    if not _alive(c.state.get("Pid") or 0):
        return 0    # the container is stopping: this probe's failure is no news
    changed: dict = {}

    def update(current: Container) -> dict | None:
        if current.status != Status.RUNNING or current.state.get("StartedAt") != started_at:
            return None     # stopped, or started again, while we probed
        old = current.state.get("Health") or {}
        changed["old"] = old.get("Status")
        changed["new"] = (health := judge(old, result, s, since_start))["Status"]
        return {"Health": health}

    c = store.modify_state(container_id, update) or c
    if "new" not in changed:
        return 0
    if changed["new"] != changed["old"]:
        emit_container_event(events, c, f"health_status: {changed['new']}")
    return PROBE_STARTING if changed["new"] == STARTING else 0


def _run(root: Path, c: Container, s: Settings, events) -> tuple[int, str]:
    """Exec the test in the container: (exit code, output); -1 when it could
    not run or ran out of time."""
    from berth.container import runspec
    from berth.container.paths import ContainerPaths
    from berth.container.runtimes import runtime_for
    from berth.container.users import resolve_user
    from berth.errors import BerthError
    from berth.runtime import spec as rs
    from berth.runtime.interface import Stdio
    from berth.units import format_duration

    cmd = command(c, s)
    paths = ContainerPaths(root, c.id)
    exec_id = os.urandom(32).hex()
    emit_container_event(events, c, "exec_create: " + " ".join(cmd), execID=exec_id)
    read_fd = write_fd = -1
    try:
        if not cmd or not cmd[0]:
            raise BerthError("No exec command specified")
        spec = json.loads((paths.bundle / "config.json").read_text())
        u = resolve_user(paths.rootfs, c.config.get("User") or "")
        process = rs.exec_process_spec(spec, rs.ProcessOptions(
            args=cmd, env=runspec.container_env(dict(c.config, Tty=False), c.config.get("Hostname") or ""),
            cwd=c.config.get("WorkingDir") or "/",
            user=rs.User(uid=u.uid, gid=u.gid, additional_gids=u.additional_gids), terminal=False))
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        emit_container_event(events, c, "exec_start: " + " ".join(cmd), execID=exec_id)
        pid = runtime_for(c.host_config.get("Runtime"), paths.runtime_root).exec(
            c.id, process, stdio=Stdio(stdout=write_fd, stderr=write_fd), detach=True)
        os.close(write_fd)
        write_fd = -1
        exit_code, output, timed_out = _wait(pid, read_fd, s.timeout / _SECOND)
    except (BerthError, OSError, ValueError) as e:
        return -1, str(e)
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    emit_container_event(events, c, "exec_die", execID=exec_id, exitCode=str(exit_code))
    if timed_out:
        limit = format_duration(s.timeout)
        return -1, (f"Health check exceeded timeout ({limit}): {output}" if output
                    else f"Health check exceeded timeout ({limit})")
    return exit_code, output


def _wait(pid: int, read_fd: int, timeout: float) -> tuple[int, str, bool]:
    """Collect the output of process ``pid`` (our child) until it exits, at
    most ``timeout`` seconds (then kill it): (exit code, output, timed out)."""
    import select
    import signal

    deadline = time.monotonic() + timeout
    out = bytearray()
    truncated = False

    def take(data: bytes) -> None:
        nonlocal truncated
        room = MAX_OUTPUT - len(out)
        out.extend(data[:max(room, 0)])
        truncated = truncated or len(data) > room

    def text() -> str:
        return out.decode(errors="replace") + ("..." if truncated else "")

    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(read_fd, select.POLLIN)
        exited = False
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return _exit_code(_reap(pid)), text(), True
            for fd, _events in poller.poll(remaining * 1000):
                if fd == pidfd:
                    exited = True
                    continue
                data = os.read(read_fd, 65536)
                if data:
                    take(data)
                else:
                    poller.unregister(read_fd)
    finally:
        os.close(pidfd)
    status = _reap(pid)
    # What it wrote before it exited is in the pipe; a child it left behind
    # that holds the pipe open is not waited for.
    os.set_blocking(read_fd, False)
    try:
        while data := os.read(read_fd, 65536):
            take(data)
    except BlockingIOError:
        pass
    return _exit_code(status), text(), False


def _reap(pid: int) -> int | None:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def _exit_code(status: int | None) -> int:
    """An exec's exit code as Docker reports it: 128+N for signal N; -1 unknown."""
    if status is None:
        return -1
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _alive(pid: int) -> bool:
    """Whether the container's init still runs (not gone, not a zombie)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")
