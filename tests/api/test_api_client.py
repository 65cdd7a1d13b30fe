"""berth.api.client.RemoteEngine: the engine's Python API, served by a daemon."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from apitest import wait_for

from berth import errors
from berth.api.client import RemoteEngine
from berth.container import protocol as proto
from berthtest import berth_argv


@pytest.fixture
def remote(api):
    return RemoteEngine(api.host)


def test_containers_through_the_daemon(remote):
    assert remote.system.version()["ApiVersion"] == "1.47"
    assert [s.repo_tags for s in remote.images.list()] == [["busybox:latest"]]
    c = remote.containers.create({"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"],
                                  "AttachStdout": True, "AttachStderr": True}, {"NetworkMode": "none"}, "job")
    assert c.name == "job" and c.config["Cmd"][0] == "sh"
    remote.containers.start(c.id, attach_first=True)
    conn = remote.containers.attach(c.id, stdin=False, stdout=True, stderr=True)
    frames = list(conn.frames())
    conn.close()
    assert (proto.STDOUT, b"out\n") in frames and (proto.STDERR, b"err\n") in frames
    assert frames[-1] == (proto.EXIT, b"3")
    entries = list(remote.containers.logs("job"))
    assert sorted((e.stream, e.data) for e in entries) == [("stderr", b"err\n"), ("stdout", b"out\n")]
    assert all(e.time_text.endswith("Z") for e in entries)
    assert [s.names for s in remote.containers.list(all=True)] == [["/job"]]
    remote.containers.remove("job")
    with pytest.raises(errors.NotFound, match="No such container: job"):
        remote.containers.get("job")


def test_start_failures_and_errors(remote):
    c = remote.containers.create({"Image": "busybox", "Cmd": ["no-such-command"]}, {"NetworkMode": "none"})
    remote.containers.start(c.id, attach_first=True)
    conn = remote.containers.attach(c.id, stdin=False, stdout=True, stderr=True)
    kind, payload = next(conn.frames())
    assert kind == proto.FAILED and b"CommandNotFound" in payload
    conn.close()
    with pytest.raises(errors.CommandNotFound):
        remote.containers.start(c.id)
    remote.containers.remove(c.id)
    with pytest.raises(errors.NotFound, match="No such image"):
        remote.containers.create({"Image": "nope"})
    running = remote.containers.create({"Image": "busybox", "Cmd": ["sleep", "300"]}, {"NetworkMode": "none"})
    remote.containers.start(running.id)
    with pytest.raises(errors.Conflict):
        remote.containers.remove(running.id)
    assert remote.containers.stop(running.id, timeout=0).status.value == "exited"
    remote.containers.remove(running.id)


def test_volumes_and_networks(remote):
    assert remote.volumes.create("data")["Name"] == "data"
    assert [v["Name"] for v in remote.volumes.list()] == ["data"]
    remote.volumes.remove("data")
    assert remote.volumes.list() == []
    names = {n["Name"] for n in remote.networks.list()}
    assert {"bridge", "host", "none"} <= names


# -- the CLI through -H ---------------------------------------------------------------------------
# `berth -H unix://...` runs the same command code as `berth`, with RemoteEngine in place of Engine.

NONET = ("--network", "none")


@pytest.fixture
def hb(api, tmp_path):
    """`berth -H <the test's daemon>`, with a client config of its own (logins)."""
    from berthtest import Berth
    config = tmp_path / "client-config"
    berth = Berth(api.root)

    def run(*args, env=None, **kw):
        return berth("-H", api.host, *args, env={"DOCKER_CONFIG": str(config), **(env or {})}, **kw)
    run.host = api.host
    run.env = {**os.environ, "DOCKER_CONFIG": str(config)}
    return run


@pytest.fixture
def box(hb):
    """A running busybox container named box."""
    hb("run", "-d", *NONET, "--name", "box", "busybox", "sleep", "300")
    return "box"


def test_exec_through_the_daemon(hb, box):
    p = hb("exec", box, "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (7, "out\n", "err\n")
    p = hb("exec", "-e", "GREETING=hi", "-e", "EMPTY", "-u", "nobody", "-w", "/tmp", box,
           "sh", "-c", 'echo "$GREETING/${EMPTY-unset}"; id -u; pwd')
    assert p.stdout == "hi/\n65534\n/tmp\n"
    assert hb("exec", "-i", box, "tr", "a-z", "A-Z", input="shout\n").stdout == "SHOUT\n"
    assert hb("exec", box, "cat", input="not attached\n").stdout == ""        # no -i: no stdin
    assert hb("exec", "-d", box, "sh", "-c", "echo detached > /tmp/d").stdout == ""
    wait_for(lambda: hb("exec", box, "cat", "/tmp/d", check=False).stdout == "detached\n")
    missing = hb("exec", box, "no-such-command", check=False)
    assert missing.returncode == 127 and "executable file not found" in missing.stdout + missing.stderr
    hb("stop", "-t", "0", box)
    stopped = hb("exec", box, "true", check=False)
    assert stopped.returncode == 1 and stopped.stderr.startswith("Error: ") and "is not running" in stopped.stderr
    assert hb("exec", "nope", "true", check=False).stderr == "Error: No such container: nope\n"


def test_exec_with_a_terminal(hb, box):
    import pexpect
    cmd = [*berth_argv(), "-H", hb.host]
    p = pexpect.spawn(cmd[0], [*cmd[1:], "exec", "-t", box, "sh", "-c", "tty; stty size; exit 3"],
                      env=hb.env, dimensions=(33, 101), timeout=30)
    p.expect(pexpect.EOF)
    p.close()
    assert b"/dev/pts/" in p.before and b"33 101" in p.before
    assert p.exitstatus == 3
    p = pexpect.spawn(cmd[0], [*cmd[1:], "exec", "-it", box, "sh"], env=hb.env, timeout=30)
    p.expect(b"# ")
    p.sendline(b"echo $((6*7))")
    p.expect(b"42")
    p.sendline(b"exit 5")
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 5


def test_cp_both_ways(hb, box, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("some notes\n")
    src.chmod(0o640)
    hb("cp", src, f"{box}:/tmp/")
    assert hb("exec", box, "stat", "-c", "%a %s", "/tmp/notes.txt").stdout == "640 11\n"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (tree / "sub" / "run.sh").chmod(0o755)
    hb("cp", tree, f"{box}:/root/tree")
    assert hb("exec", box, "/root/tree/sub/run.sh").stdout == "ran\n"
    hb("exec", box, "sh", "-c", "mkdir -p /data && echo made inside > /data/inside && chmod 600 /data/inside")
    back = tmp_path / "back"
    hb("cp", f"{box}:/data", back)
    assert (back / "inside").read_text() == "made inside\n"
    assert (back / "inside").stat().st_mode & 0o777 == 0o600
    hb("cp", f"{box}:/tmp/notes.txt", tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_text() == "some notes\n"
    assert (tmp_path / "copy.txt").stat().st_mode & 0o777 == 0o640
    # `-` is a tar on stdout, and a tar from stdin
    out = hb("cp", f"{box}:/tmp/notes.txt", "-", binary=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.getnames() == ["notes.txt"] and tar.extractfile("notes.txt").read() == b"some notes\n"
    (tmp_path / "piped").mkdir()
    (tmp_path / "piped" / "piped.txt").write_text("piped\n")
    (tmp_path / "piped" / "piped.txt").chmod(0o604)
    hb("cp", "-", f"{box}:/root", input=_tar_of(tmp_path / "piped"))
    assert hb("exec", box, "sh", "-c", "stat -c %a /root/piped.txt; cat /root/piped.txt").stdout == "604\npiped\n"
    missing = hb("cp", f"{box}:/no/such", tmp_path, check=False)
    assert missing.returncode == 1
    assert missing.stderr == f"Error response from daemon: Could not find the file /no/such in container {box}\n"


def test_top_diff_export_stats(hb, box):
    top = hb("top", box).stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and "sleep 300" in top[1]
    assert "COMMAND" in hb("top", box, "aux").stdout.splitlines()[0]
    hb("exec", box, "sh", "-c", "echo x > /tmp/new && rm /bin/vi")
    diff = hb("diff", box).stdout.splitlines()
    assert "A /tmp/new" in diff and "D /bin/vi" in diff and "C /tmp" in diff
    exported = hb("export", box, binary=True).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = tar.getnames()
    assert "tmp/new" in names and "bin/busybox" in names and "bin/vi" not in names
    stats = hb("stats", "--no-stream").stdout.splitlines()
    assert stats[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and stats[1].split()[1] == box
    row = hb("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", box).stdout.split()
    assert row[:2] == [box, "1"] and row[2].endswith("B")
    assert hb("stats", "--no-stream", "nope", check=False).stderr.startswith("Error response from daemon: ")


def test_commit_rename_pause_port(hb, box):
    hb("exec", box, "sh", "-c", "echo committed > /greeting")
    image_id = hb("commit", "-c", 'CMD ["cat", "/greeting"]', "-m", "a message", box, "snap:v1").stdout.strip()
    assert image_id.startswith("sha256:")
    assert hb("run", "--rm", *NONET, "snap:v1").stdout == "committed\n"
    assert hb("image", "inspect", "-f", "{{.Comment}} {{.Id}}", "snap:v1").stdout == f"a message {image_id}\n"
    hb("rename", box, "renamed")
    hb("pause", "renamed")
    assert hb("ps", "--format", "{{.Names}} {{.State}}").stdout == "renamed paused\n"
    hb("unpause", "renamed")
    hb("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sleep", "300")
    port = hb("port", "web").stdout
    assert port.startswith("80/tcp -> 127.0.0.1:")
    assert hb("port", "web", "80").stdout == port.split(" -> ")[1]
    assert hb("port", "web", "81", check=False).stderr == "Error: No public port '81/tcp' published for web\n"
    hb("rm", "-f", "web", "renamed")
    hb("run", *NONET, "--name", "done", "busybox", "true")
    assert hb("container", "prune", "-f").stdout.startswith("Deleted Containers:\n")
    assert hb("ps", "-aq").stdout == ""


def test_build(hb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from the context\n")
    (ctx / "ignored.txt").write_text("never sent\n")
    (ctx / ".dockerignore").write_text("ignored.txt\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nARG WHO=nobody\nCOPY . /app/\n"
                                    "RUN echo \"built for $WHO\" > /app/built\n"
                                    'CMD ["sh", "-c", "cat /app/hello.txt /app/built; ls /app"]\n')
    p = hb("build", "-t", "app:1", "--build-arg", "WHO=tests", "--label", "kind=test", ctx)
    assert p.stdout.startswith("Sending build context to Docker daemon")
    assert "Step 1/6 : FROM busybox" in p.stdout  # --label adds a LABEL step and "Successfully tagged app:1" in p.stdout
    image_id = hb("image", "inspect", "-f", "{{.Id}}", "app:1").stdout.strip()
    assert f"Successfully built {image_id[7:19]}" in p.stdout
    assert hb("run", "--rm", *NONET, "app:1").stdout.splitlines() == [
        "hello from the context", "built for tests", "Dockerfile", "built", "hello.txt"]
    assert hb("image", "inspect", "-f", "{{.Config.Labels.kind}}", "app:1").stdout == "test\n"
    # -q: the ID alone (the same image, from the cache); a Dockerfile from outside the context, and from stdin
    assert hb("build", "-q", "--build-arg", "WHO=tests", "--label", "kind=test", ctx).stdout == image_id + "\n"
    outside = tmp_path / "other.Dockerfile"
    outside.write_text('FROM busybox\nCMD ["echo", "outside"]\n')
    hb("build", "-q", "-t", "app:outside", "-f", outside, ctx)
    assert hb("run", "--rm", *NONET, "app:outside").stdout == "outside\n"
    hb("build", "-t", "app:stdin", "-f", "-", ctx, input='FROM busybox\nCMD ["echo", "stdin"]\n')
    assert hb("run", "--rm", *NONET, "app:stdin").stdout == "stdin\n"
    (tmp_path / "tarred").mkdir()
    (tmp_path / "tarred" / "Dockerfile").write_text('FROM app:1\nCMD ["cat", "/app/built"]\n')
    hb("build", "-t", "app:tar", "-", input=_tar_of(tmp_path / "tarred"))
    assert hb("run", "--rm", *NONET, "app:tar").stdout == "built for tests\n"
    # a failing step: its output, the error, the RUN's exit code
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo about to fail; exit 4\n")
    failed = hb("build", ctx, check=False)
    assert failed.returncode == 4 and "about to fail" in failed.stdout
    assert failed.stderr == "The command '/bin/sh -c echo about to fail; exit 4' returned a non-zero code: 4\n"
    assert hb("build", tmp_path / "nowhere", check=False).stderr.startswith("unable to prepare context")
    assert "not supported with -H" in hb("build", "--ca-bundle", outside, ctx, check=False).stderr


def _tar_of(directory: Path) -> bytes:
    """The directory's content as a tar."""
    return Path(shutil.make_archive(str(directory), "tar", root_dir=directory)).read_bytes()


