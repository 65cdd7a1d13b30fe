"""The real docker CLI (v28) driving `berth daemon` over its unix socket."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

import pexpect
import pytest

from apitest import DOCKER, require_docker_cli, wait_for

pytestmark = pytest.mark.usefixtures("docker_cli")

NONET = ("--network", "none")


@pytest.fixture
def docker_cli():
    require_docker_cli()


def test_version_info_images(api):
    out = api.docker("version", "--format", "{{json .}}").stdout
    version = json.loads(out)
    assert version["Server"]["ApiVersion"] == "1.47"
    assert version["Client"]["ApiVersion"] == "1.47"  # negotiated down through /_ping
    info = api.docker("info", "--format", "{{json .}}").stdout
    assert json.loads(info)["Images"] == 1
    images = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert images == ["busybox:latest"]


def test_run_rm_exit_codes(api):
    p = api.docker("run", "--rm", *NONET, "busybox", "echo", "hello")
    assert p.stdout == "hello\n"
    assert api.docker("run", "--rm", *NONET, "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    missing = api.docker("run", "--rm", *NONET, "busybox", "no-such-command", check=False)
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr
    assert api.docker("run", "--rm", *NONET, "busybox", "/etc/passwd", check=False).returncode == 126
    # stdin is piped through, its end closes the container's stdin
    assert api.docker("run", "--rm", "-i", *NONET, "busybox", "tr", "a-z", "A-Z", input="shout\n").stdout == "SHOUT\n"
    assert api.docker("ps", "-aq").stdout == ""  # --rm removed them all


def test_detached_ps_logs_inspect_stop_rm(api):
    cid = api.docker("run", "-d", *NONET, "--name", "ticker", "busybox", "sh", "-c",
                     "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done").stdout.strip()
    assert len(cid) == 64
    assert api.docker("ps", "--format", "{{.Names}} {{.State}}").stdout == "ticker running\n"
    follow = pexpect.spawn(DOCKER, ["logs", "-f", "ticker"], env=api.env, timeout=20)
    follow.expect(b"tick 3")
    inspect = json.loads(api.docker("inspect", "ticker").stdout)[0]
    assert inspect["Id"] == cid and inspect["State"]["Running"] is True
    assert api.docker("inspect", "-f", "{{.Config.Image}}", "ticker").stdout == "busybox\n"
    api.docker("stop", "-t", "1", "ticker")
    follow.expect(pexpect.EOF)  # logs -f ends with the container
    assert api.docker("inspect", "-f", "{{.State.Status}}", "ticker").stdout == "exited\n"
    tail = api.docker("logs", "--tail", "1", "ticker").stdout
    assert tail.startswith("tick ") and tail.count("\n") == 1
    api.docker("rm", "ticker")
    gone = api.docker("inspect", "ticker", check=False)
    assert gone.returncode == 1 and "No such object: ticker" in gone.stderr


def test_run_interactive_tty(api):
    child = pexpect.spawn(DOCKER, ["run", "-it", "--rm", *NONET, "busybox", "sh"], env=api.env, timeout=20,
                          dimensions=(33, 101))
    child.expect(b"# ")
    child.sendline(b"echo $((6*7)); stty size; tty")
    child.expect(b"42")
    child.expect(b"33 101")
    child.expect(b"/dev/pts/")
    child.sendline(b"exit 7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7


def test_exec(api):
    api.docker("run", "-d", *NONET, "--name", "box", "busybox", "sleep", "300")
    assert api.docker("exec", "box", "sh", "-c", "echo out; echo err >&2").stdout == "out\n"
    assert api.docker("exec", "box", "sh", "-c", "exit 5", check=False).returncode == 5
    assert api.docker("exec", "-i", "box", "wc", "-c", input="12345").stdout.strip() == "5"
    assert api.docker("exec", "-e", "X=y", "-w", "/tmp", "box", "sh", "-c", "echo $X $PWD").stdout == "y /tmp\n"
    assert api.docker("exec", "box", "nope", check=False).returncode == 127
    child = pexpect.spawn(DOCKER, ["exec", "-it", "box", "sh"], env=api.env, timeout=20)
    child.expect(b"# ")
    child.sendline(b"tty; exit 9")
    child.expect(b"/dev/pts/")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 9


def test_attach_and_detach(api):
    api.docker("run", "-dit", *NONET, "--name", "shell", "busybox", "sh")
    child = pexpect.spawn(DOCKER, ["attach", "shell"], env=api.env, timeout=20)
    time.sleep(0.3)
    child.sendline(b"echo attached-$((40+2))")
    child.expect(b"attached-42")
    child.sendcontrol("p")
    child.sendcontrol("q")
    child.expect(b"read escape sequence")
    child.expect(pexpect.EOF)
    assert api.docker("inspect", "-f", "{{.State.Running}}", "shell").stdout == "true\n"
    # attach again, and end the shell this time: attach exits with its code
    child = pexpect.spawn(DOCKER, ["attach", "shell"], env=api.env, timeout=20)
    time.sleep(0.3)
    child.sendline(b"exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4


def test_cp_both_ways(api, tmp_path):
    api.docker("run", "-d", *NONET, "--name", "files", "busybox", "sleep", "300")
    src = tmp_path / "hello.txt"
    src.write_text("hello from the host\n")
    api.docker("cp", src, "files:/tmp/")
    assert api.docker("exec", "files", "cat", "/tmp/hello.txt").stdout == "hello from the host\n"
    api.docker("cp", "files:/etc/passwd", tmp_path / "passwd")
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0")
    missing = api.docker("cp", "files:/no/such", tmp_path / "x", check=False)
    assert missing.returncode == 1 and "Could not find the file /no/such" in missing.stderr


def test_build_run_and_failing_step(api, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "greeting").write_text("built by berth\n")
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY greeting /greeting\nRUN echo step-output\n'
                                   'CMD ["cat", "/greeting"]\n')
    p = api.docker("build", "-t", "built:1", ctx)
    assert "step-output" in p.stdout and "Successfully tagged built:1" in p.stdout
    assert api.docker("run", "--rm", *NONET, "built:1").stdout == "built by berth\n"
    quiet = api.docker("build", "-q", ctx).stdout.strip()
    assert quiet.startswith("sha256:")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    failed = api.docker("build", ctx, check=False)
    assert failed.returncode == 3
    assert "returned a non-zero code: 3" in failed.stderr


def test_save_load_commit_history(api, tmp_path):
    api.docker("run", *NONET, "--name", "maker", "busybox", "sh", "-c", "echo made > /made")
    api.docker("commit", "-m", "a file", "maker", "made:1")
    assert api.docker("run", "--rm", *NONET, "made:1", "cat", "/made").stdout == "made\n"
    history = api.docker("history", "--format", "{{.Comment}}", "made:1").stdout.split("\n")
    assert history[0] == "a file"
    archive = tmp_path / "images.tar"
    api.docker("save", "-o", archive, "made:1", "busybox")
    image_id = api.docker("image", "inspect", "-f", "{{.Id}}", "made:1").stdout.strip()
    api.docker("rm", "maker")
    api.docker("rmi", "made:1")
    loaded = api.docker("load", "-i", archive).stdout
    assert "Loaded image: made:1" in loaded
    assert api.docker("image", "inspect", "-f", "{{.Id}}", "made:1").stdout.strip() == image_id
    bad = api.docker("load", input=b"this is not a tar archive" * 40, check=False)
    assert bad.returncode == 1


def test_publish_port_on_the_default_bridge(api):
    api.docker("run", "-d", "--name", "web", "-p", "127.0.0.1::8080", "busybox", "sh", "-c",
               "echo served > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    address = api.docker("port", "web", "8080").stdout.strip()
    assert address.startswith("127.0.0.1:")

    def fetch():
        try:
            return urllib.request.urlopen(f"http://{address}/index.html", timeout=2).read()
        except OSError:
            return None
    assert wait_for(fetch) == b"served\n"


def test_pull_and_push_with_a_local_registry(api, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
    from reg_testlib import REGISTRY_BIN, start_registry
    if not Path(REGISTRY_BIN).exists():
        pytest.skip("docker-registry (Debian's docker-registry) is not installed")
    registry = start_registry(tmp_path / "registry")
    try:
        name = f"127.0.0.1:{registry.port}/tools/busybox:v1"
        api.docker("tag", "busybox", name)
        pushed = api.docker("push", name).stdout
        assert "Pushed" in pushed and "v1: digest: sha256:" in pushed
        api.docker("rmi", name)
        pulled = api.docker("pull", name).stdout
        assert f"Status: Downloaded newer image for {name}" in pulled
        # run pulls what is missing
        api.docker("rmi", name, "busybox")
        ran = api.docker("run", "--rm", *NONET, name, "echo", "from the registry")
        assert ran.stdout == "from the registry\n" and "Unable to find image" in ran.stderr
        missing = api.docker("pull", f"127.0.0.1:{registry.port}/no/such:v1", check=False)
        assert missing.returncode == 1 and "not found" in missing.stderr
    finally:
        registry.stop()
