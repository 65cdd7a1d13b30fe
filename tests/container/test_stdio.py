"""stdcopy framing and detach-key handling, checked against Docker's behaviour."""

import http.client
import random
import socket

import pytest

from berth.container.stdio import (DEFAULT_DETACH_KEYS, STDERR, STDIN, STDOUT, SYSTEMERR,
                                   DetachScanner, Demuxer, frame, parse_detach_keys)
from berth.errors import DataCorrupt, InvalidArgument


# --- stdcopy ------------------------------------------------------------------

def test_frame_header_layout():
    assert frame(STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(STDERR, b"x" * 0x01020304)[:8] == b"\x02\x00\x00\x00\x01\x02\x03\x04"
    assert frame(STDIN, b"") == b"\x00" * 8
    assert frame(SYSTEMERR, b"boom") == b"\x03\x00\x00\x00\x00\x00\x00\x04boom"
    assert frame(200, b"") == b"\xc8" + b"\x00" * 7       # private protocols use more ids


@pytest.mark.parametrize("stream_id", [-1, 256])
def test_frame_rejects_ids_outside_a_byte(stream_id):
    with pytest.raises(InvalidArgument):
        frame(stream_id, b"")


FRAMES = [(STDOUT, b"hello\n"), (STDERR, b""), (STDERR, b"err\x00\xff"), (STDIN, bytes(range(256)) * 3),
          (SYSTEMERR, b"x"), (7, b"private"), (STDOUT, b"\n")]
STREAM = b"".join(frame(s, d) for s, d in FRAMES)


def test_demux_whole_stream():
    d = Demuxer()
    assert d.feed(STREAM) == FRAMES
    assert d.buffered == 0
    d.close()


def test_demux_every_split_point():
    for cut in range(len(STREAM) + 1):
        d = Demuxer()
        got = d.feed(STREAM[:cut]) + d.feed(STREAM[cut:])
        assert got == FRAMES, cut
        d.close()


def test_demux_every_pair_of_split_points_in_the_headers():
    # Three chunks, both boundaries anywhere in the first frames' headers and payloads.
    head = 40
    for a in range(head):
        for b in range(a, head):
            d = Demuxer()
            assert d.feed(STREAM[:a]) + d.feed(STREAM[a:b]) + d.feed(STREAM[b:]) == FRAMES


def test_demux_byte_by_byte_and_random_chunks():
    d = Demuxer()
    got = []
    for i in range(len(STREAM)):
        got += d.feed(STREAM[i:i + 1])
    assert got == FRAMES
    rng = random.Random(7)
    for _ in range(200):
        d, got, pos = Demuxer(), [], 0
        while pos < len(STREAM):
            n = rng.randint(0, 50)
            got += d.feed(STREAM[pos:pos + n])
            pos += n
        assert got == FRAMES


def test_demux_large_frame_in_small_chunks():
    payload = bytes(random.Random(1).randbytes(3 << 20))
    data = frame(STDOUT, payload) + frame(STDERR, b"tail")
    d = Demuxer()
    got = []
    for i in range(0, len(data), 4096):
        got += d.feed(data[i:i + 4096])
    assert got == [(STDOUT, payload), (STDERR, b"tail")]


def test_demux_truncated_stream_is_an_error():
    d = Demuxer()
    assert d.feed(STREAM[:11]) == [] and d.buffered == 11
    with pytest.raises(DataCorrupt):
        d.close()
    d = Demuxer()
    d.feed(b"\x01\x00\x00")
    with pytest.raises(DataCorrupt):
        d.close()


def test_demux_limit_on_frame_size():
    d = Demuxer(max_payload=10)
    assert d.feed(frame(STDOUT, b"0123456789")) == [(STDOUT, b"0123456789")]
    with pytest.raises(DataCorrupt):
        d.feed(frame(STDOUT, b"0123456789A")[:8])


# --- detach keys ----------------------------------------------------------------

def test_parse_default_and_empty_spec():
    assert parse_detach_keys() == b"\x10\x11"
    assert parse_detach_keys(DEFAULT_DETACH_KEYS) == b"\x10\x11"
    assert parse_detach_keys("") == b"\x10\x11"


def test_parse_all_key_names():
    names = ["ctrl-@", *(f"ctrl-{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
             "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]
    assert parse_detach_keys(",".join(names)) == bytes(range(32))
    assert parse_detach_keys("a,Z,ctrl-x,DEL,-,~") == b"aZ\x18\x7f-~"


@pytest.mark.parametrize("spec", ["ctrl-P", "CTRL-p", "ctrl-p, ctrl-q", "ctrl-p,", ",", "ctrl-",
                                  "ctrl-1", "ab", "é", "del", "ctrl-p,,ctrl-q"])
def test_parse_rejects_what_docker_rejects(spec):
    with pytest.raises(InvalidArgument) as e:
        parse_detach_keys(spec)
    assert str(e.value) == f"Invalid detach keys ({spec}) provided"


def feed_all(scanner, chunks):
    out, detached = b"", False
    for chunk in chunks:
        data, detached = scanner.feed(chunk)
        out += data
    return out, detached


def test_detach_in_one_chunk_drops_the_rest():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"abc\x10\x11def") == (b"abc", True)
    assert s.detached
    assert s.feed(b"more") == (b"", True)


def test_detach_sequence_split_across_chunks_at_every_offset():
    data = b"echo hi\r\x10\x11ignored"
    for cut in range(len(data) + 1):
        s = DetachScanner(b"\x10\x11")
        assert feed_all(s, [data[:cut], data[cut:]]) == (b"echo hi\r", True), cut


def test_held_prefix_is_released_when_the_sequence_breaks():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)
    assert s.pending == b"\x10"
    assert s.feed(b"x") == (b"\x10x", False)
    assert s.pending == b""
    assert s.feed(b"\x10") == (b"", False)
    assert s.feed(b"\x11") == (b"", True)


def test_breaking_byte_does_not_restart_a_match_as_in_moby():
    # moby's escapeProxy does not re-examine the byte that broke a partial
    # match, so ctrl-p ctrl-p ctrl-q is passed through and does not detach.
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"\x10\x10\x11") == (b"\x10\x10\x11", False)
    s = DetachScanner(b"\x10\x11")
    assert feed_all(s, [b"\x10", b"\x10", b"\x11"]) == (b"\x10\x10\x11", False)
    assert s.feed(b"\x10\x11") == (b"", True)