def test_save_load_import_prune_df(hb, busybox_tar, tmp_path):
    hb("tag", "busybox", "copy:1")
    saved = tmp_path / "saved.tar"
    hb("save", "-o", saved, "copy:1")
    with tarfile.open(saved) as tar:
        assert "manifest.json" in tar.getnames()
    image_id = hb("image", "inspect", "-f", "{{.Id}}", "copy:1").stdout.strip()
    hb("rmi", "copy:1", "busybox")
    assert hb("images", "-q").stdout == ""
    assert hb("load", "-i", saved).stdout == "Loaded image: copy:1\n"
    assert hb("image", "inspect", "-f", "{{.Id}}", "copy:1").stdout.strip() == image_id
    piped = hb("save", "copy:1", binary=True).stdout
    hb("rmi", "copy:1")
    assert hb("load", input=piped).stdout == b"Loaded image: copy:1\n"
    # import: a file, and stdin
    imported = hb("import", "-c", 'CMD ["echo", "imported"]', "-m", "from a file", busybox_tar, "imp:1").stdout
    assert imported.strip() == hb("image", "inspect", "-f", "{{.Id}}", "imp:1").stdout.strip()
    assert hb("run", "--rm", *NONET, "imp:1").stdout == "imported\n"
    assert hb("history", "--format", "{{.Comment}}", "imp:1").stdout == "from a file\n"
    hb("import", "-", "imp:2", input=Path(busybox_tar).read_bytes())
    assert hb("images", "--format", "{{.Repository}}:{{.Tag}}", "imp").stdout.split() == ["imp:2", "imp:1"]
    assert hb("import", tmp_path / "nope.tar", check=False).stderr == \
        f"Error: open {tmp_path / 'nope.tar'}: no such file or directory\n"
    hb("create", *NONET, "--name", "keep", "copy:1")
    df = hb("system", "df").stdout.splitlines()
    assert df[0].split()[0] == "TYPE" and df[1].split()[:3] == ["Images", "3", "1"]
    hb("rmi", "imp:2")
    pruned = hb("image", "prune", "-a", "-f").stdout
    assert "untagged: imp:1" in pruned and "Total reclaimed space:" in pruned
    assert hb("images", "-q").stdout.split() == [image_id[7:19]]
    insert = hb("insert", "copy:1", busybox_tar, "/x", check=False)
    assert insert.returncode == 1 and "insert is not supported with -H" in insert.stderr
    assert "system check is not supported with -H" in hb("system", "check", check=False).stderr


