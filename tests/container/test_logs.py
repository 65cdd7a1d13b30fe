"""The json-file log driver: format, splitting, rotation, and reading back."""

import fcntl
import gzip
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

import pytest

from berth.container.logs import (LINE_LIMIT, JsonFileOptions, JsonFileWriter, LogEntry, decode_entry,
                                  encode_entry, format_time, format_time_fixed, parse_human_size,
                                  parse_time, read_logs)
from berth.errors import Conflict, InvalidArgument

T0 = 1_700_000_000      # 2023-11-14T22:13:20Z


def raw_entries(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


def logs_of(path, **kw):
    return [e.data for e in read_logs(path, **kw)]


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "c-json.log"


# --- format ---------------------------------------------------------------------

# Written by dockerd 20.10 for the output of
#   printf 'a\tb<c>&d"e\\f\001\037\177\r\n\n'
#   printf 'h\xc3\xa9\xff\xe2\x80\xa8\xe2\x82x\xed\xa0\x80\xef\xbf\xbd\nno-newline'
DOCKER_LINES = [
    b'{"log":"a\\u0009b\\u003cc\\u003e\\u0026d\\"e\\\\f\\u0001\\u001f\x7f\\r\\n","stream":"stdout",'
    b'"time":"2026-11-25T07:56:17.214964378Z"}\n',
    b'{"log":"\\n","stream":"stdout","time":"2026-11-25T07:56:17.215003756Z"}\n',
    b'{"log":"h\xc3\xa9\\ufffd\\u2028\\ufffd\\ufffdx\\ufffd\\ufffd\\ufffd\xef\xbf\xbd\\n","stream":"stdout",'
    b'"time":"2026-11-25T07:56:17.2150064Z"}\n',
    b'{"log":"no-newline","stream":"stdout","time":"2026-11-25T07:56:17.235856912Z"}\n',
]
DOCKER_LOGS = [b'a\tb<c>&d"e\\f\x01\x1f\x7f\r\n', b"\n",
               b"h\xc3\xa9\xff\xe2\x80\xa8\xe2\x82x\xed\xa0\x80\xef\xbf\xbd\n", b"no-newline"]


def test_encoding_matches_dockerd_byte_for_byte():
    for line, data in zip(DOCKER_LINES, DOCKER_LOGS):
        stamp = json.loads(line)["time"]
        assert encode_entry("stdout", data, parse_time(stamp)) == line


def test_decoding_dockerd_lines():
    entries = [decode_entry(line.rstrip(b"\n")) for line in DOCKER_LINES]
    assert [e.stream for e in entries] == ["stdout"] * 4
    # Invalid UTF-8 was replaced when written; reading gives the replacement characters.
    assert entries[2].data == "hé\ufffd\u2028\ufffd\ufffdx\ufffd\ufffd\ufffd\ufffd\n".encode()
    assert entries[0].data == DOCKER_LOGS[0]
    assert entries[2].time_text == "2026-11-25T07:56:17.215006400Z"
    assert entries[2].time_ns == parse_time("2026-11-25T07:56:17.2150064Z")
    assert entries[3].line(timestamps=True) == b"2026-11-25T07:56:17.235856912Z no-newline"
    assert entries[3].line() == b"no-newline"


def test_time_formats():
    ns = T0 * 10**9
    assert format_time(ns) == "2023-11-14T22:13:20Z"
    assert format_time(ns + 500_000_000) == "2023-11-14T22:13:20.5Z"
    assert format_time(ns + 1) == "2023-11-14T22:13:20.000000001Z"
    assert format_time(ns + 123_456_780) == "2023-11-14T22:13:20.12345678Z"
    assert format_time_fixed(ns) == "2023-11-14T22:13:20.000000000Z"
    assert format_time_fixed(ns + 120_000_000) == "2023-11-14T22:13:20.120000000Z"
    assert parse_time("2023-11-14T22:13:20Z") == ns
    assert parse_time("2023-11-14T22:13:20.5Z") == ns + 500_000_000
    assert parse_time("2023-11-15T00:13:20.000000001+02:00") == ns + 1
    with pytest.raises(ValueError):
        parse_time("2023-11-14 22:13:20Z")


def test_decode_rejects_foreign_and_torn_lines():
    assert decode_entry(b"") is None
    assert decode_entry(b'{"log":"x\\n","stream":"stdout","ti') is None
    assert decode_entry(b'["log"]') is None
    assert decode_entry(b'{"log":"x\\n","stream":"stdout"}') is None
    lone = decode_entry(b'{"log":"\\ud800\\n","stream":"stderr","time":"2023-11-14T22:13:20Z"}')
    assert lone.data == "\ufffd\n".encode() and lone.stream == "stderr"


# --- writing ----------------------------------------------------------------------

def test_lines_are_entries_whatever_the_chunking(log_path):
    with JsonFileWriter(log_path) as w:
        for chunk in (b"hel", b"lo\nwor", b"ld\n\nlast\n"):
            w.write("stdout", chunk, when=T0)
    assert open(log_path, "rb").read() == (
        b'{"log":"hello\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}\n'
        b'{"log":"world\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}\n'
        b'{"log":"\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}\n'
        b'{"log":"last\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}\n')
    assert os.stat(log_path).st_mode & 0o777 == 0o640


def test_streams_are_split_independently(log_path):
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"ab", when=T0)
        w.write("stderr", b"x\ny", when=T0 + 1)
        w.write("stdout", b"c\n", when=T0 + 2)
        w.write("stderr", b"z\n", when=T0 + 3)
    assert [(e["stream"], e["log"], e["time"]) for e in raw_entries(log_path)] == [
        ("stderr", "x\n", "2023-11-14T22:13:21Z"),
        ("stdout", "abc\n", "2023-11-14T22:13:22Z"),
        ("stderr", "yz\n", "2023-11-14T22:13:23Z"),
    ]


