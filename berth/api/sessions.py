"""Attach sessions over hijacked connections, and the order clients rely on.

The docker CLI runs a container as: attach (hijacked), wait (condition
next-exit or removed), then start.  Attach and wait therefore often arrive
for a container that has no supervisor yet.  dockerd keeps a container's
streams in memory, so that just works there; berth's streams belong to the
container's supervisor, which exists only once the container starts.  This
module bridges the gap with per-daemon bookkeeping that lives only as long
as the HTTP sessions do:

* a pending attach waits for the daemon's own start, which then starts the
  supervisor in attach-first mode (so no output is missed) and hands it a
  connection;
* a wait remembers the container's last exit (FinishedAt) when the request
  arrives and returns at the next one, however quickly it comes.
"""

from __future__ import annotations

import json
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from berth import errors
from berth.container import protocol as proto
from berth.container.states import SUPERVISED
from berth.container.stdio import DetachScanner, frame
from berth.errors import BerthError, InvalidArgument, NotFound

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
_POLL = 0.05


class Attachment(Protocol):
    """A connection to a container's supervisor (ContainerManager.attach's result)."""

    def send_stdin(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def resize(self, rows: int, cols: int) -> None: ...
    def frames(self) -> Iterator[tuple[int, bytes]]: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class AttachBackend(Protocol):
    def get(self, ref: str): ...
    def start(self, ref: str, *, attach_first: bool = False): ...
    def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, rows: int = 0,
               cols: int = 0) -> Attachment: ...


def start_failure(payload: bytes) -> BerthError:
    """The error a supervisor's FAILED frame describes."""
    info = json.loads(payload)
    kind = getattr(errors, str(info.get("kind")), None)
    if not (isinstance(kind, type) and issubclass(kind, BerthError)):
        kind = BerthError
    return kind(info.get("message", "container failed to start"))


@dataclass
class PendingAttach:
    stdin: bool
    stdout: bool
    stderr: bool
    handoff: queue.Queue = field(default_factory=lambda: queue.Queue(1))
    claimed: bool = False   # a start took it: the handoff will come

    def deliver(self, conn: Attachment, frames: Iterator[tuple[int, bytes]]) -> None:
        self.handoff.put((conn, frames))

    def fail(self) -> None:
        self.handoff.put((None, None))


class ExitJournal(Protocol):
    """The engine's event journal (SystemService.events), where every exit is recorded."""

    def events(self, filters: dict[str, list[str]], *, since: float | None = None,
               until: float | None = None) -> Iterator[dict]: ...