def test_long_sequence_split_and_broken_releases_each_byte_once():
    s = DetachScanner(parse_detach_keys("ctrl-a,ctrl-b,ctrl-c"))
    assert s.feed(b"\x01") == (b"", False)
    assert s.feed(b"\x02") == (b"", False)
    assert s.feed(b"z\x01\x02") == (b"\x01\x02z", False)
    assert s.feed(b"\x03rest") == (b"", True)


def test_flush_releases_held_bytes_at_end_of_input():
    s = DetachScanner(b"\x10\x11")
    assert s.feed(b"x\x10") == (b"x", False)
    assert s.flush() == b"\x10"
    assert s.flush() == b""


def test_empty_keys_forward_everything():
    s = DetachScanner(b"")
    assert s.feed(b"\x10\x11") == (b"\x10\x11", False)


def reference_scan(keys: bytes, data: bytes) -> tuple[bytes, bool]:
    """The escape proxy's rules, one byte at a time."""
    out, held = bytearray(), 0
    for byte in data:
        if byte == keys[held]:
            held += 1
            if held == len(keys):
                return bytes(out), True
        else:
            out += keys[:held]
            out.append(byte)
            held = 0
    return bytes(out), False


def test_random_inputs_and_chunkings_match_the_reference():
    rng = random.Random(42)
    for keys in (b"\x10\x11", b"\x01\x02\x03", b"q", b"aab"):
        alphabet = keys + b"xa"
        for _ in range(500):
            data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
            expected = reference_scan(keys, data)
            s, got, pos = DetachScanner(keys), [b"", False], 0
            while pos < len(data) and not got[1]:
                n = rng.randint(1, 5)
                out, detached = s.feed(data[pos:pos + n])
                got = [got[0] + out, detached]
                pos += n
            assert tuple(got) == expected, (keys, data)


# --- the real Engine API stream ---------------------------------------------------

class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


@pytest.mark.docker
def test_demux_dockerd_logs_stream(docker, busybox_tar):
    """Docker's own /logs stream for a non-tty container demultiplexes to its output."""
    from dockerd import SOCKET
    docker("import", str(busybox_tar), "berthtest/stdio:1")
    name = "berthtest-stdio"
    try:
        docker("run", "--name", name, "--network", "none", "berthtest/stdio:1", "sh", "-c",
               "echo out1; echo err1 >&2; printf 'no newline'; head -c 70000 /dev/zero >&2")
        conn = _UnixHTTPConnection(SOCKET)
        conn.request("GET", f"/containers/{name}/logs?stdout=1&stderr=1")
        body = conn.getresponse().read()
        conn.close()
        d = Demuxer()
        frames = []
        for i in range(0, len(body), 1000):
            frames += d.feed(body[i:i + 1000])
        d.close()
        out = b"".join(p for s, p in frames if s == STDOUT)
        err = b"".join(p for s, p in frames if s == STDERR)
        assert {s for s, _ in frames} == {STDOUT, STDERR}
        assert out == b"out1\nno newline"
        assert err == b"err1\n" + b"\0" * 70000
    finally:
        docker("rm", "-f", name, check=False)
        docker("rmi", "-f", "berthtest/stdio:1", check=False)