def test_long_lines_are_split_like_dockerd(log_path):
    # dockerd for: 40000 x's, newline, 16384 y's, newline, 16384 z's (no newline)
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"x" * 20000, when=T0 + 0.25)
        w.write("stdout", b"x" * 20000 + b"\n" + b"y" * 16384, when=T0 + 1)
        w.write("stdout", b"\n" + b"z" * 16384, when=T0 + 2)
    got = [(len(e["log"]), e["log"][-1], e["time"]) for e in raw_entries(log_path)]
    assert got == [
        (16384, "x", "2023-11-14T22:13:20.25Z"),    # continuations keep the first piece's time
        (16384, "x", "2023-11-14T22:13:20.25Z"),
        (7233, "\n", "2023-11-14T22:13:20.25Z"),
        (16384, "y", "2023-11-14T22:13:21Z"),
        (1, "\n", "2023-11-14T22:13:21Z"),          # exactly 16 KiB: the newline comes alone
        (16384, "z", "2023-11-14T22:13:22Z"),       # written when the buffer filled
    ]
    assert LINE_LIMIT == 16384
    assert b"".join(logs_of(log_path)) == b"x" * 40000 + b"\n" + b"y" * 16384 + b"\n" + b"z" * 16384


def test_unterminated_output_is_flushed_without_newline(log_path):
    w = JsonFileWriter(log_path)
    w.write("stdout", b"prompt> ", when=T0)
    w.write("stderr", b"err", when=T0)
    assert raw_entries(log_path) == []
    w.flush_partial("stderr", when=T0 + 1)
    assert raw_entries(log_path) == [{"log": "err", "stream": "stderr", "time": "2023-11-14T22:13:21Z"}]
    w.write("stderr", b"again\n", when=T0 + 2)       # a new line after the stream's end
    w.close()
    entries = raw_entries(log_path)
    assert entries[1] == {"log": "again\n", "stream": "stderr", "time": "2023-11-14T22:13:22Z"}
    assert entries[2]["log"] == "prompt> " and entries[2]["stream"] == "stdout"
    w.close()       # idempotent
    with pytest.raises(Conflict):
        w.write("stdout", b"late\n")


