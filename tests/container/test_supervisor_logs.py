"""The supervisor's lean log writer (berth.container.jsonlog): the same bytes
as JsonFileWriter, and a writer handed over mid-line continues exactly."""

import gzip
import os
import random

import pytest

from berth.container import jsonlog, logs

T0 = 1_700_000_000


def feed(writer, chunks, *, end=True):
    for stream, data, when in chunks:
        if data is None:
            writer.flush_partial(stream, when=when)
        else:
            writer.write(stream, data, when=when)
    if end:     # not at close, which would log the unfinished lines with the time of day
        writer.flush_partial(when=T0 + 10**5)


def random_chunks(seed: int, count: int = 400):
    """Output as a container makes it: short and long lines, both streams,
    cut anywhere, with bytes that need escaping and invalid UTF-8."""
    rnd = random.Random(seed)
    alphabet = [b"a", b"b", b" ", b"\n", b"\t", b"<", b">", b"&", b'"', b"\\", b"\x00", b"\x1f", b"\x7f",
                "é".encode(), "\u2028".encode(), b"\xff", b"\xe2\x82", b"\xed\xa0\x80"]
    chunks = []
    for i in range(count):
        stream = rnd.choice(("stdout", "stderr"))
        if rnd.random() < 0.03:
            chunks.append((stream, None, T0 + i / 7))              # a stream ends
            continue
        size = rnd.choice((1, 5, 40, 300, 20000))
        data = b"".join(rnd.choice(alphabet) for _ in range(size // 4 + 1)) + b"x" * (size * 3 // 4)
        chunks.append((stream, data, T0 + i / 7))
    return chunks


def files_of(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        # A gzip member's bytes are zlib's business; what it holds is ours.
        out[name] = gzip.decompress(data) if name.endswith(".gz") else data
    return out


@pytest.mark.parametrize("options", [{}, {"max_size": 3000, "max_file": 1}, {"max_size": 5000, "max_file": 4},
                                     {"max_size": 4000, "max_file": 3, "compress": True}])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lean_writer_writes_what_json_file_writer_writes(tmp_path, options, seed):
    chunks = random_chunks(seed)
    for name, cls in (("lean", jsonlog.JsonFileWriter), ("reference", logs.JsonFileWriter)):
        (tmp_path / name).mkdir()
        with cls(tmp_path / name / "c-json.log", **options) as w:
            feed(w, chunks)
    lean, reference = files_of(tmp_path / "lean"), files_of(tmp_path / "reference")
    assert list(lean) == list(reference)
    for name in lean:
        assert lean[name] == reference[name], name
    if options.get("compress"):
        for name in os.listdir(tmp_path / "lean"):
            if name.endswith(".gz"):        # the header carries the last entry's time, as moby's does
                a = (tmp_path / "lean" / name).read_bytes()
                b = (tmp_path / "reference" / name).read_bytes()
                assert a[:12 + int.from_bytes(a[10:12], "little")] == b[:12 + int.from_bytes(b[10:12], "little")]


def test_entries_are_encoded_alike():
    rnd = random.Random(5)
    alphabet = b'ab\\"<>&\n\r\t\x00\x1f\x7f\x80\xe2\x80\xa8\xa9\xc3\xa9\xff\xed\xb2'
    for _ in range(20000):
        data = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 50)))
        ns = rnd.randint(0, 2**62)
        stream = rnd.choice(("stdout", "stderr", "", "a<b"))
        assert jsonlog.encode_entry(stream, data, ns) == logs.encode_entry(stream, data, ns)


@pytest.mark.parametrize("options", [{}, {"max_size": 4000, "max_file": 3, "compress": True}])
def test_a_handed_over_writer_continues_exactly(tmp_path, options):
    chunks = random_chunks(9)
    (tmp_path / "one").mkdir()
    (tmp_path / "relay").mkdir()
    with jsonlog.JsonFileWriter(tmp_path / "one" / "c-json.log", **options) as w:
        feed(w, chunks)
    path = tmp_path / "relay" / "c-json.log"
    carry = None
    for part in range(0, len(chunks), 37):      # a new writer every 37 chunks, mid-line or not
        w = jsonlog.JsonFileWriter(path, carry=carry, **options)
        feed(w, chunks[part:part + 37], end=False)
        carry = w.hand_over()
    with jsonlog.JsonFileWriter(path, carry=carry, **options) as w:
        feed(w, [])
    assert files_of(tmp_path / "relay") == files_of(tmp_path / "one")


def test_hand_over_keeps_the_unfinished_line(tmp_path):
    path = tmp_path / "c-json.log"
    w = jsonlog.JsonFileWriter(path)
    w.write("stdout", b"prompt> ", when=T0)
    carry = w.hand_over()
    assert path.read_bytes() == b""
    with pytest.raises(Exception):
        w.write("stdout", b"late\n")
    with jsonlog.JsonFileWriter(path, carry=carry) as w:
        w.write("stdout", b"yes\n", when=T0 + 1)
    assert path.read_bytes() == logs.encode_entry("stdout", b"prompt> yes\n", (T0 + 1) * 10**9)
