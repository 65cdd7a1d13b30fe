"""Containers in the metadata database."""

from __future__ import annotations

import json
import re

from berth.container.record import Container
from berth.container.states import Event, Status, next_status
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.store.db import Database

_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


class ContainerStore:
    def __init__(self, db: Database):
        self.db = db

    def _row(self, r) -> Container:
        return Container(id=r["id"], name=r["name"], image_id=r["image_id"], created=r["created"],
                         status=Status(r["status"]), spec=json.loads(r["config"]), state=json.loads(r["state"]))

    def add(self, c: Container) -> None:
        with self.db.transaction() as conn:
            clash = conn.execute("SELECT id FROM containers WHERE name=?", (c.name,)).fetchone()
            if clash:
                raise Conflict(f'Conflict. The container name "/{c.name}" is already in use by container '
                               f'"{clash["id"]}". You have to remove (or rename) that container to be able '
                               "to reuse that name.")
            conn.execute("INSERT INTO containers(id, name, image_id, created, status, config, state)"
                         " VALUES (?,?,?,?,?,?,?)",
                         (c.id, c.name, c.image_id, c.created, c.status.value, json.dumps(c.spec),
                          json.dumps(c.state)))

    def get(self, container_id: str) -> Container:
        r = self.db.query_one("SELECT * FROM containers WHERE id=?", (container_id,))
        if r is None:
            raise NotFound(f"No such container: {container_id}")
        return self._row(r)

    def find(self, ref: str) -> Container | None:
        """Docker's lookup: full ID, exact name, then unique ID prefix."""
        r = self.db.query_one("SELECT * FROM containers WHERE id=? OR name=?", (ref, ref.lstrip("/")))
        if r is not None:
            return self._row(r)
        if re.fullmatch(r"[a-f0-9]{1,64}", ref):
            rows = self.db.query("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {ref}")
            if rows:
                return self._row(rows[0])
        return None

    def resolve(self, ref: str) -> Container:
        c = self.find(ref)
        if c is None:
            raise NotFound(f"No such container: {ref}")
        return c

    def list(self) -> list[Container]:
        return [self._row(r) for r in self.db.query("SELECT * FROM containers ORDER BY created DESC")]

    def using_image(self, image_id: str) -> list[Container]:
        return [self._row(r) for r in self.db.query("SELECT * FROM containers WHERE image_id=?", (image_id,))]

    def transition(self, container_id: str, event: Event, **state_changes) -> Container:
        """Apply an event atomically: check the table, then write status and state."""
        with self.db.transaction() as conn:
            r = conn.execute("SELECT * FROM containers WHERE id=?", (container_id,)).fetchone()
            if r is None:
                raise NotFound(f"No such container: {container_id}")
            c = self._row(r)
            new = next_status(c.status, event)
            if new is None:
                raise Conflict(f"cannot {event.value} container {c.short_id}: it is {c.status.value}")
            c.status = new
            c.state.update(state_changes)
            c.state.update(_flags(new))
            conn.execute("UPDATE containers SET status=?, state=? WHERE id=?",
                         (new.value, json.dumps(c.state), c.id))
            return c

    def update_state(self, container_id: str, **state_changes) -> Container:
        """Change bookkeeping fields without a status change."""
        with self.db.transaction() as conn:
            r = conn.execute("SELECT * FROM containers WHERE id=?", (container_id,)).fetchone()
            if r is None:
                raise NotFound(f"No such container: {container_id}")
            c = self._row(r)
            c.state.update(state_changes)
            conn.execute("UPDATE containers SET state=? WHERE id=?", (json.dumps(c.state), c.id))
            return c

    def modify_state(self, container_id: str, change) -> Container | None:
        """Read-modify-write of bookkeeping fields in one transaction:
        ``change(container)`` returns the fields to set, or None to leave the
        record alone (then None is returned, as for a container gone)."""
        with self.db.transaction() as conn:
            r = conn.execute("SELECT * FROM containers WHERE id=?", (container_id,)).fetchone()
            if r is None:
                return None
            c = self._row(r)
            changes = change(c)
            if changes is None:
                return None
            c.state.update(changes)
            conn.execute("UPDATE containers SET state=? WHERE id=?", (json.dumps(c.state), c.id))
            return c

    def update_spec(self, container_id: str, spec: dict) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET config=? WHERE id=?", (json.dumps(spec), container_id))

    def rename(self, container_id: str, new_name: str) -> None:
        new_name = validate_name(new_name)
        with self.db.transaction() as conn:
            clash = conn.execute("SELECT id FROM containers WHERE name=?", (new_name,)).fetchone()
            if clash:
                raise Conflict(f'Conflict. The container name "/{new_name}" is already in use by container '
                               f'"{clash["id"]}". You have to remove (or rename) that container to be able '
                               "to reuse that name.")
            conn.execute("UPDATE containers SET name=? WHERE id=?", (new_name, container_id))

    def delete(self, container_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM containers WHERE id=?", (container_id,))


def _flags(status: Status) -> dict:
    """Docker's State booleans, derived from the status so they never disagree."""
    return {"Status": status.value,
            "Running": status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING),
            "Paused": status == Status.PAUSED, "Restarting": status == Status.RESTARTING,
            "Dead": status == Status.DEAD}