def test_partial_flush_keeps_the_split_lines_time(log_path):
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"q" * (LINE_LIMIT + 5), when=T0)
        w.flush_partial(when=T0 + 9)
    assert [(len(e["log"]), e["time"]) for e in raw_entries(log_path)] == [
        (LINE_LIMIT, "2023-11-14T22:13:20Z"), (5, "2023-11-14T22:13:20Z")]


def test_reopened_log_is_appended_to(log_path):
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"one\n", when=T0)
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"two\n", when=T0 + 1)
    assert logs_of(log_path) == [b"one\n", b"two\n"]


def test_option_validation():
    with pytest.raises(InvalidArgument, match="max-size must be a positive number"):
        JsonFileWriter("/nonexistent/x", max_size=0)
    with pytest.raises(InvalidArgument, match="max-file cannot be less than 1"):
        JsonFileWriter("/nonexistent/x", max_size=10, max_file=0)
    with pytest.raises(InvalidArgument, match="compress cannot be true"):
        JsonFileWriter("/nonexistent/x", max_size=10, max_file=1, compress=True)
    with pytest.raises(InvalidArgument, match="compress cannot be true"):
        JsonFileWriter("/nonexistent/x", max_file=3, compress=True)


def test_log_opts_parsing():
    assert JsonFileOptions.from_log_opts({}) == JsonFileOptions(None, 1, False)
    assert JsonFileOptions.from_log_opts({"max-size": "10m", "max-file": "3", "compress": "true",
                                          "tag": "x"}) == JsonFileOptions(10_000_000, 3, True)
    for opts, message in [
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-size": "10q"}, "invalid suffix: 'q'"),
        ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        ({"compress": "1", "max-size": "1k"},
         "compress cannot be true when max-file is less than 2 or max-size is not set"),
        ({"mode": "non-blocking"}, "unknown log opt 'mode' for json-file log driver"),
    ]:
        with pytest.raises(InvalidArgument) as e:
            JsonFileOptions.from_log_opts(opts)
        assert str(e.value) == message


def test_human_sizes_are_decimal():
    assert parse_human_size("1k") == 1000
    assert parse_human_size("10m") == 10_000_000
    assert parse_human_size("10MiB") == 10_000_000     # go-units' FromHumanSize ignores the i
    assert parse_human_size("1.5 KB") == 1500
    assert parse_human_size("2g") == 2 * 10**9
    assert parse_human_size("123") == 123
    assert parse_human_size("7b") == 7
    for bad, message in [("abc", "invalid size: 'abc'"), ("10kbb", "invalid suffix: 'kbb'"),
                         ("10xb", "invalid suffix: 'xb'"), ("-5", "invalid size: '-5'")]:
        with pytest.raises(InvalidArgument) as e:
            parse_human_size(bad)
        assert str(e.value) == message


# --- rotation ------------------------------------------------------------------------

def write_numbered(w, count, start=0, when=None):
    for i in range(start, start + count):
        w.write("stdout", f"line {i}\n".encode(), when=when if when is not None else T0 + i)


def numbers(datas):
    return [int(d.split()[1]) for d in datas]


def check_rotation_points(path, max_size, files):
    """Each rotated file was closed by the first entry that reached max_size."""
    for name in files:
        sizes = [len(line) for line in open(name, "rb")]
        assert sum(sizes) >= max_size and sum(sizes) - sizes[-1] < max_size, name


