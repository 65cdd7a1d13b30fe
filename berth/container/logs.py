"""Docker's json-file log driver: writing, rotating and reading container logs.

The files are byte-for-byte what dockerd writes, so tools that read Docker's
logs read ours and the reverse:

* one JSON object per line, ``{"log":"hi\\n","stream":"stdout","time":"..."}``,
  with Go's escaping (``<``, ``>``, ``&`` and control bytes as ``\\u00XX``,
  invalid UTF-8 bytes as ``\\ufffd``) and RFC 3339 times with up to nine
  fractional digits, trailing zeros trimmed;
* the output is cut into one entry per line (the newline stays in ``log``);
  a line longer than 16 KiB becomes several entries, all with the time of the
  first, and only the last carries the newline; output still unterminated
  when its stream ends is written without one;
* with ``max-size``, a file that has reached the size is renamed to ``.1``
  (older ones shift to ``.2`` ... and the oldest beyond ``max-file`` goes)
  before the next entry is written; with ``max-file=1`` it is truncated
  instead; with ``compress`` the rotated files are gzipped, the time of their
  last entry in the gzip header, as moby's loggerutils does.

Writer and readers are usually different processes (the supervisor writes,
``logs`` reads).  They agree through flock(2) on the current file: a
rotation holds it exclusively while it moves files, a reader shares it while
it opens the set, so a reader never sees a file twice or misses one.
"""

from __future__ import annotations

import calendar
import collections
import fcntl
import gzip
import itertools
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

from berth.container.jsonlog import (  # noqa: F401 - the writer and format, re-exported
    LINE_LIMIT, LOCK_WAIT as _LOCK_WAIT, JsonFileWriter, check_options as _check_options, encode_entry,
    flock_within as _flock, format_time, format_time_fixed, to_ns as _to_ns)
from berth.errors import InvalidArgument

log = logging.getLogger(__name__)

_READ_BLOCK = 1 << 20
_TAIL_BLOCK = 64 * 1024
_SNAPSHOT_ATTEMPTS = 50
_MARK = 64                  # longer than the end of an entry: ',"time":"<ns time>"}\n'
_NS = 1_000_000_000


# --- timestamps --------------------------------------------------------------

_TIME_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:Z|([+-])(\d\d):(\d\d))\Z")


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp; ValueError if it is not one."""
    m = _TIME_RE.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, frac, sign, off_h, off_m = m.groups()
    sec = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
    if sign:
        offset = int(off_h) * 3600 + int(off_m) * 60
        sec += -offset if sign == "+" else offset
    return sec * _NS + (int(frac[:9].ljust(9, "0")) if frac else 0)


# --- the entry format (encoding: berth.container.jsonlog) ---------------

@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of a container's log.

    ``data`` is the output itself, ending in a newline unless the line was
    split or never terminated; ``time_text`` is the entry's time as Docker
    shows it (UTC, nine fractional digits), ``time_ns`` the exact value.
    """

    stream: str
    data: bytes
    time: float
    time_text: str
    time_ns: int

    def line(self, timestamps: bool = False) -> bytes:
        """The bytes ``docker logs`` prints for this entry (``-t`` adds the time)."""
        if timestamps:
            return self.time_text.encode() + b" " + self.data
        return self.data


_SURROGATES = re.compile("[\ud800-\udfff]")


def decode_entry(line: bytes) -> LogEntry | None:
    """The entry of one json-file line, or None if the line is not one (torn or foreign)."""
    try:
        obj = json.loads(line.decode("utf-8", "replace"))
        if not isinstance(obj, dict):
            return None
        text, stream, stamp = obj.get("log", ""), obj.get("stream", ""), obj["time"]
        if not (isinstance(text, str) and isinstance(stream, str) and isinstance(stamp, str)):
            return None
        ns = parse_time(stamp)
    except (ValueError, KeyError):
        return None
    try:
        data = text.encode()
    except UnicodeEncodeError:
        # A lone surrogate escape decodes to U+FFFD in Go.
        data = _SURROGATES.sub("\ufffd", text).encode()
    return LogEntry(stream, data, ns / _NS, format_time_fixed(ns), ns)


# --- options -----------------------------------------------------------------

