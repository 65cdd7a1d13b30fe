"""The event journal behind `berth events` and GET /events.

An append-only JSON-lines file under the state root, written by every
berth process (CLI, supervisors, daemon) with one O_APPEND write per event,
so lines never interleave.  Readers poll it; when it grows past its limit
the newest half is kept (Docker keeps only recent events in memory).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from berth.store.locks import file_lock

MAX_BYTES = 4 << 20
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Event:
    type: str            # container, image, volume, network
    action: str          # start, die, create, destroy, tag, ...
    actor_id: str
    attributes: dict
    time_ns: int

    def message(self) -> dict:
        """Docker's events message (the Engine API's EventMessage)."""
        msg = {"Type": self.type, "Action": self.action,
               "Actor": {"ID": self.actor_id, "Attributes": self.attributes},
               "scope": "local", "time": self.time_ns // 1_000_000_000, "timeNano": self.time_ns}
        if self.type == "container":  # the deprecated fields clients still read
            msg = {"status": self.action, "id": self.actor_id,
                   "from": self.attributes.get("image", ""), **msg}
        return msg


class EventLog:
    def __init__(self, root: Path):
        self.path = Path(root) / "events.jsonl"
        self._lock = Path(root) / "events.lock"

    def emit(self, type: str, action: str, actor_id: str, **attributes) -> None:
        line = json.dumps({"t": type, "a": action, "id": actor_id, "attr": attributes,
                           "ns": time.time_ns()}, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line.encode())
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > MAX_BYTES:
            self._trim()

    def _trim(self) -> None:
        with file_lock(self._lock):
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return
            if len(data) <= MAX_BYTES:
                return
            keep = data[len(data) // 2:]
            keep = keep[keep.find(b"\n") + 1:]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(keep)
            os.replace(tmp, self.path)

    def read(self, *, since_ns: int | None = None, until_ns: int | None = None, follow: bool = False,
             stop: Callable[[], bool] = lambda: False) -> Iterator[Event]:
        """Events in order; with follow, new ones as they come until `until` or stop()."""
        offset, inode = 0, None
        while True:
            try:
                with open(self.path, "rb") as f:
                    st = os.fstat(f.fileno())
                    if inode is not None and st.st_ino != inode:
                        offset = 0  # trimmed and replaced: read the new file from its start
                    inode = st.st_ino
                    f.seek(offset)
                    for raw in f:
                        if not raw.endswith(b"\n"):
                            break
                        offset += len(raw)
                        event = _decode(raw)
                        if event is None or (since_ns is not None and event.time_ns < since_ns):
                            continue
                        if until_ns is not None and event.time_ns > until_ns:
                            return
                        yield event
            except FileNotFoundError:
                pass
            if not follow or stop() or (until_ns is not None and time.time_ns() > until_ns):
                return
            time.sleep(POLL_SECONDS)


def _decode(raw: bytes) -> Event | None:
    try:
        d = json.loads(raw)
        return Event(d["t"], d["a"], d["id"], d.get("attr") or {}, int(d["ns"]))
    except (ValueError, KeyError, TypeError):
        return None