def test_rotation_keeps_max_file_files(log_path):
    entry = len(encode_entry("stdout", b"line 10\n", (T0 + 10) * 10**9))
    with JsonFileWriter(log_path, max_size=1000, max_file=3) as w:
        write_numbered(w, 100)
    names = sorted(os.listdir(log_path.parent))
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    per_file = -(-1000 // entry)
    assert numbers(logs_of(str(log_path) + ".1")) == list(range(100 - 100 % per_file - per_file,
                                                               100 - 100 % per_file))
    check_rotation_points(log_path, 1000, [f"{log_path}.1", f"{log_path}.2"])
    got = numbers(logs_of(log_path))
    assert got == list(range(got[0], 100)) and len(got) == per_file * 2 + 100 % per_file


def test_max_file_one_truncates_in_place(log_path):
    with JsonFileWriter(log_path, max_size=500) as w:
        inode = os.stat(log_path).st_ino
        write_numbered(w, 40)
    assert os.listdir(log_path.parent) == ["c-json.log"]
    assert os.stat(log_path).st_ino == inode
    got = numbers(logs_of(log_path))
    assert got[-1] == 39 and got == list(range(got[0], 40)) and len(got) < 10


def test_compressed_rotation(log_path):
    with JsonFileWriter(log_path, max_size=1000, max_file=4, compress=True) as w:
        write_numbered(w, 100)
    assert sorted(os.listdir(log_path.parent)) == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz",
                                                   "c-json.log.3.gz"]
    with open(f"{log_path}.1.gz", "rb") as f:
        head = f.read(10)
        assert head[:4] == b"\x1f\x8b\x08\x04"       # FEXTRA, as Go writes it
        xlen = int.from_bytes(f.read(2), "little")
        meta = json.loads(f.read(xlen))
    content = gzip.decompress(open(f"{log_path}.1.gz", "rb").read())
    last = json.loads(content.splitlines()[-1])
    assert meta == {"lastTime": last["time"]}
    got = numbers(logs_of(log_path))
    assert got == list(range(got[0], 100))
    assert numbers(logs_of(log_path, tail=30)) == list(range(70, 100))
    # --since skips whole compressed files by the time in their header.
    assert numbers(logs_of(log_path, since=T0 + 95)) == [95, 96, 97, 98, 99]


def test_compression_left_unfinished_is_completed(log_path):
    with JsonFileWriter(log_path, max_size=1000, max_file=3) as w:    # leaves an uncompressed .1
        write_numbered(w, 20)
    open(f"{log_path}.1.gz.tmp", "wb").write(b"half")
    with JsonFileWriter(log_path, max_size=1000, max_file=3, compress=True) as w:
        write_numbered(w, 1, start=20)
    assert sorted(os.listdir(log_path.parent)) == ["c-json.log", "c-json.log.1.gz"]
    assert numbers(logs_of(log_path)) == list(range(21))


# --- reading --------------------------------------------------------------------------

@pytest.fixture
def rotated_log(log_path):
    with JsonFileWriter(log_path, max_size=800, max_file=50) as w:
        write_numbered(w, 100)
    assert len(os.listdir(log_path.parent)) > 5
    return log_path


def test_read_across_rotated_files_in_order(rotated_log):
    assert numbers(logs_of(rotated_log)) == list(range(100))
    entries = list(read_logs(rotated_log))
    assert entries[5] == LogEntry("stdout", b"line 5\n", T0 + 5.0, "2023-11-14T22:13:25.000000000Z",
                                  (T0 + 5) * 10**9)


def test_tail(rotated_log):
    assert numbers(logs_of(rotated_log, tail=1)) == [99]
    assert numbers(logs_of(rotated_log, tail=35)) == list(range(65, 100))     # spans several files
    assert numbers(logs_of(rotated_log, tail=1000)) == list(range(100))
    assert numbers(logs_of(rotated_log, tail=-1)) == list(range(100))
    assert logs_of(rotated_log, tail=0) == []


def test_since_and_until(rotated_log):
    assert numbers(logs_of(rotated_log, since=T0 + 42)) == list(range(42, 100))
    assert numbers(logs_of(rotated_log, until=T0 + 3)) == [0, 1, 2, 3]
    assert numbers(logs_of(rotated_log, since=T0 + 10.5, until=T0 + 13)) == [11, 12, 13]
    # tail is taken first, then the time window, as dockerd does
    assert numbers(logs_of(rotated_log, tail=10, since=T0 + 95)) == [95, 96, 97, 98, 99]
    assert numbers(logs_of(rotated_log, tail=3, until=T0 + 50)) == []


