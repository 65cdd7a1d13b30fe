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
import functools
import gzip
import itertools
import json
import logging
import math
import os
import re
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

from berth.errors import Conflict, InvalidArgument

log = logging.getLogger(__name__)

LINE_LIMIT = 16 * 1024      # moby's copier buffer: longer lines are split
_READ_BLOCK = 1 << 20
_TAIL_BLOCK = 64 * 1024
_SNAPSHOT_ATTEMPTS = 50
_LOCK_WAIT = 1.0            # how long the writer or a reader waits for the other's flock
_MARK = 64                  # longer than the end of an entry: ',"time":"<ns time>"}\n'
_NS = 1_000_000_000


# --- timestamps --------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _utc_seconds(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def format_time(ns: int) -> str:
    """Go's RFC3339Nano in UTC, as the json-file ``time`` field: trailing zeros trimmed."""
    sec, frac = divmod(ns, _NS)
    if frac == 0:
        return _utc_seconds(sec) + "Z"
    return f"{_utc_seconds(sec)}.{frac:09d}".rstrip("0") + "Z"


def format_time_fixed(ns: int) -> str:
    """RFC 3339 with exactly nine fractional digits, as ``docker logs -t`` prints it."""
    sec, frac = divmod(ns, _NS)
    return f"{_utc_seconds(sec)}.{frac:09d}Z"


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


def _to_ns(t: float | None) -> int | None:
    if t is None:
        return None
    # Split first: t * 1e9 as a float would be off by up to 128 ns today.
    sec = math.floor(t)
    return sec * _NS + round((t - sec) * _NS)


# --- the entry format --------------------------------------------------------

