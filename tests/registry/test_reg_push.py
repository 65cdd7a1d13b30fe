"""Pushing to a real registry: output, blob checks, mounts, upload modes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from berth.engine.registry import RegistryService, settings_from_environment
from berth.image.store import ImageStore
from berth.registry.client import default_transport
from berth.store.state import State


def blob(root: Path, digest: str) -> bytes:
    return (root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def test_push_prints_docker_lines_and_keeps_the_manifest(rberth, registry, bb_image):
    name = f"{registry.host}/team/bb:1"
    image_id = bb_image(name)
    out = rberth("push", name).stdout.splitlines()
    info = json.loads(rberth("inspect", name).stdout)[0]
    short = info["RootFS"]["Layers"][0][7:19]
    assert out[0] == f"The push refers to repository [{registry.host}/team/bb]"
    assert out[1:3] == [f"{short}: Preparing", f"{short}: Pushed"]
    manifest_digest, size = out[3].split("digest: ")[1].split(" size: ")
    assert out[3] == f"1: digest: {manifest_digest} size: {size}"
    # The registry serves exactly the stored manifest, with its media type.
    with registry.http() as c:
        r = c.get("/v2/team/bb/manifests/1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == manifest_digest
    assert r.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    assert r.content == blob(rberth.root, manifest_digest) and len(r.content) == int(size)
    # Like Docker, the pushed digest becomes a RepoDigest.
    assert info["Id"] == image_id
    again = json.loads(rberth("inspect", name).stdout)[0]
    assert f"{registry.host}/team/bb@{manifest_digest}" in again["RepoDigests"]


def test_layers_are_stored_plain_and_pushed_gzip(rberth, registry, bb_image):
    """Like Docker: a local image's layers are plain tar (no compression in
    builds and imports), and a push sends them gzip-compressed."""
    name = f"{registry.host}/plain/bb:1"
    bb_image(name)
    layers = ImageStore(State(rberth.root)).layers(ImageStore(State(rberth.root)).find(name))
    assert [layer.media_type for layer in layers] == ["application/vnd.oci.image.layer.v1.tar"]
    assert layers[0].digest == layers[0].diff_id
    rberth("push", name)
    store = ImageStore(State(rberth.root))
    [pushed] = store.layers(store.find(name))
    assert pushed.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert pushed.diff_id == layers[0].diff_id and blob(rberth.root, pushed.digest)[:2] == b"\x1f\x8b"
    assert not (rberth.root / "blobs" / "sha256" / layers[0].digest.split(":")[1]).exists()
    with registry.http() as c:
        r = c.get(f"/v2/plain/bb/blobs/{pushed.digest}")
    assert r.status_code == 200 and r.content == blob(rberth.root, pushed.digest)


def test_second_push_finds_layers_present(rberth, registry, bb_image):
    name = f"{registry.host}/bb:1"
    bb_image(name)
    rberth("push", name)
    out = rberth("push", name).stdout
    assert "Layer already exists" in out and "Pushed" not in out


def test_cross_repository_mount(rberth, registry, bb_image):
    bb_image(f"{registry.host}/one:1")
    rberth("push", f"{registry.host}/one:1")
    bb_image(f"{registry.host}/two:1")
    out = rberth("push", f"{registry.host}/two:1").stdout
    assert ": Mounted from one" in out
    with registry.http() as c:
        assert c.get("/v2/two/manifests/1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code == 200


def test_pushed_image_pulls_back_identically(rberth, other, registry, bb_image):
    name = f"{registry.host}/round/trip:7"
    image_id = bb_image(name)
    rberth("push", name)
    other("pull", name)
    assert other("inspect", "-f", "{{.Id}}", name).stdout.strip() == image_id
    assert other("inspect", "-f", "{{json .RepoDigests}}", name).stdout == \
        rberth("inspect", "-f", "{{json .RepoDigests}}", name).stdout


def test_default_tag_all_tags_and_quiet(rberth, registry, bb_image):
    bb_image(f"{registry.host}/many:latest")
    p = rberth("push", f"{registry.host}/many")
    assert p.stdout.startswith("Using default tag: latest\n")
    bb_image(f"{registry.host}/many:a")
    bb_image(f"{registry.host}/many:b")
    out = rberth("push", "-a", f"{registry.host}/many").stdout
    assert all(f"{t}: digest: sha256:" in out for t in ("a", "b", "latest"))
    assert rberth("push", "-q", f"{registry.host}/many:a").stdout == f"{registry.host}/many:a\n"
    with registry.http() as c:
        assert sorted(c.get("/v2/many/tags/list").json()["tags"]) == ["a", "b", "latest"]


def test_push_of_missing_tag(rberth, registry):
    p = rberth("push", f"{registry.host}/nothing:1", check=False)
    assert p.returncode == 1
    assert p.stderr == f"Error: tag does not exist: {registry.host}/nothing:1\n"
    p = rberth("push", f"{registry.host}/nothing@sha256:" + "a" * 64, check=False)
    assert p.stderr == "Error: cannot push a digest reference\n"


class Recording(httpx.BaseTransport):
    """Forwards to the real transport, noting each request's method and headers."""

    def __init__(self, inner: httpx.BaseTransport, log: list):
        self.inner, self.log = inner, log

    def handle_request(self, request):
        self.log.append((request.method, request.url.path, dict(request.headers)))
        return self.inner.handle_request(request)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("chunk", [64 << 20, 256 << 10], ids=["monolithic", "chunked"])
def test_upload_modes(rberth, other, registry, bb_image, reg_env, chunk):
    name = f"{registry.host}/modes:1"
    image_id = bb_image(name)
    log: list = []
    settings = settings_from_environment(reg_env)
    settings = type(settings)(**{**settings.__dict__, "upload_chunk_size": chunk})
    state = State(rberth.root)
    try:
        service = RegistryService(ImageStore(state), settings,
                                  transport_factory=lambda ep: Recording(default_transport(ep), log))
        [result] = service.push(name)
    finally:
        state.db.close()
    patches = [h for m, path, h in log if m == "PATCH"]
    puts = [(path, h) for m, path, h in log if m == "PUT" and "/blobs/uploads/" in path]
    if chunk > 1 << 20:
        assert not patches
        assert all(int(h["content-length"]) > 0 for _, h in puts)
    else:
        assert len(patches) >= 4
        ranges = [h["content-range"] for h in patches]
        assert ranges[0] == f"0-{chunk - 1}" and ranges[1] == f"{chunk}-{2 * chunk - 1}"
    other("pull", f"{registry.host}/modes@{result.digest}")
    assert other("images", "-q", "--no-trunc").stdout.strip() == image_id
