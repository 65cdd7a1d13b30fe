"""The image commands through the real CLI, against one private state root."""

import json
import tarfile

import pytest


def import_busybox(berth, busybox_tar, name="bb:1", *extra):
    out = berth("import", *extra, str(busybox_tar), name).stdout.strip()
    assert out.startswith("sha256:") and len(out) == 71
    return out


def test_import_lists_and_inspects(berth, busybox_tar):
    image_id = import_busybox(berth, busybox_tar, "bb:1", "-c", 'CMD ["sh"]', "-c", "ENV A=b",
                              "-c", "EXPOSE 80", "-c", "WORKDIR /srv", "-c", "USER nobody",
                              "-c", "LABEL x=y", "-c", "VOLUME /data", "-c", 'ENTRYPOINT ["/bin/sh", "-c"]',
                              "-m", "hello")
    lines = berth("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["bb", "1", image_id[7:19]]
    assert lines[1].endswith("MB")
    info = json.loads(berth("inspect", "bb:1").stdout)[0]
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["bb:1"]
    assert info["Comment"] == "hello"
    cfg = info["Config"]
    assert cfg["Cmd"] == ["sh"] and cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["Env"] == ["A=b"] and cfg["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["WorkingDir"] == "/srv" and cfg["User"] == "nobody"
    assert cfg["Labels"] == {"x": "y"} and cfg["Volumes"] == {"/data": {}}
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 1
    assert info["Size"] > 1_000_000
    assert berth("inspect", "-f", "{{.Id}}", image_id[7:15]).stdout.strip() == image_id
    assert berth("inspect", "-f", "{{json .Config.Cmd}}", "bb:1").stdout.strip() == '["sh"]'
    assert berth("image", "inspect", "--format", "{{.Config.WorkingDir}}", "bb:1").stdout == "/srv\n"


def test_import_from_stdin_and_default_comment(berth, busybox_tar):
    image_id = berth("import", "-", input=busybox_tar.read_bytes()).stdout.decode().strip()
    hist = berth("history", image_id).stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"]
    assert hist[1].endswith("Imported from -")
    # Untagged images show as <none>.
    assert berth("images").stdout.splitlines()[1].split()[:2] == ["<none>", "<none>"]
    assert berth("images", "-f", "dangling=true", "-q").stdout.strip() == image_id[7:19]


def test_tag_rmi_semantics(berth, busybox_tar):
    image_id = import_busybox(berth, busybox_tar, "bb:1")
    berth("tag", "bb:1", "bb:2")
    berth("tag", image_id[7:19], "other/repo")
    tags = json.loads(berth("inspect", "bb:2").stdout)[0]["RepoTags"]
    assert sorted(tags) == ["bb:1", "bb:2", "other/repo:latest"]
    # By name: only untag while other names remain.
    assert berth("rmi", "bb:2").stdout == "Untagged: bb:2\n"
    # By ID with names in two repositories: needs -f.
    p = berth("rmi", image_id[7:19], check=False)
    assert p.returncode == 1
    assert "referenced in multiple repositories" in p.stderr and len(p.stderr.splitlines()) == 1
    out = berth("rmi", "-f", image_id[7:19]).stdout.splitlines()
    assert "Untagged: bb:1" in out and "Untagged: other/repo:latest" in out
    assert f"Deleted: {image_id}" in out
    assert berth("images", "-q").stdout == ""
    # Nothing is left in the blob store.
    assert list((berth.root / "blobs" / "sha256").iterdir()) == []


def test_missing_image_errors(berth):
    p = berth("rmi", "nonexist", check=False)
    assert p.returncode == 1 and p.stderr == "Error: No such image: nonexist:latest\n"
    p = berth("inspect", "nope", check=False)
    assert p.returncode == 1 and p.stdout == "[]\n" and "No such object: nope" in p.stderr
    p = berth("tag", "nope", "x", check=False)
    assert p.returncode == 1 and "No such image: nope:latest" in p.stderr
    p = berth("images", "--bogus", check=False)
    assert p.returncode == 125 and "unknown flag: --bogus" in p.stderr


def test_save_load_roundtrip_between_roots(berth, busybox_tar, tmp_path, other_berth):
    image_id = import_busybox(berth, busybox_tar, "bb:1")
    berth("tag", "bb:1", "bb:2")
    archive = tmp_path / "bb.tar"
    berth("save", "-o", archive, "bb")
    names = tarfile.open(archive).getnames()
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    manifest = json.loads(tarfile.open(archive).extractfile("manifest.json").read())
    assert sorted(manifest[0]["RepoTags"]) == ["bb:1", "bb:2"]
    other = other_berth("other-root")
    out = other("load", "-i", archive).stdout.splitlines()
    assert sorted(out) == ["Loaded image: bb:1", "Loaded image: bb:2"]
    assert other("inspect", "-f", "{{.Id}}", "bb:2").stdout.strip() == image_id
    # Through a pipe, by ID: untagged.
    data = berth("save", image_id, binary=True).stdout
    third = other_berth("third-root")
    assert third("load", input=data).stdout == f"Loaded image ID: {image_id}\n".encode()


def test_insert_adds_a_layer(berth, busybox_tar, tmp_path):
    import_busybox(berth, busybox_tar, "bb:1")
    f = tmp_path / "hello.txt"
    f.write_text("hi there\n")
    short = berth("insert", "bb:1", f, "/srv/hello.txt").stdout.strip()
    info = json.loads(berth("inspect", short).stdout)[0]
    assert len(info["RootFS"]["Layers"]) == 2
    hist = berth("history", "-q", short).stdout.split()
    assert hist[0] == short and hist[1] != "<missing>"


def test_prune_and_df(berth, busybox_tar):
    berth("import", busybox_tar)
    import_busybox(berth, busybox_tar, "keep:1")
    out = berth("image", "prune", "-f").stdout
    assert "Deleted Images:" in out and "Total reclaimed space:" in out
    assert berth("images", "-q").stdout.count("\n") == 1
    df = berth("system", "df").stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "1", "0"]
    out = berth("image", "prune", "-a", "-f").stdout
    assert "untagged: keep:1" in out
    assert berth("images", "-q").stdout == ""


def test_version_info_check(berth, busybox_tar):
    assert "API version" in berth("version").stdout
    assert berth("version", "-f", "{{.Server.ApiVersion}}").stdout.strip()
    assert "Images: 0" in berth("info").stdout
    import_busybox(berth, busybox_tar)
    assert berth("system", "check").stdout.strip() == "store OK"


@pytest.fixture
def http_files(tmp_path):
    """A static file server on 127.0.0.1 for the URL forms of import and insert."""
    import functools
    import http.server
    import threading
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_import_and_insert_from_url(berth, busybox_tar, http_files):
    served, base = http_files
    (served / "rootfs.tar").write_bytes(busybox_tar.read_bytes())
    (served / "motd").write_text("welcome\n")
    image_id = berth("import", f"{base}/rootfs.tar", "fromurl:1").stdout.strip()
    assert berth("history", "--format", "{{.Comment}}", image_id).stdout == f"Imported from {base}/rootfs.tar\n"
    short = berth("insert", "fromurl:1", f"{base}/motd", "/etc/motd").stdout.strip()
    assert len(json.loads(berth("inspect", short).stdout)[0]["RootFS"]["Layers"]) == 2
    p = berth("import", f"{base}/missing.tar", check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