@dataclass(frozen=True)
class JsonFileOptions:
    """The json-file driver's ``--log-opt`` settings."""

    max_size: int | None = None
    max_file: int = 1
    compress: bool = False

    _KNOWN = frozenset({"max-file", "max-size", "compress", "labels", "labels-regex", "env",
                        "env-regex", "tag"})

    @classmethod
    def from_log_opts(cls, opts: Mapping[str, str]) -> JsonFileOptions:
        """Validate ``--log-opt`` values as dockerd does for json-file.

        labels, env and tag are accepted like Docker accepts them; berth does
        not write their ``attrs`` (they only show with ``--details``).
        """
        for key in opts:
            if key not in cls._KNOWN:
                raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
        max_size = None
        if "max-size" in opts:
            max_size = parse_human_size(opts["max-size"])
        max_file = 1
        if "max-file" in opts:
            value = opts["max-file"]
            if not re.fullmatch(r"[+-]?\d+", value):
                raise InvalidArgument(f'strconv.Atoi: parsing "{value}": invalid syntax')
            max_file = int(value)
        compress = False
        if "compress" in opts:
            value = opts["compress"]
            if value in ("1", "t", "T", "TRUE", "true", "True"):
                compress = True
            elif value not in ("0", "f", "F", "FALSE", "false", "False"):
                raise InvalidArgument(f'strconv.ParseBool: parsing "{value}": invalid syntax')
        _check_options(max_size, max_file, compress)
        return cls(max_size, max_file, compress)


# go-units' FromHumanSize: log sizes are decimal, as in dockerd.
from berth.units import parse_human_size  # noqa: E402


# --- writing: berth.container.jsonlog ----------------------------------------

def _gzip_last_ns(f) -> int | None:
    """The lastTime moby keeps in a rotated file's gzip header, if it is there."""
    head = f.read(12)
    f.seek(0)
    if len(head) < 12 or head[:3] != b"\x1f\x8b\x08" or not head[3] & 0x04:
        return None
    (xlen,) = struct.unpack("<H", head[10:12])
    extra = f.read(12 + xlen)[12:]
    f.seek(0)
    try:
        return parse_time(json.loads(extra)["lastTime"])
    except (ValueError, KeyError, TypeError):
        return None


# --- reading -----------------------------------------------------------------

class _Source:
    """One opened log file, plain or gzipped.

    ``end`` is where reading a plain file stops: just past its last newline
    when it was opened (a later entry belongs to whoever follows the file),
    and ``mark`` the bytes before it, by which a follower notices the file
    was truncated and rewritten meanwhile.
    """

    __slots__ = ("file", "ino", "gz", "end", "mark")

    def __init__(self, file, gz: bool):
        fd = file.fileno()
        st = os.fstat(fd)
        self.file = file
        self.ino = st.st_ino
        self.gz = gz
        self.end = 0 if gz else _complete_end(fd, st.st_size)
        self.mark = os.pread(fd, min(self.end, _MARK), self.end - min(self.end, _MARK)) if self.end else b""

    def close(self) -> None:
        self.file.close()

    def last_ns(self) -> int | None:
        if self.gz:
            return _gzip_last_ns(self.file)
        for entry in self.newest_first():
            return entry.time_ns
        return None

    def entries(self) -> Iterator[LogEntry]:
        """The file's entries, oldest first."""
        if not self.gz:
            yield from _decode_lines(_split_lines(_pread_blocks(self.file.fileno(), 0, self.end)))
            return
        try:
            with gzip.GzipFile(fileobj=self.file, mode="rb") as z:
                yield from _decode_lines(_split_lines(iter(lambda: z.read(_READ_BLOCK), b"")))
        except (OSError, EOFError, zlib.error) as e:
            log.warning("cannot read compressed log %s: %s", self.file.name, e)

    def newest_first(self, limit: int | None = None) -> Iterator[LogEntry]:
        """The file's entries, last first; plain files are read backwards."""
        if self.gz:
            # A gzip stream cannot be read backwards: keep the last entries.
            yield from reversed(collections.deque(self.entries(), maxlen=limit))
            return
        yield from _decode_lines(_reverse_lines(self.file.fileno(), self.end))


def _pread_blocks(fd: int, start: int, end: int) -> Iterator[bytes]:
    pos = start
    while pos < end:
        block = os.pread(fd, min(_READ_BLOCK, end - pos), pos)
        if not block:
            return
        pos += len(block)
        yield block


def _split_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Complete lines from a stream of blocks; an unterminated tail is dropped."""
    rest = b""
    for block in blocks:
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        yield from lines


def _decode_lines(lines: Iterable[bytes]) -> Iterator[LogEntry]:
    for line in lines:
        entry = decode_entry(line)
        if entry is not None:
            yield entry


def _reverse_lines(fd: int, end: int) -> Iterator[bytes]:
    """Complete lines of ``fd[:end]``, last first, reading backwards in blocks.

    Bytes after the last newline belong to an entry still being written and
    are left out.
    """
    pos = _complete_end(fd, end)
    tail: bytes | None = None       # the start of the line that runs into the block after
    while pos > 0:
        size = min(_TAIL_BLOCK, pos)
        pos -= size
        block = os.pread(fd, size, pos)
        if tail is None:
            lines = block.split(b"\n")
            lines.pop()             # empty: the range ends with a newline
        else:
            lines = (block + tail).split(b"\n")
        tail = lines[0]
        yield from reversed(lines[1:])
    if tail is not None:
        yield tail


def _complete_end(fd: int, size: int) -> int:
    """The offset just past the last newline in ``fd[:size]``."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    pos = size
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        nl = os.pread(fd, step, pos - step).rfind(b"\n")
        if nl >= 0:
            return pos - step + nl + 1
        pos -= step
    return 0


