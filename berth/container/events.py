"""Container events in Docker's shape, for the journal behind `berth events`."""

from __future__ import annotations

from berth.container.record import Container
from berth.store.events import EventLog


def emit_container_event(events: EventLog, c: Container, action: str, **extra) -> None:
    """A container event with Docker's actor attributes (labels, image, name)."""
    attributes = dict(c.config.get("Labels") or {})
    attributes.update(image=c.spec.get("ImageName", ""), name=c.name, **extra)
    events.emit("container", action, c.id, **attributes)
