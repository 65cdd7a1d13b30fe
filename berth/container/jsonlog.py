"""Writing Docker's json-file logs: the entry format, line splitting, rotation.

The writing half of the json-file driver (berth.container.logs reads the
files back and parses the options).  It lives apart because its writer runs
inside every container's supervisor for the container's whole life, so it
imports nothing beyond `posix` (os without its Python layer), time, fcntl
and the interpreter's built-in `_thread`: no re, no threading, no logging,
no gzip.  See berth.container.logs for the format and the rotation
protocol.
"""

from __future__ import annotations

import _thread
import fcntl
import posix
import time

LINE_LIMIT = 16 * 1024      # moby's copier buffer: longer lines are split
LOCK_WAIT = 1.0             # how long the writer or a reader waits for the other's flock
_NS = 1_000_000_000
_COPY_BLOCK = 1 << 20


# --- timestamps --------------------------------------------------------------

# One entry each: consecutive entries share their second, and a chunk of
# output its stream and time.  A tuple is replaced in one step, so threads
# never see a key with another key's value.
_seconds_cache: tuple[int, str] = (-1, "")
_tail_cache: tuple[tuple[str, int], bytes] = (("", -1), b"")


def _utc_seconds(sec: int) -> str:
    global _seconds_cache
    cached_sec, text = _seconds_cache
    if cached_sec != sec:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _seconds_cache = (sec, text)
    return text


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


# --- the entry format --------------------------------------------------------

# What Go escapes: control bytes, '"', '\\', '<', '>', '&'; and non-ASCII
# bytes need a look (invalid UTF-8, U+2028, U+2029).  _PLAIN is the rest.
_PLAIN = bytes(b for b in range(0x80) if b >= 0x20 and b not in b'"\\<>&')
_NON_ASCII = bytes(range(0x80, 0x100))
_ESCAPED_BYTES = {c: b"\\u%04x" % c for c in range(0x20)}
_ESCAPED_BYTES.update({ord("\n"): b"\\n", ord("\r"): b"\\r", ord('"'): b'\\"', ord("<"): b"\\u003c",
                       ord(">"): b"\\u003e", ord("&"): b"\\u0026"})
