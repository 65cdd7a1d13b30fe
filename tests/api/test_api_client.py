"""berth.api.client.RemoteEngine: the engine's Python API, served by a daemon."""

from __future__ import annotations

import pytest

from berth import errors
from berth.api.client import RemoteEngine
from berth.container import protocol as proto


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
