"""What an idle container costs: its supervisor, once in the lean idle loop,
holds little more memory than a bare interpreter."""

import os
import subprocess
import sys
import time

import berth
from berth.container.pump import parse_hello
from berth.container import protocol as proto

REPO = os.path.dirname(os.path.dirname(os.path.abspath(berth.__file__)))
# Modules the idle loop must not load: each costs from a hundred KiB to a
# megabyte per container (socket and signal through enum; json with re; os
# with its ABCs).
HEAVY = {"os", "json", "re", "enum", "socket", "signal", "selectors", "threading", "logging", "subprocess",
         "sqlite3", "dataclasses", "typing", "inspect", "pathlib", "collections", "gzip", "zlib",
         "tempfile", "ctypes", "berth.container.logs", "berth.container.supervisor"}
# Measured: about 0.45 MiB of private memory over a bare `python3 -I -S`.
ANON_OVER_BARE_KIB = 768


def test_idle_loop_imports_nothing_heavy():
    code = (f"import sys; sys.path.insert(0, {REPO!r}); import berth.container.pump; "
            "print(' '.join(sys.modules))")
    loaded = set(subprocess.run([sys.executable, "-I", "-S", "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    assert "berth.container.pump" in loaded
    assert loaded & HEAVY == set()


def memory(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss_Anon"):
                out[key] = int(value.split()[0])
    return out


def waiting_in_poll(pid: int) -> bool:
    with open(f"/proc/{pid}/wchan") as f:
        return "poll" in f.read()


def test_idle_supervisor_is_close_to_a_bare_interpreter(berth, bb):
    cid = berth("run", "-d", bb, "sleep", "120").stdout.strip()
    deadline = time.monotonic() + 20
    pid = None
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-f", f"berth.container.pump import main.* {berth.root} {cid}"],
                             capture_output=True, text=True).stdout.split()
        if out and waiting_in_poll(int(out[0])):
            pid = int(out[0])
            break
        time.sleep(0.1)
    assert pid, "the supervisor never reached the idle loop"
    idle = memory(pid)
    bare = subprocess.Popen([sys.executable, "-I", "-S", "-c", "print('ready', flush=True); "
                             "import time; time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert bare.stdout.readline() == "ready\n"
        baseline = memory(bare.pid)
    finally:
        bare.kill()
        bare.wait()
    berth("rm", "-f", cid)
    assert idle["Pss_Anon"] - baseline["Pss_Anon"] < ANON_OVER_BARE_KIB, (idle, baseline)
    assert idle["Rss"] - baseline["Rss"] < ANON_OVER_BARE_KIB + 1024, (idle, baseline)


def test_hello_is_read_without_a_json_parser():
    for fields in ({"stdin": True, "stdout": True, "stderr": False, "rows": 24, "cols": 80, "logs": False},
                   {"stdin": False, "stdout": False, "stderr": False, "rows": 0, "cols": 0, "logs": False}):
        frames = proto.Demuxer().feed(proto.hello(**fields))
        assert frames[0][0] == proto.HELLO
        assert parse_hello(frames[0][1]) == fields
    assert parse_hello(b' { "a" : true ,"b":null, "c": -3 } ') == {"a": True, "b": None, "c": -3}
    assert parse_hello(b"{}") == {}
    for bad in (b"", b"[1]", b'{"a": "text"}', b'{"a": 1.5}', b"{a: 1}", b'{"a" 1}', b"\xff"):
        try:
            parse_hello(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


HAND_OVER = r"""
import marshal, os, socket, subprocess, sys
from berth.container import protocol as proto
from berth.container.jsonlog import JsonFileWriter
from berth.container.pump import Pump

tmp = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(tmp + "/s")
server.listen(1)
out_r, out_w = os.pipe()
init = subprocess.Popen(["sleep", "30"])
pump = Pump(server.detach(), JsonFileWriter(tmp + "/log"), tty=False, open_stdin=False, stdin_once=False)
pump.attach_process(init.pid, {out_r: proto.STDOUT})
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(tmp + "/s")
client.sendall(proto.hello(stdin=False, stdout=True, stderr=True))
while not (pump.clients and pump.clients[0].hello):
    pump.poll(1.0)
os.write(out_w, b"half a line")
pump.poll(1.0)
state = marshal.loads(marshal.dumps(pump.hand_over()))
assert state["log"]["carry"]["pending"] == {"stdout": b"half a line"}, state
assert state["outputs"] == {out_r: proto.STDOUT} and os.get_inheritable(out_r)
assert [hello["stdout"] for _, hello in state["clients"]] == [True]
taken = Pump.take_over(state)
assert not os.get_inheritable(out_r)
os.write(out_w, b", ended\n")
os.close(out_w)
init.kill()
assert taken.run() is True and taken.exit_code == 137
data = open(tmp + "/log", "rb").read()
assert b'"log":"half a line, ended\\n"' in data, data
client.settimeout(10)
demux, frames = proto.Demuxer(), []
while len(frames) < 2:
    frames += demux.feed(client.recv(1000))
assert frames == [(proto.STDOUT, b"half a line"), (proto.STDOUT, b", ended\n")], frames
"""


def test_pump_state_survives_the_hand_over(tmp_path):
    """The loop described for the next program (plain data, as marshal
    carries it) is restored as it was: clients, streams, unfinished lines."""
    subprocess.run([sys.executable, "-c", HAND_OVER, str(tmp_path)], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": REPO})
