"""The daemon's fork server (berth.container.forkserver): supervisors are
forked by it, a dead one is replaced, and it lives only as long as its daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from apitest import DOCKER, require_docker_cli, wait_for

NONET = ("--network", "none")


@pytest.fixture(autouse=True)
def docker_cli():
    require_docker_cli()


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def fork_servers(daemon_pid: int) -> list[int]:
    """PIDs of the fork servers the daemon runs (its children with that command line)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"berth.container.forkserver" in argv and _ppid(int(name)) == daemon_pid and _alive(int(name)):
            found.append(int(name))
    return found


def the_fork_server(api) -> int:
    return wait_for(lambda: (lambda s: s[0] if len(s) == 1 else None)(fork_servers(api.proc.pid)))


def test_supervisors_are_forked_by_the_fork_server(api):
    server = the_fork_server(api)
    api.docker("run", "--rm", *NONET, "busybox", "true")     # the first start waits for its imports
    # A stopped fork server stops every start: they all go through it, and no
    # supervisor starts as a fresh interpreter meanwhile.
    os.kill(server, signal.SIGSTOP)
    try:
        run = subprocess.Popen([DOCKER, "run", "-d", *NONET, "--name", "forked", "busybox", "sleep", "300"],
                               env=api.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: api.docker("ps", "-a", "-q", "--filter", "name=forked").stdout.strip())
        time.sleep(0.5)
        assert run.poll() is None
        assert api.docker("inspect", "-f", "{{.State.Status}}", "forked").stdout == "created\n"
    finally:
        os.kill(server, signal.SIGCONT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    pid = int(api.docker("inspect", "-f", "{{.State.Pid}}", "forked").stdout)
    supervisor = _ppid(pid)     # the supervisor is its container's subreaper
    assert supervisor and supervisor not in (server, api.proc.pid)
    assert _ppid(supervisor) not in (server, api.proc.pid)      # detached, in a session of its own
    assert os.getsid(supervisor) != os.getsid(api.proc.pid)
    api.docker("rm", "-f", "forked")


def test_a_killed_fork_server_is_replaced(api):
    server = the_fork_server(api)
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: not _alive(server))
    assert api.docker("run", "--rm", *NONET, "busybox", "echo", "hello").stdout == "hello\n"
    assert api.docker("run", "--rm", *NONET, "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    missing = api.docker("run", "--rm", *NONET, "busybox", "no-such-command", check=False)
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    replacement = the_fork_server(api)
    assert replacement != server
    assert "starting another" in api.log.read_text()
    assert api.docker("ps", "-aq").stdout == ""


def test_the_fork_server_dies_with_its_daemon(api):
    server = the_fork_server(api)
    api.docker("run", "-d", *NONET, "--name", "outlives", "busybox", "sleep", "300")
    api.proc.kill()     # no shutdown of its own: the server notices the daemon is gone
    api.proc.wait()
    wait_for(lambda: not _alive(server))
    api.start()
    assert api.docker("ps", "--format", "{{.Names}}").stdout == "outlives\n"
    assert api.docker("exec", "outlives", "echo", "still").stdout == "still\n"
    assert len(fork_servers(api.proc.pid)) == 1
    api.docker("rm", "-f", "outlives")
