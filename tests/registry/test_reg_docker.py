"""Interoperability with the real Docker through a real registry, both ways."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.docker


def test_berth_pushes_docker_pulls_and_runs(rberth, docker, registry, bb_image):
    name = f"{registry.host}/interop/from-berth:1"
    image_id = bb_image(name)
    pushed = rberth("push", name).stdout.splitlines()[-1]
    digest = pushed.split("digest: ")[1].split()[0]
    try:
        docker("pull", name)
        info = json.loads(docker("inspect", name).stdout)[0]
        assert info["Id"] == image_id
        assert info["RepoDigests"] == [f"{registry.host}/interop/from-berth@{digest}"]
        assert docker("run", "--rm", "--network", "none", name).stdout == "from berth\n"
        # Docker pushing it on finds every blob present.
        docker("tag", name, f"{registry.host}/interop/from-berth:2")
        out = docker("push", f"{registry.host}/interop/from-berth:2").stdout
        assert "Layer already exists" in out
    finally:
        docker("rmi", "-f", name, f"{registry.host}/interop/from-berth:2", check=False)


def test_docker_pushes_berth_pulls_and_runs(rberth, other, docker, registry, busybox_tar):
    name = f"{registry.host}/interop/from-docker:1"
    image_id = docker("import", "-c", 'CMD ["echo", "from docker"]', str(busybox_tar), name).stdout.strip()
    try:
        out = docker("push", name).stdout
        digest = out.strip().splitlines()[-1].split("digest: ")[1].split()[0]
        repo_digests = json.loads(docker("inspect", "-f", "{{json .RepoDigests}}", name).stdout)
    finally:
        docker("rmi", "-f", name, check=False)
    pulled = rberth("pull", name).stdout
    assert f"Digest: {digest}" in pulled
    info = json.loads(rberth("inspect", name).stdout)[0]
    assert info["Id"] == image_id
    assert info["RepoDigests"] == repo_digests
    assert rberth("run", "--rm", name).stdout == "from docker\n"
    assert rberth("run", "--rm", name, "cat", "/etc/group").stdout.startswith("root:")
    # By digest, into a fresh store: the same image.
    other("pull", f"{registry.host}/interop/from-docker@{digest}")
    assert other("images", "-q", "--no-trunc").stdout.strip() == image_id
