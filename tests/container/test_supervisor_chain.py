"""The supervisor's exec chain: containers that outlive the hand-over to the
lean idle loop (berth.container.pump) and back keep every behaviour."""

import json
import subprocess
import time

import pexpect

from berth.container.logs import encode_entry, parse_time
from berth.container.pump import HANDOFF_AFTER
from berthtest import berth_argv, supervisor_phase, wait_for

# Longer than the hand-over delay of an attached run.
PAST_HANDOFF = HANDOFF_AFTER + 1.0


def state(berth, ref) -> dict:
    return json.loads(berth("inspect", "-f", "{{json .State}}", ref).stdout)


def log_lines(berth, ref) -> list[bytes]:
    path = berth("inspect", "-f", "{{.LogPath}}", ref).stdout.strip()
    with open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def test_a_detached_container_is_served_by_the_idle_loop(berth, bb):
    cid = berth("run", "-d", bb, "sh", "-c", "printf 'no newline yet'; sleep 1; echo ' done'; "
                "echo err >&2; sleep 60").stdout.strip()
    assert wait_for(lambda: supervisor_phase(berth.root, cid) == "pump", timeout=5)
    wait_for(lambda: len(log_lines(berth, cid)) == 2)
    lines = log_lines(berth, cid)
    # Every line as JsonFileWriter encodes it; the line begun before the
    # hand-over and ended after it is one entry.
    for line, (stream, data) in zip(lines, [("stdout", b"no newline yet done\n"), ("stderr", b"err\n")]):
        entry = json.loads(line)
        assert (entry["stream"], entry["log"].encode()) == (stream, data)
        assert line == encode_entry(stream, data, parse_time(entry["time"]))
    assert berth("logs", cid).stdout == "no newline yet done\n"
    assert berth("exec", cid, "echo", "hi").stdout == "hi\n"
    start = time.monotonic()
    berth("stop", "-t", "1", cid)
    assert time.monotonic() - start < 10
    s = state(berth, cid)
    assert (s["Status"], s["ExitCode"], s["Running"]) == ("exited", 137, False)
    assert supervisor_phase(berth.root, cid) is None
    berth("rm", cid)


def test_restart_policy_across_the_chain(berth, bb):
    # Each run is handed to the idle loop, and its exit back to the supervisor, which restarts it.
    berth("run", "-d", "--name", "flaky", "--restart", "on-failure:2", bb, "sh", "-c",
          "echo try; sleep 0.5; exit 3")
    wait_for(lambda: state(berth, "flaky")["Status"] == "exited", timeout=30)
    assert berth("inspect", "-f", "{{.RestartCount}} {{.State.ExitCode}}", "flaky").stdout == "2 3\n"
    assert berth("logs", "flaky").stdout == "try\ntry\ntry\n"
    events = berth("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter",
                   "container=flaky", "--format", "{{.Action}}").stdout.split()
    assert events.count("start") == 3 and events.count("die") == 3


def test_stop_ends_restarts_across_the_chain(berth, bb):
    berth("run", "-d", "--name", "always", "--restart", "always", bb, "sleep", "60")
    cid = berth("inspect", "-f", "{{.Id}}", "always").stdout.strip()
    wait_for(lambda: supervisor_phase(berth.root, cid) == "pump", timeout=5)
    berth("stop", "-t", "1", "always")
    s = state(berth, "always")
    assert s["Status"] == "exited"
    time.sleep(0.5)     # ManuallyStopped: no restart comes
    assert state(berth, "always")["Status"] == "exited"


def test_attached_run_across_the_hand_over(berth, bb):
    """The CLI attached before the hand-over gets the output written after it,
    and the exit code once --rm has removed the container."""
    p = berth("run", "--rm", bb, "sh", "-c", f"echo a; sleep {PAST_HANDOFF}; echo b; echo e >&2; exit 4",
              check=False)
    assert (p.returncode, p.stdout, p.stderr) == (4, "a\nb\n", "e\n")
    assert berth("ps", "-aq").stdout == ""


def test_stdin_after_the_hand_over(berth, bb):
    proc = subprocess.Popen([*berth_argv(berth.root), "run", "-i", "--rm",
                             bb, "sh", "-c", "read line; echo got:$line; cat"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(PAST_HANDOFF)
        proc.stdin.write(b"first\nsecond\n")
        # communicate closes our stdin after it; StdinOnce closes the container's.
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, out, err) == (0, b"got:first\nsecond\n", b"")


def test_terminal_resize_after_the_hand_over(berth, bb):
    child = pexpect.spawn(berth_argv()[0], [*berth_argv(berth.root)[1:], "run", "-it", "--rm",
                                           bb, "sh"], timeout=20, encoding="utf-8", dimensions=(30, 100))
    try:
        child.expect("# ")
        time.sleep(PAST_HANDOFF)
        child.setwinsize(40, 120)
        time.sleep(0.3)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 5


def test_oom_is_noticed_by_the_resumed_supervisor(berth, bb):
    cid = berth("run", "-d", "--memory", "32m", bb, "sh", "-c",
                "sleep 0.5; x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; "
                "while true; do x=$x$x; done").stdout.strip()
    wait_for(lambda: state(berth, cid)["Status"] == "exited", timeout=60)
    s = state(berth, cid)
    assert s["OOMKilled"] is True and s["ExitCode"] == 137
    berth("rm", cid)


def test_detached_rm_removes_after_the_chain(berth, bb):
    cid = berth("run", "-d", "--rm", bb, "sh", "-c", "sleep 0.5").stdout.strip()
    wait_for(lambda: cid not in berth("ps", "-aq", "--no-trunc").stdout, timeout=20)
    assert supervisor_phase(berth.root, cid) is None
