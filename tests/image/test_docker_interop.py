"""Images travel both ways between berth and the real Docker."""

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.docker


def test_berth_save_runs_under_docker(berth, docker, busybox_tar, tmp_path):
    image_id = berth("import", "-c", 'CMD ["echo", "from berth"]', busybox_tar,
                     "berthtest/bb:1").stdout.strip()
    archive = tmp_path / "out.tar"
    berth("save", "-o", archive, "berthtest/bb:1")
    try:
        assert "Loaded image: berthtest/bb:1" in docker("load", "-i", archive).stdout
        assert docker("inspect", "-f", "{{.Id}}", "berthtest/bb:1").stdout.strip() == image_id
        run = docker("run", "--rm", "--network", "none", "berthtest/bb:1")
        assert run.stdout == "from berth\n"
        assert docker("run", "--rm", "--network", "none", "berthtest/bb:1", "cat", "/etc/passwd").stdout.startswith("root:")
    finally:
        docker("rmi", "-f", "berthtest/bb:1", check=False)


def test_docker_save_loads_with_same_id(berth, docker, busybox_tar, tmp_path):
    image_id = docker("import", "-c", "ENV FOO=bar", str(busybox_tar), "berthtest/from-docker:2").stdout.strip()
    archive = tmp_path / "docker.tar"
    try:
        docker("save", "-o", archive, "berthtest/from-docker:2")
    finally:
        docker("rmi", "-f", "berthtest/from-docker:2", check=False)
    assert berth("load", "-i", archive).stdout == "Loaded image: berthtest/from-docker:2\n"
    listed = berth("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert listed == f"berthtest/from-docker:2 {image_id}\n"
    env = json.loads(berth("inspect", "-f", "{{json .Config.Env}}", "berthtest/from-docker:2").stdout)
    assert "FOO=bar" in env
    assert berth("system", "check").stdout.strip() == "store OK"


@pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed")
def test_oci_layout_archive_loads(berth, busybox_tar, tmp_path, other_berth):
    """An OCI-layout tarball made by another tool (skopeo) loads, keeping its manifest."""
    image_id = berth("import", busybox_tar, "bb:oci").stdout.strip()
    berth("save", "-o", tmp_path / "d.tar", "bb:oci")
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{tmp_path / 'd.tar'}",
                    f"oci-archive:{tmp_path / 'o.tar'}:example.com/bb:oci"], check=True)
    other = other_berth("other")
    assert other("load", "-i", tmp_path / "o.tar").stdout == "Loaded image: example.com/bb:oci\n"
    # skopeo rewrites the config in OCI form (so the ID changes); the layers stay.
    layers = "{{json .RootFS.Layers}}"
    assert other("inspect", "-f", layers, "example.com/bb:oci").stdout == berth("inspect", "-f", layers, image_id).stdout
