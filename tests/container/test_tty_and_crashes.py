"""A terminal session driven like a person would (pexpect), and crashes
that must leave nothing behind."""

import os
import signal
import subprocess
import time

import pexpect
from berthtest import berth_argv


def spawn(berth, *args):
    return pexpect.spawn(berth_argv()[0], [*berth_argv(berth.root)[1:], *args],
                         timeout=20, encoding="utf-8", dimensions=(30, 100))


def test_run_it_detach_attach_exit(berth, bb):
    child = spawn(berth, "run", "-it", "--name", "term", bb, "sh")
    child.expect("# ")
    child.sendline("echo $((6*7)); stty size")
    child.expect("42")
    child.expect("30 100")              # the caller's window size
    child.send("\x10\x11")              # Ctrl-P Ctrl-Q: detach
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Up " in berth("ps", "--filter", "name=term").stdout
    child = spawn(berth, "attach", "term")
    time.sleep(0.3)
    child.sendline("echo back-$((1+1))")
    child.expect("back-2")
    child.sendline("exit 7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7
    assert berth("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "term").stdout == "exited 7\n"


def test_exec_it(berth, bb):
    berth("run", "-d", "--name", "host", bb, "sleep", "60")
    child = spawn(berth, "exec", "-it", "host", "sh")
    child.expect("# ")
    child.sendline("ps -o pid,comm | grep -c sleep; exit 3")
    child.expect("1")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3


def _mounts_under(root):
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if str(root) in line.split()[1]]


def _cgroup_dirs(container_id):
    found = []
    for ctrl in os.listdir("/sys/fs/cgroup"):
        path = f"/sys/fs/cgroup/{ctrl}/berth/{container_id}"
        if os.path.isdir(path):
            found.append(path)
    return found


def _supervisor_pid(root, container_id):
    out = subprocess.run(["pgrep", "-af", "berth.container.supervisor"], capture_output=True,
                         text=True).stdout.splitlines()
    pids = [int(line.split()[0]) for line in out if str(root) in line and container_id in line]
    return pids[0] if pids else None


def test_killed_supervisor_is_noticed(berth, bb):
    cid = berth("run", "-d", bb, "sleep", "60").stdout.strip()
    pid = int(berth("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    sup = _supervisor_pid(berth.root, cid)
    assert sup and _mounts_under(berth.root) and _cgroup_dirs(cid)
    os.kill(sup, signal.SIGKILL)
    time.sleep(0.2)
    # The next command notices, records the exit and releases everything.
    assert "Exited (137)" in berth("ps", "-a").stdout
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/status").read().find("zombie") >= 0
    assert _mounts_under(berth.root) == []
    assert _cgroup_dirs(cid) == []
    berth("rm", cid)


def test_killed_container_process(berth, bb):
    cid = berth("run", "-d", bb, "sleep", "60").stdout.strip()
    pid = int(berth("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    os.kill(pid, signal.SIGKILL)
    assert berth("wait", cid).stdout == "137\n"
    assert _mounts_under(berth.root) == [] and _cgroup_dirs(cid) == []
    assert _supervisor_pid(berth.root, cid) is None
    berth("rm", cid)