def test_torn_and_foreign_lines_are_skipped(log_path):
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"good 1\n", when=T0)
    with open(log_path, "ab") as f:
        f.write(b"garbage\n{\"log\":\"torn")       # a crash mid-entry ...
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"good 2\n", when=T0 + 1)  # ... and the next entry lands on its line
        w.write("stdout", b"good 3\n", when=T0 + 2)
    assert logs_of(log_path) == [b"good 1\n", b"good 3\n"]
    assert logs_of(log_path, tail=1) == [b"good 3\n"]
    with open(log_path, "ab") as f:
        f.write(b'{"log":"being written')          # an entry still being written is not read
    assert logs_of(log_path) == [b"good 1\n", b"good 3\n"]
    assert logs_of(log_path, tail=2) == [b"good 1\n", b"good 3\n"]


def test_missing_log_reads_empty(tmp_path):
    assert logs_of(tmp_path / "none-json.log") == []


def test_tail_reads_from_the_end(log_path):
    """tail on a big log reads a few blocks from the end, not the whole file."""
    line = encode_entry("stdout", b"x" * 200 + b"\n", T0 * 10**9)
    with open(log_path, "wb") as f:
        f.write(line * 80_000)                     # 20 MB
    start = time.process_time()
    assert len(logs_of(log_path, tail=3)) == 3
    assert time.process_time() - start < 0.05


def test_a_stuck_reader_delays_a_rotation_by_a_second_at_most(log_path):
    with JsonFileWriter(log_path, max_size=10, max_file=2) as w:
        w.write("stdout", b"first\n")
        with open(log_path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH)           # a reader stopped in the middle of a snapshot
            start = time.monotonic()
            w.write("stdout", b"second\n")
            assert 0.9 < time.monotonic() - start < 3
    assert logs_of(log_path) == [b"first\n", b"second\n"]


WRITER = """
import sys
from berth.container.logs import JsonFileWriter
with JsonFileWriter(sys.argv[1], max_size=int(sys.argv[2]), max_file=4) as w:
    i = 0
    while i < 10**7:
        w.write("stdout", f"line {i}\\n".encode())
        i += 1
"""


