"""The tutorial end to end, as scripts/main.sh and the README run it: a base
image made here, the tutorial's Dockerfile built from examples/tutorial,
the instance run with its port published, "Hello World!" fetched through
it, then attach with a terminal, detach with Ctrl-P Ctrl-Q, and stop.

Slow (a minute or two): the base image's root filesystem comes from
berth's cache (/var/cache/berth/mkimage, debootstrapped once), but the
build installs the tutorial's packages from Debian and its requirements
from PyPI every time, into a fresh state root.
"""

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pexpect
import pytest
from tutlib import fetch, free_port  # noqa: E402
from berthtest import berth_argv

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tutorial"
NAME = "my_application_instance"


def berth_in(root: Path, cwd: Path, *args, timeout: float) -> subprocess.CompletedProcess:
    """The berth CLI run from `cwd` (the README's `cd examples/tutorial`)."""
    p = subprocess.run([*berth_argv(root), *map(str, args)],
                       cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert p.returncode == 0, f"berth {' '.join(map(str, args))} exited {p.returncode}:\n" \
                              f"{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return p


@pytest.fixture
def instance(berth):
    """The container's name; whatever the test left is removed afterwards."""
    yield NAME
    berth("rm", "-f", NAME, check=False)
    berth("network", "prune", "-f", check=False)


@pytest.mark.slow
def test_tutorial_workflow(berth, root, instance):
    berth("mkimage", "-q", "debian:bookworm", timeout=600)
    build = berth_in(root, EXAMPLE, "build", "--host-ca", "-t", "my_application_img", ".", timeout=900)
    assert "Successfully tagged my_application_img:latest" in build.stdout

    config = berth("inspect", "-f", "{{json .Config.Cmd}} {{.Config.WorkingDir}} {{json .Config.ExposedPorts}}",
                   "my_application_img").stdout
    assert config.split() == ['["python","server.py"]', "/my_application", '{"80/tcp":{}}']

    port = free_port()
    berth("run", "-d", "--name", instance, "-p", f"127.0.0.1:{port}:80", "-i", "-t", "my_application_img")
    assert fetch(f"http://127.0.0.1:{port}/") == "Hello World!"
    assert berth("port", instance).stdout.strip() == f"80/tcp -> 127.0.0.1:{port}"

    # Attach to its terminal: what is typed comes back through the
    # container's tty (its line discipline echoes), then Ctrl-P Ctrl-Q
    # detaches and leaves the application running.
    child = pexpect.spawn(berth_argv()[0], [*berth_argv(root)[1:], "attach", instance],
                          timeout=20, encoding="utf-8", dimensions=(24, 80))
    try:
        time.sleep(0.5)
        child.send("attached-42")
        child.expect("attached-42")
        child.send("\x10\x11")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert berth("inspect", "-f", "{{.State.Status}}", instance).stdout == "running\n"
    assert fetch(f"http://127.0.0.1:{port}/") == "Hello World!"

    # CherryPy stops on SIGTERM: no waiting out stop's 10 s for a SIGKILL.
    started = time.monotonic()
    berth("stop", instance)
    assert time.monotonic() - started < 8
    assert berth("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", instance).stdout == "exited 0\n"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3)
    berth("rm", instance)
    assert berth("ps", "-aq").stdout == ""