class AttachHub:
    def __init__(self, containers: AttachBackend, journal: ExitJournal | None = None):
        self.containers = containers
        self.journal = journal
        self._changed = threading.Condition()
        self._pending: dict[str, list[PendingAttach]] = {}

    # -- attach before start ---------------------------------------------------------------

    def register(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool) -> PendingAttach:
        pending = PendingAttach(stdin, stdout, stderr)
        with self._changed:
            self._pending.setdefault(container_id, []).append(pending)
        return pending

    def unregister(self, container_id: str, pending: PendingAttach) -> None:
        with self._changed:
            self._drop(container_id, pending)

    def _drop(self, container_id: str, pending: PendingAttach) -> None:
        waiting = self._pending.get(container_id, [])
        if pending in waiting:
            waiting.remove(pending)
        if not waiting:
            self._pending.pop(container_id, None)

    def start(self, container_id: str) -> None:
        """Start the container; attach clients waiting for it get its streams from the first byte."""
        with self._changed:
            pending = self._pending.pop(container_id, [])
            for p in pending:
                p.claimed = True
        if not pending:
            try:
                self.containers.start(container_id)
            finally:
                self._notify()
            return
        try:
            self.containers.start(container_id, attach_first=True)
        except BaseException:
            for p in pending:
                p.fail()
            self._notify()
            raise
        self._notify()
        failure = None
        first = True
        for p in pending:
            try:
                conn = self.containers.attach(container_id, stdin=p.stdin, stdout=p.stdout, stderr=p.stderr)
            except BerthError:
                p.fail()
                continue
            frames = conn.frames()
            if first:
                # The supervisor starts the process once its first client said
                # hello and tells that client the outcome before any output.
                first = False
                for kind, payload in frames:
                    if kind == proto.FAILED:
                        failure = start_failure(payload)
                    break
                self._notify()  # started (or failed): waiters look again now
            p.deliver(conn, frames)
        if failure is not None:
            raise failure

    def await_start(self, container_id: str, pending: PendingAttach) -> tuple[Attachment | None, Iterator | None]:
        """Block until `start` hands over the container's streams (None: it went away or
        failed to start).  A container started some other way is attached directly."""
        try:
            while True:
                try:
                    return pending.handoff.get(timeout=0.5)
                except queue.Empty:
                    pass
                try:
                    c = self.containers.get(container_id)
                except NotFound:
                    return None, None
                if c.status in SUPERVISED:
                    with self._changed:
                        claimed = pending.claimed
                        if not claimed:
                            self._drop(container_id, pending)
                    if claimed:
                        return pending.handoff.get()
                    # Started some other way (`berth start`): attach directly.
                    conn = self.containers.attach(container_id, stdin=pending.stdin, stdout=pending.stdout,
                                                  stderr=pending.stderr)
                    return conn, conn.frames()
        finally:
            self.unregister(container_id, pending)

    # -- wait ------------------------------------------------------------------------------

    def waiter(self, ref: str, condition: str):
        """Check the request now, block in the returned function: (exit code, error message)."""
        condition = condition or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidArgument(f"invalid condition: {condition!r}")
        began = time.time()
        first = self.containers.get(ref)
        seen_exit = first.state.get("FinishedAt")

        def block() -> tuple[int, str | None]:
            code = first.state.get("ExitCode", 0)
            error = first.state.get("Error") or None
            asked = False   # the supervisor, just now: the next look need not wait
            while True:
                try:
                    c = self.containers.get(first.id)
                except NotFound:
                    # Removed (run --rm): its supervisor may have recorded the
                    # exit and removed it between two looks.
                    journal_code = self._last_exit(first.id, began)
                    return (code if journal_code is None else journal_code), error
                if c.state.get("FinishedAt") != seen_exit or c.status not in SUPERVISED:
                    code, error = c.state.get("ExitCode", 0), c.state.get("Error") or None
                exited = c.state.get("FinishedAt") != seen_exit
                if condition == "not-running" and c.status not in SUPERVISED:
                    return code, error
                if condition == "next-exit" and exited:
                    return code, error
                if c.status in SUPERVISED and not asked:
                    seen = self._exit_of(c.id)
                    if seen is not None:
                        code = seen
                        if condition == "next-exit":
                            return code, error
                        continue
                    # Its supervisor hung up: it has just recorded the exit (and
                    # removed an --rm container), or is about to.  Look again at once.
                    asked = True
                    continue
                asked = False
                with self._changed:
                    self._changed.wait(_POLL)
        return block

    def _last_exit(self, container_id: str, since: float) -> int | None:
        if self.journal is None:
            return None
        code = None
        for message in self.journal.events({"container": [container_id], "event": ["die"]}, since=since,
                                           until=time.time()):
            try:
                code = int(message["Actor"]["Attributes"]["exitCode"])
            except (KeyError, TypeError, ValueError):
                continue
        return code

    def _exit_of(self, container_id: str) -> int | None:
        """Block until the running container exits: its code, None without a supervisor."""
        try:
            conn = self.containers.attach(container_id, stdin=False, stdout=False, stderr=False)
        except BerthError:
            return None
        try:
            for kind, payload in conn.frames():
                if kind == proto.EXIT:
                    return int(payload)
            return None
        finally:
            conn.close()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()


# -- relaying ------------------------------------------------------------------------------

def relay(stream, conn: Attachment, frames: Iterator[tuple[int, bytes]], *, tty: bool, stdin: bool,
          detach_keys: bytes = b"") -> None:
    """Pump a supervisor connection to a hijacked client until the container
    exits, the client detaches (detach keys, scanned here as dockerd does),
    or the client goes away.  The client closing its sending side ends the
    container's stdin; output keeps flowing."""
    finished = threading.Event()

    def pump_stdin() -> None:
        scanner = DetachScanner(detach_keys) if detach_keys else None
        try:
            while True:
                data = stream.recv()
                if not data:
                    if stdin:
                        conn.close_stdin()
                    if wait_hangup(stream, finished):
                        interrupt(conn)
                    return
                if not stdin:
                    continue  # not attached: only watching for the client to leave
                detached = False
                if scanner is not None:
                    data, detached = scanner.feed(data)
                if data:
                    conn.send_stdin(data)
                if detached:
                    interrupt(conn)  # ends the output loop below
                    return
        except OSError:
            return

    threading.Thread(target=pump_stdin, daemon=True, name="berth-api-stdin").start()
    try:
        for kind, payload in frames:
            if kind in (proto.STDOUT, proto.STDERR):
                stream.sendall(payload if tty else frame(kind, payload))
            elif kind in (proto.EXIT, proto.FAILED):
                return
    except OSError:
        return
    finally:
        finished.set()
        conn.close()


def wait_hangup(stream, finished: threading.Event) -> bool:
    """After the client stopped sending: True once it has closed the whole
    connection (a unix socket reports POLLHUP only then, not on half-close),
    False when the session ended first."""
    poller = select.poll()
    try:
        poller.register(stream.fileno(), select.POLLHUP)
    except (OSError, ValueError):
        return False
    while not finished.is_set():
        for _fd, events in poller.poll(500):
            if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return not finished.is_set()
    return False


def interrupt(conn) -> None:
    """Wake a thread blocked reading `conn` (closing alone does not, shutting down does)."""
    try:
        s = socket.socket(fileno=os.dup(conn.fileno()))
    except OSError:
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()