def test_reads_are_consistent_while_rotating(log_path):
    """Every read sees one contiguous run of lines, even mid-rotation.

    The writer is another process, as the supervisor is, rotating every
    dozen lines as fast as it can.
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log_path), "1000"],
                              env={**os.environ, "PYTHONPATH": root})
    try:
        # Bounded in time, but not timed: a loaded machine just takes longer.
        deadline = time.monotonic() + 20
        reads = []
        while time.monotonic() < deadline and not (len(reads) > 10 and reads[-1] > 1000):
            got = numbers(logs_of(log_path))
            if got:
                assert got == list(range(got[0], got[0] + len(got)))
                reads.append(got[0])
        assert len(reads) > 10 and reads[-1] > 1000   # old files were dropped many times over
    finally:
        writer.kill()
        writer.wait()


# --- following ---------------------------------------------------------------------------

def follow_in_thread(path, **kw):
    """Run a follow read in a thread; entries arrive on the returned queue, then None."""
    q = queue.Queue()

    def run():
        try:
            for e in read_logs(path, follow=True, **kw):
                q.put(e)
        finally:
            q.put(None)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return q, t


def drain(q, timeout=10):
    out = []
    while (e := q.get(timeout=timeout)) is not None:
        out.append(e)
    return out


def test_follow_with_a_writer_thread(log_path):
    stop = threading.Event()
    with JsonFileWriter(log_path) as w:
        write_numbered(w, 5)
        q, t = follow_in_thread(log_path, tail=2, stop=stop)
        assert numbers([q.get(timeout=5).data, q.get(timeout=5).data]) == [3, 4]

        def writer():
            for i in range(5, 300):
                w.write("stdout", f"line {i}\n".encode()[:4])
                if i % 50 == 0:
                    time.sleep(0.07)
                w.write("stdout", f"line {i}\n".encode()[4:])
        wt = threading.Thread(target=writer)
        wt.start()
        wt.join()
        w.write("stdout", b"unterminated")
    stop.set()
    got = drain(q)
    t.join(5)
    assert numbers(e.data for e in got[:-1]) == list(range(5, 300))
    assert got[-1].data == b"unterminated"


def test_follow_across_fast_rotations(log_path):
    """Several rotations between two polls lose nothing while the files still exist."""
    stop = threading.Event()
    q, t = follow_in_thread(log_path, stop=stop, poll_interval=0.2)
    with JsonFileWriter(log_path, max_size=400, max_file=250) as w:
        for i in range(900):
            w.write("stdout", f"line {i}\n".encode())
            if i % 300 == 0:
                time.sleep(0.05)
    stop.set()
    assert numbers(e.data for e in drain(q)) == list(range(900))
    t.join(5)
    assert len(os.listdir(log_path.parent)) > 100


@pytest.mark.parametrize("options", [dict(max_size=1), dict(max_size=1, max_file=2),
                                     dict(max_size=150, max_file=3, compress=True)],
                         ids=["truncate", "rotate", "compress"])
def test_follow_every_kind_of_rotation(log_path, options):
    """Lockstep: each line is seen before the next is written, whatever happens to the file."""
    stop = threading.Event()
    with JsonFileWriter(log_path, **options) as w:
        q, t = follow_in_thread(log_path, stop=stop, poll_interval=0.01)
        for i in range(60):
            # Lines of changing length: truncation must be noticed even when the
            # new file is as long as the old one was.
            w.write("stdout", f"line {i}{' ' * (i % 3)}\n".encode())
            assert numbers([q.get(timeout=5).data]) == [i]
    stop.set()
    assert drain(q) == []
    t.join(5)


def test_follow_waits_for_the_log_to_appear(log_path):
    stop = threading.Event()
    q, t = follow_in_thread(log_path, stop=stop)
    time.sleep(0.12)
    with JsonFileWriter(log_path) as w:
        w.write("stderr", b"hello\n")
    assert q.get(timeout=5).data == b"hello\n"
    stop.set()
    assert drain(q) == []


def test_follow_stop_callable_reads_everything_first(log_path):
    finished = False

    def stopped():
        return finished
    w = JsonFileWriter(log_path)
    reader = read_logs(log_path, follow=True, stop=stopped)
    w.write("stdout", b"a\n")
    assert next(reader).data == b"a\n"
    w.write("stdout", b"b\nc")
    w.close()                       # flushes "c"
    finished = True
    assert [e.data for e in reader] == [b"b\n", b"c"]


def test_follow_ends_at_until(log_path):
    with JsonFileWriter(log_path) as w:
        write_numbered(w, 3)
        start = time.monotonic()
        # until in the past: existing entries up to it, then no waiting
        assert numbers(logs_of(log_path, follow=True, until=T0 + 1)) == [0, 1]
        now = time.time()
        w.write("stdout", b"line 3\n", when=now)
        assert numbers(logs_of(log_path, follow=True, since=now, until=now + 0.3)) == [3]
    assert time.monotonic() - start < 3


def test_follow_can_be_closed_early(log_path):
    with JsonFileWriter(log_path) as w:
        w.write("stdout", b"x\n")
        reader = read_logs(log_path, follow=True)
        assert next(reader).data == b"x\n"
        reader.close()


# --- against the real dockerd -------------------------------------------------------------

SCRIPT = (r"printf 'a\tb<c>&\001\r\n\nh\303\251\377\n'; echo err >&2; "
          r"head -c 40000 /dev/zero | tr '\0' x; echo; printf 'tail-no-newline'")


@pytest.fixture(scope="module")
def docker_image(docker, busybox_tar):
    docker("import", str(busybox_tar), "berthtest/logs:1")
    yield "berthtest/logs:1"
    docker("rmi", "-f", "berthtest/logs:1", check=False)


@pytest.fixture
def docker_container(docker, docker_image):
    names = []

    def run(*args, cmd=SCRIPT):
        name = f"berthtest-logs-{len(names)}"
        names.append(name)
        docker("create", "--name", name, "--network", "none", *args, docker_image, "sh", "-c", cmd)
        docker("start", "-a", name, input=b"")
        return name, docker("inspect", "-f", "{{.LogPath}}", name).stdout.strip()
    yield run
    for name in names:
        docker("rm", "-f", name, check=False)


def rendered(entries, stream):
    return b"".join(e.line(timestamps=True) for e in entries if e.stream == stream)


@pytest.mark.docker
def test_reading_dockerd_logs(docker, docker_container):
    name, path = docker_container()
    entries = list(read_logs(path))
    logs = docker("logs", "-t", name, input=b"")
    assert rendered(entries, "stdout") == logs.stdout
    assert rendered(entries, "stderr") == logs.stderr
    # Re-encoding what was read gives dockerd's file back, byte for byte, but
    # for the invalid UTF-8, which dockerd escaped and reading replaced.
    expected = open(path, "rb").read().replace(b"\\ufffd", "\ufffd".encode())
    assert b"".join(encode_entry(e.stream, e.data, e.time_ns) for e in entries) == expected


@pytest.mark.docker
def test_same_entries_as_dockerd(docker, docker_container, tmp_path):
    _, path = docker_container()
    ours = tmp_path / "ours-json.log"
    # Feed the writer what the script prints, in chunks unlike dockerd's reads.
    out = b"a\tb<c>&\x01\r\n\nh\xc3\xa9\xff\n" + b"x" * 40000 + b"\ntail-no-newline"
    with JsonFileWriter(ours) as w:
        w.write("stderr", b"err\n")
        for i in range(0, len(out), 1000):
            w.write("stdout", out[i:i + 1000])

    def shape(p):
        return sorted((e["stream"], e["log"]) for e in raw_entries(p))
    assert shape(ours) == shape(path)


@pytest.mark.docker
@pytest.mark.parametrize("opts", [[], ["--log-opt", "max-size=1k", "--log-opt", "max-file=3"],
                                  ["--log-opt", "max-size=1k", "--log-opt", "max-file=3",
                                   "--log-opt", "compress=true"]], ids=["plain", "rotated", "compressed"])
def test_dockerd_reads_our_logs(docker, docker_container, opts):
    """dockerd's `logs` shows our files exactly as berth reads them."""
    name, path = docker_container(*opts, cmd="true")
    options = JsonFileOptions.from_log_opts(dict(o.split("=", 1) for o in opts[1::2]))
    directory = os.path.dirname(path)
    for f in os.listdir(directory):
        if re.fullmatch(r".*-json\.log.*", f):
            os.unlink(os.path.join(directory, f))
    with JsonFileWriter(path, max_size=options.max_size, max_file=options.max_file,
                        compress=options.compress) as w:
        w.write("stdout", b"a\tb<c>&\x01\r\n\nh\xc3\xa9\n" + b"y" * 20000 + b"\n")
        w.write("stderr", b"e1\n")
        for i in range(40):
            w.write("stdout" if i % 3 else "stderr", f"line {i}\n".encode())
        w.write("stdout", b"no newline")
    if opts:
        assert os.path.exists(f"{path}.2.gz" if options.compress else f"{path}.2")
    entries = list(read_logs(path))
    logs = docker("logs", "-t", name, input=b"")
    assert logs.stdout == rendered(entries, "stdout")
    assert logs.stderr == rendered(entries, "stderr")
    tail = docker("logs", "--tail", "7", name, input=b"")
    last = list(read_logs(path, tail=7))
    assert (tail.stdout, tail.stderr) == (b"".join(e.data for e in last if e.stream == "stdout"),
                                          b"".join(e.data for e in last if e.stream == "stderr"))


@pytest.mark.docker
def test_rotation_like_dockerd(docker, docker_container, tmp_path):
    cmd = "i=0; while [ $i -lt 100 ]; do echo \"line $i\"; i=$((i+1)); done"
    _, path = docker_container("--log-opt", "max-size=1k", "--log-opt", "max-file=3", cmd=cmd)
    ours = tmp_path / "ours-json.log"
    with JsonFileWriter(ours, max_size=1000, max_file=3) as w:
        write_numbered(w, 100)
    for p in (path, str(ours)):
        assert [os.path.exists(f"{p}{s}") for s in ("", ".1", ".2", ".3")] == [True, True, True, False]
        check_rotation_points(p, 1000, [f"{p}.1", f"{p}.2"])
        got = numbers(logs_of(p))
        assert got == list(range(got[0], 100))
