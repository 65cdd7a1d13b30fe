"""Byte-level plumbing of a container's standard streams.

Two pieces of Docker's wire behaviour live here, both pure and incremental
so the supervisor, the daemon and the CLI can drive them from any I/O loop:

* stdcopy multiplexing, the Engine API's stream format for attach and logs
  of containers without a TTY: every payload is preceded by an 8-byte header
  ``[stream, 0, 0, 0, size (uint32, big-endian)]``;
* detach keys (``--detach-keys``, default ``ctrl-p,ctrl-q``): parsing the
  spec and spotting the sequence in a stdin byte stream the way moby's
  escape proxy does.
"""

from __future__ import annotations

import struct

from berth.errors import DataCorrupt, InvalidArgument

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3

HEADER_SIZE = 8
_HEADER = struct.Struct(">B3xI")
_MAX_PAYLOAD = 0xFFFF_FFFF


def frame(stream_id: int, data: bytes) -> bytes:
    """One stdcopy frame: the header for ``stream_id`` followed by ``data``.

    Any id that fits the header byte is accepted: the standard ones are
    STDIN..SYSTEMERR, and private protocols may define more.  An empty
    payload gives a header-only frame, as Docker's writer does.
    """
    if not 0 <= stream_id <= 0xFF:
        raise InvalidArgument(f"stdcopy stream id {stream_id} does not fit in a byte")
    if len(data) > _MAX_PAYLOAD:
        raise InvalidArgument(f"stdcopy payload of {len(data)} bytes exceeds the 4 GiB frame limit")
    return _HEADER.pack(stream_id, len(data)) + data


class Demuxer:
    """Splits a stdcopy byte stream, fed in arbitrary chunks, into frames.

    ``feed`` returns the frames completed by each chunk as
    ``(stream_id, payload)`` pairs; a frame is only returned whole.  Stream
    ids are not checked (callers decide what an unknown one means), and the
    three padding bytes are ignored, as Docker's reader ignores them.
    ``max_payload`` bounds the memory a peer can make us buffer for one frame.
    """

    __slots__ = ("_buf", "_stream", "_size", "_max_payload")

    def __init__(self, *, max_payload: int | None = None):
        self._buf = bytearray()
        self._stream = -1      # header of the frame being collected, -1 while reading a header
        self._size = 0
        self._max_payload = max_payload

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        frames: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while True:
            if self._stream < 0:
                if end - pos < HEADER_SIZE:
                    break
                self._stream, self._size = _HEADER.unpack_from(buf, pos)
                pos += HEADER_SIZE
                if self._max_payload is not None and self._size > self._max_payload:
                    raise DataCorrupt(f"stdcopy frame of {self._size} bytes exceeds the limit of "
                                      f"{self._max_payload}")
            if end - pos < self._size:
                break
            frames.append((self._stream, bytes(buf[pos:pos + self._size])))
            pos += self._size
            self._stream = -1
        # Deleting from the front of a bytearray is O(1) in CPython, so a
        # large frame arriving in small chunks costs no re-copying.
        del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buf) + (HEADER_SIZE if self._stream >= 0 else 0)

    def close(self) -> None:
        """Declare the end of the stream; a frame cut short is an error."""
        if self.buffered:
            raise DataCorrupt(f"stdcopy stream ended inside a frame ({self.buffered} bytes left over)")


DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

# ctrl-@ is NUL and each following name is the next control code, up to ctrl-_ (0x1f).
_CTRL_KEYS = {name: code for code, name in enumerate(
    ["ctrl-@", *(f"ctrl-{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
     "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"])}


def parse_detach_keys(spec: str = DEFAULT_DETACH_KEYS) -> bytes:
    """The byte sequence of a ``--detach-keys`` spec.

    Comma-separated keys, each a ``ctrl-`` name above, ``DEL``, or a single
    ASCII character, exactly as Docker accepts them (case-sensitive, no
    spaces).  An empty spec means the default, as it does for the daemon.
    """
    if spec == "":
        spec = DEFAULT_DETACH_KEYS
    codes = bytearray()
    for key in spec.split(","):
        raw = key.encode()
        if len(raw) == 1:
            codes += raw
        elif key in _CTRL_KEYS:
            codes.append(_CTRL_KEYS[key])
        elif key == "DEL":
            codes.append(0x7F)
        else:
            raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(codes)


class DetachScanner:
    """Finds the detach sequence in stdin as it streams past, like moby's escape proxy.

    ``feed(chunk)`` returns ``(forward, detached)``.  Bytes that could be the
    start of the sequence are held back; if the next byte breaks the
    sequence they are released in front of it, and when the sequence
    completes nothing of it is forwarded, ``detached`` is True, and the rest
    of that chunk and everything after it is dropped.

    Two details follow moby on purpose: the byte that breaks a partial match
    is not itself retried as the start of a new match (so ``ctrl-p ctrl-p
    ctrl-q`` forwards all three keys), and bytes still held when stdin ends
    are dropped unless the caller forwards ``flush()``.  Unlike moby, held
    bytes of a sequence split over several reads are released exactly once.
    With empty ``keys`` everything is forwarded.
    """

    __slots__ = ("_keys", "_matched", "_detached")

    def __init__(self, keys: bytes):
        self._keys = bytes(keys)
        self._matched = 0      # length of the sequence prefix held back
        self._detached = False

    @property
    def detached(self) -> bool:
        return self._detached

    @property
    def pending(self) -> bytes:
        """The bytes held back because they may begin the sequence."""
        return self._keys[:self._matched]

    def feed(self, chunk: bytes) -> tuple[bytes, bool]:
        keys = self._keys
        if self._detached:
            return b"", True
        if not keys:
            return bytes(chunk), False
        # Fast path: nothing held and no byte of the chunk can start a match.
        if self._matched == 0 and keys[0] not in chunk:
            return bytes(chunk), False
        out = bytearray()
        matched = self._matched
        start = 0              # chunk[start:i] is plain data not yet copied to out
        for i, byte in enumerate(chunk):
            if byte == keys[matched]:
                if matched == 0:
                    out += chunk[start:i]
                matched += 1
                if matched == len(keys):
                    self._matched = 0
                    self._detached = True
                    return bytes(out), True
                start = i + 1
            elif matched:
                # The held prefix was not the sequence after all: it is data.
                out += keys[:matched]
                matched = 0
                start = i
        out += chunk[start:]
        self._matched = matched
        return bytes(out), False

    def flush(self) -> bytes:
        """Release the held-back bytes (at end of input)."""
        held, self._matched = self.pending, 0
        return held