def _rotated_indices(path: str) -> list[int]:
    directory, base = os.path.split(path)
    prefix = base + "."
    found = set()
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    for name in names:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        if rest.endswith(".gz"):
            rest = rest[:-3]
        if rest.isdigit() and rest[0] != "0":
            found.add(int(rest))
    return sorted(found, reverse=True)


def _open_rotated(path: str, index: int) -> _Source | None:
    name = f"{path}.{index}"
    plain = _open_plain(name)
    if plain is not None:
        return plain
    try:
        return _Source(open(name + ".gz", "rb"), gz=True)
    except FileNotFoundError:
        return None


def _open_plain(path: str) -> _Source | None:
    try:
        return _Source(open(path, "rb", buffering=0), gz=False)
    except FileNotFoundError:
        return None


def _open_rotated_all(path: str) -> list[_Source]:
    """The rotated files, oldest first."""
    rotated = []
    for index in _rotated_indices(path):
        src = _open_rotated(path, index)
        if src is not None:         # vanished: a writer that did not wait for us
            rotated.append(src)
    return rotated


def _snapshot(path: str) -> list[_Source]:
    """The log's files, oldest first, as one consistent set.

    A rotation renames the files one by one, holding an exclusive flock on
    the file it moves out of the way until its successor exists (see
    ``JsonFileWriter._rotate``); so while a reader holds a shared lock on
    the current file, and the path still names it, the rotated files stay
    where they are.
    """
    for _ in range(_SNAPSHOT_ATTEMPTS):
        current = _open_plain(path)
        if current is None:
            if not _rotated_indices(path) and not os.path.exists(path):
                return []               # no log, not even a rotated one
            # A rotation has moved the current file to .1 and holds its
            # lock until the next one exists: wait for that, then look again.
            moved = _open_plain(f"{path}.1")
            if moved is None:
                time.sleep(0.001)
            else:
                _flock(moved.file.fileno(), fcntl.LOCK_SH, _LOCK_WAIT)
                moved.close()
            continue
        locked = _flock(current.file.fileno(), fcntl.LOCK_SH, _LOCK_WAIT)
        try:
            if not locked or _same_file(path, current):
                return _open_rotated_all(path) + [current]
        finally:
            if locked:
                fcntl.flock(current.file.fileno(), fcntl.LOCK_UN)
        current.close()     # rotated before we had the lock: look again
    # A writer gone in the middle of a rotation leaves no current file; or
    # the log rotates faster than we can lock it.  Better some logs than none.
    log.debug("no consistent view of %s; reading it as it is", path)
    current = _open_plain(path)
    return _open_rotated_all(path) + ([current] if current else [])


def _same_file(path: str, source: _Source) -> bool:
    try:
        return os.stat(path).st_ino == source.ino
    except FileNotFoundError:
        return False


class _Window:
    """The --since/--until filter; ``done`` once an entry is past ``until``."""

    __slots__ = ("since", "until", "done")

    def __init__(self, since: int | None, until: int | None):
        self.since, self.until, self.done = since, until, False

    def admit(self, entries: Iterable[LogEntry]) -> Iterator[LogEntry]:
        for entry in entries:
            if self.until is not None and entry.time_ns > self.until:
                self.done = True
                return
            if self.since is None or entry.time_ns >= self.since:
                yield entry


def read_logs(path: str | os.PathLike, *, since: float | None = None, until: float | None = None,
              tail: int | None = None, follow: bool = False,
              stop: Callable[[], bool] | threading.Event | None = None,
              poll_interval: float = 0.05) -> Iterator[LogEntry]:
    """The entries of a json-file log and its rotated files, oldest first.

    ``since``/``until`` (seconds since the epoch) keep entries with
    since <= time <= until, and reading ends at the first entry after
    ``until``.  ``tail=N`` starts at the N-th entry from the end (before
    the time filter, as Docker does); None or a negative value means all,
    0 none.  With ``follow`` the reader then waits for new entries, across
    rotations, polling every ``poll_interval`` seconds, and ends once
    ``stop()`` (or the event) is true and everything written has been read,
    or once ``until`` has passed.  ``stop`` should turn true only once the
    writer is closed, or the last output may be missed.  Close the
    generator to stop early.
    """
    path = os.fspath(path)
    window = _Window(_to_ns(since), _to_ns(until))
    sources = _snapshot(path)
    try:
        if tail is None or tail < 0:
            for src in sources:
                if window.since is not None:
                    last = src.last_ns()
                    if last is not None and last < window.since:
                        continue
                yield from window.admit(src.entries())
                if window.done:
                    return
        elif tail > 0:
            yield from window.admit(_tail(sources, tail))
        if not follow or window.done:
            return
        # Following carries on from the newest file read.
        newest = sources.pop() if sources else None
        for src in sources:
            src.close()
        sources = []
        follower = _Follower(path, newest, window, _stop_predicate(stop), poll_interval)
        yield from follower.run()
    finally:
        for src in sources:
            src.close()


