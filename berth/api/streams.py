"""Turning the engine's blocking producers into response bodies.

Engine calls that report as they go (a pull's progress callback, an export
writing to a file object) run in a worker thread and hand their output to
the connection's thread through a bounded queue, so a slow client slows
the producer down and a client that goes away stops it (its next write
raises BrokenPipeError).
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from berth.api.routing import json_body
from berth.api.httpstatus import message_for

CHUNK = 1 << 16
_END = object()


class _Channel:
    def __init__(self, maxsize: int):
        self.queue: queue.Queue = queue.Queue(maxsize)
        self.cancelled = threading.Event()

    def put(self, item: Any) -> None:
        while True:
            if self.cancelled.is_set():
                raise BrokenPipeError("the client went away")
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


def produced(work: Callable[[Callable[[Any], None]], Any], *, maxsize: int = 64,
             name: str = "berth-api-producer") -> Iterator[Any]:
    """The items `work(put)` puts, in order, as an iterator.

    An exception raised by `work` is raised by the iterator after the items
    put before it; closing the iterator early makes the next `put` raise.
    """
    channel = _Channel(maxsize)

    def run() -> None:
        try:
            work(channel.put)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            outcome = e
        else:
            outcome = None
        try:
            channel.put((_END, outcome))
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()

    def items() -> Iterator[Any]:
        try:
            while True:
                item = channel.queue.get()
                if isinstance(item, tuple) and len(item) == 2 and item[0] is _END:
                    if item[1] is not None:
                        raise item[1]
                    return
                yield item
        finally:
            channel.cancelled.set()

    return items()


class closing:
    """Iterate `items`; `cleanup` runs once when they are exhausted or the
    iterator is closed, even if it was never started (a generator's own
    `finally` would not run then)."""

    def __init__(self, items: Iterator, cleanup: Callable[[], Any]):
        self._items = iter(items)
        self._cleanup: Callable[[], Any] | None = cleanup

    def __iter__(self) -> "closing":
        return self

    def __next__(self):
        try:
            return next(self._items)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is None:
            return
        try:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        finally:
            cleanup()


class _QueueWriter(io.RawIOBase):
    """A writable file whose bytes go to the response in CHUNK-sized pieces."""

    def __init__(self, put: Callable[[bytes], None]):
        self._put = put
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buf += data
        if len(self._buf) >= CHUNK:
            self._put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def finish(self) -> None:
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()


def written(write_to: Callable[[io.RawIOBase], Any]) -> Iterator[bytes]:
    """The bytes `write_to(file)` writes (an export, a save, an archive)."""
    def work(put):
        out = _QueueWriter(put)
        write_to(out)
        out.finish()
    return produced(work)


def json_messages(work: Callable[[Callable[[dict], None]], Any]) -> Iterator[bytes]:
    """Docker's JSON message stream: what `work(emit)` emits, one object a line.

    A failure before the first line is raised (served with `prime`, it is
    still an HTTP error); after it, the failure is the final
    {"errorDetail", "error"} line, as dockerd reports once it has flushed.
    """
    sent = False
    try:
        for message in produced(work):
            yield json_body(message)
            sent = True
    except GeneratorExit:
        raise
    except Exception as e:  # noqa: BLE001 - see above
        if not sent:
            raise
        yield json_body(error_message(e))


def error_message(error: BaseException) -> dict:
    message = message_for(error)
    return {"errorDetail": {"message": message}, "error": message}
