"""docker-py (the Python SDK, as docker-compose uses it) against `berth daemon`."""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
import time
from pathlib import Path

import pytest

docker = pytest.importorskip("docker")


def _context(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_containers_run_logs_exec_attach(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.47"
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], network_mode="none",
                                remove=True)
    assert out == b"out\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 2"], network_mode="none", remove=True)
    assert failed.value.exit_status == 2 and b"bad" in failed.value.stderr
    c = client.containers.run("busybox", ["sh", "-c", "while true; do echo tick; sleep 0.2; done"],
                              detach=True, network_mode="none", name="ticker")
    try:
        attached = c.attach(stdout=True, stream=True, logs=False)
        assert next(iter(attached)) == b"tick\n"
        time.sleep(0.5)
        assert c.logs().startswith(b"tick\ntick\n")
        result = c.exec_run(["sh", "-c", "echo exec; exit 3"])
        assert (result.exit_code, result.output) == (3, b"exec\n")
        result = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert result.output == (b"o\n", b"e\n")
        assert c.exec_run("tty", tty=True).output.startswith(b"/dev/pts/")
        c.reload()
        assert c.status == "running" and c.name == "ticker"
        assert [x.name for x in client.containers.list(filters={"name": "ticker"})] == ["ticker"]
    finally:
        c.remove(force=True)
    assert client.containers.list(all=True) == []


def test_images_build_pull_push(client, tmp_path):
    image, logs = client.images.build(fileobj=_context({"Dockerfile": b"FROM busybox\nRUN echo hi > /hi\n"}),
                                      custom_context=True, tag="pybuilt:1", rm=True)
    assert image.tags == ["pybuilt:1"]
    assert any("Successfully built" in line.get("stream", "") for line in logs)
    assert client.containers.run("pybuilt:1", ["cat", "/hi"], network_mode="none", remove=True) == b"hi\n"
    with pytest.raises(docker.errors.BuildError) as failed:
        client.images.build(fileobj=_context({"Dockerfile": b"FROM busybox\nRUN exit 7\n"}), custom_context=True)
    assert "returned a non-zero code: 7" in str(failed.value)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("no-such-image")

    sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
    from reg_testlib import REGISTRY_BIN, start_registry
    if not Path(REGISTRY_BIN).exists():
        pytest.skip("docker-registry (Debian's docker-registry) is not installed")
    registry = start_registry(tmp_path / "registry")
    try:
        repo = f"127.0.0.1:{registry.port}/py/built"
        image.tag(repo, "v2")
        pushed = list(client.images.push(repo, tag="v2", stream=True, decode=True))
        assert any("aux" in line and line["aux"]["Tag"] == "v2" for line in pushed), pushed
        client.images.remove(f"{repo}:v2")
        pulled = client.images.pull(repo, tag="v2")
        assert pulled.id == image.id
    finally:
        registry.stop()


def test_networks_and_volumes(client):
    net = client.networks.create("pynet", labels={"purpose": "test"})
    try:
        assert net.name == "pynet"
        assert "pynet" in [n.name for n in client.networks.list()]
        assert client.networks.get("pynet").attrs["Labels"] == {"purpose": "test"}
        c = client.containers.run("busybox", ["sleep", "300"], detach=True, network="pynet", name="member")
        try:
            net.reload()
            assert [x.name for x in net.containers] == ["member"]
        finally:
            c.remove(force=True)
    finally:
        net.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("pynet")

    vol = client.volumes.create("pydata", labels={"k": "v"})
    assert vol.attrs["Labels"] == {"k": "v"}
    out = client.containers.run("busybox", ["sh", "-c", "echo kept > /data/f; cat /data/f"], network_mode="none",
                                volumes={"pydata": {"bind": "/data", "mode": "rw"}}, remove=True)
    assert out == b"kept\n"
    assert client.containers.run("busybox", ["cat", "/data/f"], network_mode="none", remove=True,
                                 volumes=["pydata:/data:ro"]) == b"kept\n"
    assert [v.name for v in client.volumes.list()] == ["pydata"]
    vol.remove()
    assert client.volumes.list() == []


def test_login_checks_credentials_with_the_registry(client, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
    from reg_testlib import REGISTRY_BIN, start_registry
    if not Path(REGISTRY_BIN).exists() or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry and htpasswd (apache2-utils) are needed")
    registry = start_registry(tmp_path / "registry", htpasswd={"alice": "s3cret"})
    try:
        answer = client.login("alice", "s3cret", registry=registry.host)
        assert answer["Status"] == "Login Succeeded"
        with pytest.raises(docker.errors.APIError) as refused:
            client.login("alice", "wrong", registry=registry.host, reauth=True)
        assert refused.value.status_code == 401
    finally:
        registry.stop()