# Bytes that leave the fast path: what Go escapes in ASCII, and anything
# non-ASCII (which needs a UTF-8 check).
_SPECIAL_BYTES = re.compile(rb'[\x00-\x1f"\\<>&\x80-\xff]')
# The same, once decoded with surrogateescape: invalid bytes are U+DC80..U+DCFF.
_SPECIAL_CHARS = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]')
_ESCAPES = {chr(c): f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({"\n": "\\n", "\r": "\\r", '"': '\\"', "\\": "\\\\", "<": "\\u003c",
                 ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_ESCAPES.update({chr(c): "\\ufffd" for c in range(0xDC80, 0xDD00)})


def _escape(data: bytes, end: int) -> bytes:
    """The JSON string body of ``data[:end]``, escaped exactly as moby's json-file writer does."""
    if _SPECIAL_BYTES.search(data, 0, end) is None:
        return data[:end] if end != len(data) else data
    # surrogateescape maps each byte of an invalid sequence to its own
    # surrogate, matching Go, which replaces invalid UTF-8 one byte at a time.
    text = data[:end].decode("utf-8", "surrogateescape")
    return _SPECIAL_CHARS.sub(lambda m: _ESCAPES[m.group()], text).encode("utf-8")


def encode_entry(stream: str, log_bytes: bytes, ns: int) -> bytes:
    """One json-file line (with its trailing newline) for ``log_bytes`` written at ``ns``."""
    if not log_bytes:
        return b"{" + _tail_fields(stream, ns)[1:]
    if log_bytes.endswith(b"\n"):
        return b'{"log":"' + _escape(log_bytes, len(log_bytes) - 1) + b'\\n"' + _tail_fields(stream, ns)
    return b'{"log":"' + _escape(log_bytes, len(log_bytes)) + b'"' + _tail_fields(stream, ns)


# The lines of one chunk of output share their stream and time.
@functools.lru_cache(maxsize=16)
def _tail_fields(stream: str, ns: int) -> bytes:
    """``,"stream":"...","time":"..."}`` and the newline ending an entry."""
    fields = b""
    if stream:
        raw = stream.encode()
        fields = b',"stream":"' + _escape(raw, len(raw)) + b'"'
    return fields + b',"time":"' + format_time(ns).encode() + b'"}\n'


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


def _check_options(max_size: int | None, max_file: int, compress: bool) -> None:
    if max_size is not None and max_size <= 0:
        raise InvalidArgument("max-size must be a positive number")
    if max_file < 1:
        raise InvalidArgument("max-file cannot be less than 1")
    if compress and (max_file == 1 or max_size is None):
        raise InvalidArgument("compress cannot be true when max-file is less than 2 "
                              "or max-size is not set")


# go-units' FromHumanSize: log sizes are decimal, as in dockerd.
from berth.units import parse_human_size  # noqa: E402


# --- writing -----------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class JsonFileWriter:
    """Appends a container's output to its json-file log, rotating as configured.

    ``write`` is called for every chunk read from the container, so it costs
    one ``write(2)`` per call at most (plus a rename or two when rotating) and
    never syncs.  Safe to call from several threads (one per stream).
    """

    def __init__(self, path: str | os.PathLike, *, max_size: int | None = None, max_file: int = 1,
                 compress: bool = False):
        _check_options(max_size, max_file, compress)
        self.path = os.fspath(path)
        self.max_size = max_size
        self.max_file = max_file
        self.compress = compress
        self._lock = threading.Lock()
        self._fd: int | None = _open_log(self.path, truncate=False)
        self._size = os.fstat(self._fd).st_size
        self._last_ns = 0
        # Per stream: output after the last newline, and the time of the first
        # piece of a line being split (None when no line is split).
        self._pending: dict[str, bytes] = {}
        self._partial_ns: dict[str, int | None] = {}
        self._compressor: threading.Thread | None = None
        if compress:
            self._resume_compression()

    def __enter__(self) -> JsonFileWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, stream: str, data: bytes, when: float | None = None) -> None:
        """Log ``data`` read from ``stream`` ("stdout" or "stderr") at ``when`` (default: now)."""
        if not data:
            return
        ns = time.time_ns() if when is None else _to_ns(when)
        with self._lock:
            self._check_open()
            self._append(self._split(stream, bytes(data), ns))

    def flush_partial(self, stream: str | None = None, when: float | None = None) -> None:
        """End ``stream`` (default: all): unterminated output is written without a newline."""
        ns = time.time_ns() if when is None else _to_ns(when)
        with self._lock:
            self._check_open()
            self._flush_partials(stream, ns)

    def close(self) -> None:
        """Flush unterminated output, finish any compression, close the file."""
        with self._lock:
            if self._fd is None:
                return
            try:
                self._flush_partials(None, time.time_ns())
            finally:
                self._wait_compression()
                os.close(self._fd)
                self._fd = None

    # Internals; the lock is held.

    def _check_open(self) -> None:
        if self._fd is None:
            raise Conflict("cannot write because the output file was closed")

    def _split(self, stream: str, data: bytes, ns: int) -> list[tuple[bytes, int]]:
        held = self._pending.pop(stream, b"")
        buf = held + data if held else data
        first_ns = self._partial_ns.get(stream)
        entries = []
        start, end = 0, len(buf)
        while start < end:
            # As moby's copier: a newline is only seen within 16 KiB of the
            # line's (or its continuation's) start.
            nl = buf.find(b"\n", start, start + LINE_LIMIT)
            if nl >= 0:
                entry_ns = ns if first_ns is None else first_ns
                entries.append((encode_entry(stream, buf[start:nl + 1], entry_ns), entry_ns))
                first_ns = None
                start = nl + 1
            elif end - start >= LINE_LIMIT:
                if first_ns is None:
                    first_ns = ns
                entries.append((encode_entry(stream, buf[start:start + LINE_LIMIT], first_ns), first_ns))
                start += LINE_LIMIT
            else:
                self._pending[stream] = buf[start:]
                break
        self._partial_ns[stream] = first_ns
        return entries

    def _flush_partials(self, stream: str | None, ns: int) -> None:
        streams = list(dict.fromkeys([*self._pending, *self._partial_ns])) if stream is None else [stream]
        entries = []
        for name in streams:
            first_ns = self._partial_ns.pop(name, None)
            rest = self._pending.pop(name, b"")
            if rest:
                entry_ns = ns if first_ns is None else first_ns
                entries.append((encode_entry(name, rest, entry_ns), entry_ns))
        self._append(entries)

    def _append(self, entries: Iterable[tuple[bytes, int]]) -> None:
        batch: list[bytes] = []
        for line, ns in entries:
            if self.max_size is not None and self._size >= self.max_size:
                if batch:
                    _write_all(self._fd, b"".join(batch))
                    batch = []
                self._rotate()
            batch.append(line)
            self._size += len(line)
            self._last_ns = ns
        if batch:
            _write_all(self._fd, b"".join(batch))

    def _rotate(self) -> None:
        # Done before any rename, so one compression finishes before the next
        # rotation moves its input.
        self._wait_compression()
        if self.max_file < 2:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        # Readers hold a shared lock on the current file while they open the
        # set (see _snapshot); the exclusive lock keeps them out while the
        # files move.  A reader stuck for longer must not stall the
        # container's output, so the rotation then goes ahead regardless.
        _flock(self._fd, fcntl.LOCK_EX, _LOCK_WAIT)
        try:
            ext = ".gz" if self.compress else ""
            _remove(f"{self.path}.{self.max_file - 1}{ext}")
            for i in range(self.max_file - 1, 1, -1):
                _rename(f"{self.path}.{i - 1}{ext}", f"{self.path}.{i}{ext}")
            _rename(self.path, f"{self.path}.1")
            # Open the new file before closing the old one: if that fails,
            # logging carries on into the renamed file.
            fd = _open_log(self.path, truncate=True)
        except BaseException:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            raise
        os.close(self._fd)      # and with it the lock
        self._fd = fd
        self._size = 0
        if self.compress:
            self._start_compression(f"{self.path}.1", self._last_ns)

    def _start_compression(self, source: str, last_ns: int) -> None:
        self._compressor = threading.Thread(target=_compress_rotated, args=(source, last_ns),
                                            name="berth-log-compress", daemon=True)
        self._compressor.start()

    def _wait_compression(self) -> None:
        if self._compressor is not None:
            self._compressor.join()
            self._compressor = None

    def _resume_compression(self) -> None:
        """Finish what a writer killed during compression left behind."""
        source = f"{self.path}.1"
        _remove(source + ".gz.tmp")
        if not os.path.exists(source):
            return
        if os.path.exists(source + ".gz"):
            _remove(source)             # killed between the rename and the unlink
            return
        rotated = _open_plain(source)
        if rotated is not None:
            last_ns = rotated.last_ns() or 0
            rotated.close()
            self._start_compression(source, last_ns)


def _open_log(path: str, *, truncate: bool) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
    return os.open(path, flags, 0o640)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rename(src: str, dst: str) -> None:
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        pass


def _compress_rotated(source: str, last_ns: int) -> None:
    """Replace ``source`` by ``source.gz``, atomically for readers."""
    target = source + ".gz"
    tmp = target + ".tmp"
    try:
        with open(source, "rb") as src, open(tmp, "wb") as out:
            _gzip_to(src, out, last_ns)
        os.chmod(tmp, 0o640)
        os.rename(tmp, target)
        os.unlink(source)
    except OSError as e:
        _remove(tmp)
        log.warning("cannot compress rotated log %s: %s", source, e)


def _gzip_to(src, out, last_ns: int) -> None:
    # Python's gzip module cannot write the header's extra field, which is
    # where moby keeps the time of the file's last entry (read back to skip
    # whole files for --since), so the member is framed by hand.
    extra = b"{}" if not last_ns else json.dumps({"lastTime": format_time(last_ns)}).encode()
    out.write(b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\x00\xff" + struct.pack("<H", len(extra)) + extra)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = size = 0
    while block := src.read(_READ_BLOCK):
        crc = zlib.crc32(block, crc)
        size += len(block)
        out.write(deflate.compress(block))
    out.write(deflate.flush())
    out.write(struct.pack("<II", crc, size & 0xFFFF_FFFF))


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


def _flock(fd: int, operation: int, timeout: float) -> bool:
    """Take a flock within ``timeout`` seconds; False if it stayed held by someone else."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0005)


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