def test_login_push_pull(hb, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
    from reg_testlib import REGISTRY_BIN, start_registry
    if not shutil.which(REGISTRY_BIN):
        pytest.skip("docker-registry (Debian's docker-registry) is not installed")
    registry = start_registry(tmp_path / "registry", htpasswd={"alice": "wonderland"})
    try:
        server = f"127.0.0.1:{registry.port}"
        name = f"{server}/tools/busybox:v1"
        hb("tag", "busybox", name)
        assert hb("push", name, check=False).returncode == 1       # no login yet
        wrong = hb("login", "-u", "alice", "--password-stdin", server, input="wrong\n", check=False)
        assert wrong.returncode == 1 and "401" in wrong.stderr
        assert hb("login", "-u", "alice", "--password-stdin", server, input="wonderland\n").stdout == \
            "Login Succeeded\n"
        config = json.loads((tmp_path / "client-config" / "config.json").read_text())
        assert server in config["auths"]            # kept by the client, as the docker CLI keeps it
        pushed = hb("push", name).stdout
        assert "Pushed" in pushed and "v1: digest: sha256:" in pushed
        assert hb("push", "-q", name).stdout == name + "\n"
        hb("rmi", name)
        pulled = hb("pull", name).stdout
        assert "Downloaded newer image" in pulled and pulled.endswith(name + "\n")
        assert f"{server}/tools/busybox" in hb("search", f"{server}/tools").stdout
        assert hb("logout", server).stdout == f"Removing login credentials for {server}\n"
        assert server not in json.loads((tmp_path / "client-config" / "config.json").read_text())["auths"]
        hb("rmi", name)
        assert hb("pull", name, check=False).returncode == 1        # the daemon kept no login either
    finally:
        registry.stop()
