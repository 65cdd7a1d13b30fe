"""The container state machine, as a transition table.

Rules:
- A container is born `created` and ends by removal (the row goes away).
- Only the supervisor moves a container into `running` (after the runtime
  started its process) and out of it (when the process exits), so the
  record never claims a process that is not there.
- `restarting` is the gap between an exit and the policy's next start.
- `dead` marks a container whose removal failed half-way; only `rm -f` helps.
- Any event not in the table is a Conflict in the caller's words.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


class Event(str, Enum):
    START = "start"          # supervisor: the process runs
    DIE = "die"              # supervisor: the process exited
    RESTART = "restart"      # supervisor: policy decided to start again
    PAUSE = "pause"
    UNPAUSE = "unpause"
    REMOVE = "remove"        # rm begins
    REMOVE_FAILED = "remove-failed"


S, E = Status, Event
TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (S.CREATED, E.START): S.RUNNING,
    (S.EXITED, E.START): S.RUNNING,
    (S.RESTARTING, E.START): S.RUNNING,
    (S.RUNNING, E.DIE): S.EXITED,
    (S.PAUSED, E.DIE): S.EXITED,
    (S.RUNNING, E.RESTART): S.RESTARTING,
    (S.PAUSED, E.RESTART): S.RESTARTING,
    (S.EXITED, E.RESTART): S.RESTARTING,
    (S.RESTARTING, E.DIE): S.EXITED,
    (S.RUNNING, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.UNPAUSE): S.RUNNING,
    (S.CREATED, E.REMOVE): S.REMOVING,
    (S.EXITED, E.REMOVE): S.REMOVING,
    (S.DEAD, E.REMOVE): S.REMOVING,
    (S.REMOVING, E.REMOVE_FAILED): S.DEAD,
}

# Statuses in which a supervisor process owns the container.
SUPERVISED = {S.RUNNING, S.PAUSED, S.RESTARTING}


def next_status(current: Status, event: Event) -> Status | None:
    """The status after `event`, or None when the table forbids it."""
    return TRANSITIONS.get((Status(current), Event(event)))