# U+2028 and U+2029, the only non-ASCII characters Go escapes.
_SEPARATORS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))
# The same escapes for text decoded with surrogateescape, whose invalid bytes are U+DC80..U+DCFF.
_ESCAPED_CHARS = {c: e.decode() for c, e in _ESCAPED_BYTES.items()}
_ESCAPED_CHARS.update({ord("\\"): "\\\\", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_ESCAPED_CHARS.update({c: "\\ufffd" for c in range(0xDC80, 0xDD00)})


def _escape(data: bytes, end: int) -> bytes:
    """The JSON string body of ``data[:end]``, escaped exactly as moby's json-file writer does."""
    chunk = data if end == len(data) else data[:end]
    special = chunk.translate(None, _PLAIN)     # usually empty: one pass, no copy of the text
    if not special:
        return chunk
    ascii_only = special.isascii()
    if not ascii_only:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            # surrogateescape maps each byte of an invalid sequence to its
            # own surrogate, matching Go, which replaces invalid UTF-8 one
            # byte at a time.
            return chunk.decode("utf-8", "surrogateescape").translate(_ESCAPED_CHARS).encode()
        special = special.translate(None, _NON_ASCII)
    # Valid UTF-8, where ASCII bytes never occur inside a multi-byte
    # sequence: the escaping works on the bytes.  Backslashes go first, as
    # the other escapes add some.
    present = set(special)
    if 0x5C in present:
        chunk = chunk.replace(b"\\", b"\\\\")
    for byte in present:
        if byte != 0x5C:
            chunk = chunk.replace(bytes((byte,)), _ESCAPED_BYTES[byte])
    if not ascii_only:
        for raw, escaped in _SEPARATORS:
            if raw in chunk:
                chunk = chunk.replace(raw, escaped)
    return chunk


def encode_entry(stream: str, log_bytes: bytes, ns: int) -> bytes:
    """One json-file line (with its trailing newline) for ``log_bytes`` written at ``ns``."""
    if not log_bytes:
        return b"{" + _tail_fields(stream, ns)[1:]
    if log_bytes.endswith(b"\n"):
        return b'{"log":"' + _escape(log_bytes, len(log_bytes) - 1) + b'\\n"' + _tail_fields(stream, ns)
    return b'{"log":"' + _escape(log_bytes, len(log_bytes)) + b'"' + _tail_fields(stream, ns)


def _tail_fields(stream: str, ns: int) -> bytes:
    """``,"stream":"...","time":"..."}`` and the newline ending an entry."""
    global _tail_cache
    key, fields = _tail_cache
    if key != (stream, ns):
        fields = b""
        if stream:
            raw = stream.encode()
            fields = b',"stream":"' + _escape(raw, len(raw)) + b'"'
        fields += b',"time":"' + format_time(ns).encode() + b'"}\n'
        _tail_cache = ((stream, ns), fields)
    return fields


def to_ns(t: float | None) -> int | None:
    """Seconds since the epoch as nanoseconds, without a float's rounding at today's times."""
    if t is None:
        return None
    # Split first: t * 1e9 as a float would be off by up to 128 ns today.
    sec = int(t // 1)
    return sec * _NS + round((t - sec) * _NS)


# --- options -----------------------------------------------------------------

def check_options(max_size: int | None, max_file: int, compress: bool) -> None:
    from berth.errors import InvalidArgument

    if max_size is not None and max_size <= 0:
        raise InvalidArgument("max-size must be a positive number")
    if max_file < 1:
        raise InvalidArgument("max-file cannot be less than 1")
    if compress and (max_file == 1 or max_size is None):
        raise InvalidArgument("compress cannot be true when max-file is less than 2 "
                              "or max-size is not set")


# --- writing -----------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view):]


class JsonFileWriter:
    """Appends a container's output to its json-file log, rotating as configured.

    ``write`` is called for every chunk read from the container, so it costs
    one ``write(2)`` per call at most (plus a rename or two when rotating) and
    never syncs.  Safe to call from several threads (one per stream).

    ``path`` is a str or path-like.  A writer can hand its place to another,
    in this process or the next program exec'd in it: ``hand_over()`` closes
    it without ending the streams, and ``JsonFileWriter(..., carry=state)``
    continues exactly where it stopped, unfinished lines included.
    """

    def __init__(self, path, *, max_size: int | None = None, max_file: int = 1,
                 compress: bool = False, carry: dict | None = None):
        check_options(max_size, max_file, compress)
        self.path = posix.fspath(path)
        self.max_size = max_size
        self.max_file = max_file
        self.compress = compress
        self._lock = _thread.allocate_lock()
        self._fd: int | None = _open_log(self.path, truncate=False)
        self._size = posix.fstat(self._fd).st_size
        carry = carry or {}
        self._last_ns: int = carry.get("last_ns", 0)
        # Per stream: output after the last newline, and the time of the first
        # piece of a line being split (None when no line is split).
        self._pending: dict[str, bytes] = dict(carry.get("pending", {}))
        self._partial_ns: dict[str, int | None] = dict(carry.get("partial_ns", {}))
        self._compressor = None     # a lock held until the compressing thread ends
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
        ns = time.time_ns() if when is None else to_ns(when)
        with self._lock:
            self._check_open()
            self._append(self._split(stream, bytes(data), ns))

    def flush_partial(self, stream: str | None = None, when: float | None = None) -> None:
        """End ``stream`` (default: all): unterminated output is written without a newline."""
        ns = time.time_ns() if when is None else to_ns(when)
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
                posix.close(self._fd)
                self._fd = None

    def hand_over(self) -> dict:
        """Finish any compression and close the file, keeping unfinished lines:
        the ``carry`` of the writer that continues (plain data, marshal-able)."""
        with self._lock:
            self._check_open()
            self._wait_compression()
            posix.close(self._fd)
            self._fd = None
            return {"last_ns": self._last_ns, "pending": dict(self._pending),
                    "partial_ns": dict(self._partial_ns)}

    # Internals; the lock is held.

    def _check_open(self) -> None:
        if self._fd is None:
            from berth.errors import Conflict
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

    def _append(self, entries) -> None:
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
            posix.ftruncate(self._fd, 0)
            self._size = 0
            return
        # Readers hold a shared lock on the current file while they open the
        # set (see berth.container.logs); the exclusive lock keeps them out
        # while the files move.  A reader stuck for longer must not stall the
        # container's output, so the rotation then goes ahead regardless.
        flock_within(self._fd, fcntl.LOCK_EX, LOCK_WAIT)
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
        posix.close(self._fd)      # and with it the lock
        self._fd = fd
        self._size = 0
        if self.compress:
            self._start_compression(f"{self.path}.1", self._last_ns)

    def _start_compression(self, source: str, last_ns: int) -> None:
        done = _thread.allocate_lock()
        done.acquire()

        def compress() -> None:
            try:
                _compress_rotated(source, last_ns)
            finally:
                done.release()

        _thread.start_new_thread(compress, ())
        self._compressor = done

    def _wait_compression(self) -> None:
        if self._compressor is not None:
            self._compressor.acquire()
            self._compressor = None

    def _resume_compression(self) -> None:
        """Finish what a writer killed during compression left behind."""
        source = f"{self.path}.1"
        _remove(source + ".gz.tmp")
        if not _exists(source):
            return
        if _exists(source + ".gz"):
            _remove(source)             # killed between the rename and the unlink
            return
        from berth.container.logs import read_logs  # only after a crash: the reader is big

        last = next(iter(read_logs(source, tail=1)), None)
        self._start_compression(source, last.time_ns if last else 0)


def flock_within(fd: int, operation: int, timeout: float) -> bool:
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


def _exists(path: str) -> bool:
    try:
        posix.stat(path)
        return True
    except FileNotFoundError:
        return False


def _open_log(path: str, *, truncate: bool) -> int:
    flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC | (posix.O_TRUNC if truncate else 0)
    return posix.open(path, flags, 0o640)


def _remove(path: str) -> None:
    try:
        posix.unlink(path)
    except FileNotFoundError:
        pass


def _rename(src: str, dst: str) -> None:
    try:
        posix.rename(src, dst)
    except FileNotFoundError:
        pass


def _compress_rotated(source: str, last_ns: int) -> None:
    """Replace ``source`` by ``source.gz``, atomically for readers."""
    target = source + ".gz"
    tmp = target + ".tmp"
    try:
        with open(source, "rb") as src, open(tmp, "wb") as out:
            gzip_with_last_time(src, out, last_ns)
        posix.chmod(tmp, 0o640)
        posix.rename(tmp, target)
        posix.unlink(source)
    except OSError as e:
        _remove(tmp)
        import logging
        logging.getLogger("berth.container.logs").warning("cannot compress rotated log %s: %s", source, e)


def gzip_with_last_time(src, out, last_ns: int) -> None:
    """gzip ``src`` into ``out`` with moby's metadata: the time of the file's
    last entry, in the header's extra field (read back to skip whole files
    for --since)."""
    import zlib  # loaded by the first compression, not by every supervisor

    # Python's gzip module cannot write the header's extra field, so the
    # member is framed by hand.
    extra = b"{}" if not last_ns else f'{{"lastTime": "{format_time(last_ns)}"}}'.encode()
    out.write(b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\x00\xff" + len(extra).to_bytes(2, "little") + extra)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = size = 0
    while block := src.read(_COPY_BLOCK):
        crc = zlib.crc32(block, crc)
        size += len(block)
        out.write(deflate.compress(block))
    out.write(deflate.flush())
    out.write(crc.to_bytes(4, "little") + (size & 0xFFFF_FFFF).to_bytes(4, "little"))