def _tail(sources: list[_Source], count: int) -> list[LogEntry]:
    newest_first: list[LogEntry] = []
    for src in reversed(sources):
        need = count - len(newest_first)
        if need <= 0:
            break
        newest_first.extend(itertools.islice(src.newest_first(need), need))
    newest_first.reverse()
    return newest_first


def _stop_predicate(stop: Callable[[], bool] | threading.Event | None) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    return stop


class _Follower:
    """Reads what the writer appends, following it through rotations.

    Polling rather than inotify keeps it in the standard library; a poll is
    a stat and a couple of small reads, so 50 ms costs nothing measurable.
    With ``max-file=1`` the file is truncated in place instead of renamed;
    that is noticed because the bytes just before the read position (the
    end of an entry: its nanosecond time) are no longer there.  Output
    written and truncated away within one poll interval is missed, as with
    moby.
    """

    def __init__(self, path: str, newest: _Source | None, window: _Window,
                 stopped: Callable[[], bool], poll_interval: float):
        self.path = path
        self.window = window
        self.stopped = stopped
        self.poll_interval = poll_interval
        self.current: _Source | None = None
        self._start(newest)

    def run(self) -> Iterator[LogEntry]:
        window = self.window
        try:
            while True:
                # Read stop before reading the file: whatever was written
                # before it turned true is then read below.
                stopping = self.stopped()
                yield from window.admit(self._read_new())
                if window.done:
                    return
                try:
                    st = os.stat(self.path)
                except FileNotFoundError:
                    st = None   # being rotated, not created yet, or removed with the container
                if st is not None and (self.current is None or st.st_ino != self.current.ino):
                    before = self.current
                    for entries in self._rotated():
                        yield from window.admit(entries)
                        if window.done:
                            return
                    if self.current is not before:
                        continue
                if stopping:
                    return
                if window.until is not None and time.time_ns() > window.until:
                    return
                time.sleep(self.poll_interval)
        finally:
            if self.current is not None:
                self.current.close()

    def _start(self, source: _Source | None) -> None:
        """Carry on in ``source``, whose entries up to its ``end`` have been read."""
        if self.current is not None:
            self.current.close()
        self.current = source
        self.pos = source.end if source is not None else 0
        self.rest = b""         # an entry being written: bytes after the last newline
        # The bytes just before pos, to notice truncation.
        self.mark = source.mark if source is not None and self.pos else b""

    def _read_new(self) -> Iterator[LogEntry]:
        if self.current is None or self.current.gz:
            return
        fd = self.current.file.fileno()
        if self.mark and os.pread(fd, len(self.mark), self.pos - len(self.mark)) != self.mark:
            self.pos, self.rest, self.mark = 0, b"", b""        # truncated (max-file=1)
        while True:
            block = os.pread(fd, _READ_BLOCK, self.pos)
            if not block:
                return
            self.pos += len(block)
            self.mark = block[-_MARK:] if len(block) >= _MARK else (self.mark + block)[-_MARK:]
            lines = (self.rest + block).split(b"\n")
            self.rest = lines.pop()
            yield from _decode_lines(lines)

    def _rotated(self) -> Iterator[Iterator[LogEntry]]:
        """What to read when the file followed is no longer the current one, in order.

        The files newer than the one followed are read whole, except the
        newest, which is then followed from its start.
        """
        # Once the path names another file, the writer is done with ours:
        # read its last entries first.
        yield self._read_new()
        old = self.current
        sources = _snapshot(self.path)
        if old is None:
            newer = sources
        else:
            # Normally ours is among the rotated files; if it is gone
            # (deleted, or compressed into a new inode) the files rotated
            # after it cannot be told from older ones, and only the newest
            # is taken.
            newer = sources[-1:]
            for i, src in enumerate(sources):
                if src.ino == old.ino:
                    newer = sources[i + 1:]
                    break
        if newer:
            newest = newer.pop()
            newest.end = 0
            self._start(newest)
        try:
            for src in newer:
                yield src.entries()
        finally:
            for src in sources:
                if src is not self.current:
                    src.close()
