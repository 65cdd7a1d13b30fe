"""Pulling from a real registry (Debian's docker-registry on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import tarfile
import time

import pytest

from berthtest import berth_argv
from reg_testlib import (ThrottledProxy, build_image, layer_tar, publish, publish_index, random_bytes,
                         sha, wait_for)

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="platform defaults are checked for linux/amd64")

BASE = layer_tar({"etc/base": b"base layer\n"})
TOP = layer_tar({"app/run": b"#!/bin/sh\necho app\n"})


def blob_path(root, digest):
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]


def test_pull_by_tag_keeps_the_registrys_bytes(rberth, registry):
    image = build_image([BASE, TOP])
    digest = publish(registry, "team/app", "1", image)
    name = f"{registry.host}/team/app:1"
    out = rberth("pull", name).stdout.splitlines()
    assert out[0] == "1: Pulling from team/app"
    assert f"{image.layers[0] and sha(image.layers[0])[7:19]}: Pull complete" in out
    assert out[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}", name]
    info = json.loads(rberth("inspect", name).stdout)[0]
    assert info["Id"] == image.image_id
    assert info["RepoDigests"] == [f"{registry.host}/team/app@{digest}"]
    # The registry's manifest and config are stored byte for byte.
    assert blob_path(rberth.root, digest).read_bytes() == image.manifest
    assert blob_path(rberth.root, image.image_id).read_bytes() == image.config
    for layer in image.layers:
        assert blob_path(rberth.root, sha(layer)).read_bytes() == layer
    assert rberth("system", "check").stdout.strip() == "store OK"
    # Unpacked for overlayfs while they arrived, as Docker extracts during a
    # pull: a first run has nothing left to unpack.
    layers = rberth.root / "layers"
    unpacked = sorted(p.name for p in layers.iterdir() if p.name not in ("empty",))
    assert len(unpacked) == 2 and not any(name.startswith(".") for name in unpacked)
    assert (layers / unpacked[0] / "etc" / "base").exists() or (layers / unpacked[1] / "etc" / "base").exists()
    # rmi gives their disk space back with the blobs.
    rberth("rmi", name)
    assert sorted(p.name for p in layers.iterdir()) == ["empty"]


def test_pull_by_digest(rberth, registry):
    image = build_image([BASE])
    digest = publish(registry, "app", "v1", image)
    name = f"{registry.host}/app@{digest}"
    out = rberth("pull", name).stdout.splitlines()
    assert out[0] == f"{digest}: Pulling from app"
    assert out[-1] == name
    listed = rberth("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout
    assert listed == f"{registry.host}/app <none> {digest}\n"
    # A digest that does not match what comes back is refused.
    wrong = "sha256:" + "0" * 64
    p = rberth("pull", f"{registry.host}/app@{wrong}", check=False)
    assert p.returncode == 1
    assert f"manifest for {registry.host}/app@{wrong} not found: manifest unknown" in p.stderr


def test_present_layers_are_skipped(rberth, registry):
    first, second = build_image([BASE]), build_image([BASE, TOP])
    publish(registry, "app", "base", first)
    publish(registry, "app", "full", second)
    rberth("pull", f"{registry.host}/app:base")
    out = rberth("pull", f"{registry.host}/app:full").stdout
    assert f"{sha(second.layers[0])[7:19]}: Already exists" in out
    assert f"{sha(second.layers[1])[7:19]}: Pull complete" in out
    again = rberth("pull", f"{registry.host}/app:full").stdout
    assert "Already exists" not in again and "Pulling fs layer" not in again
    assert f"Status: Image is up to date for {registry.host}/app:full" in again


def test_quiet_pull_prints_only_the_reference(rberth, registry):
    publish(registry, "app", "latest", build_image([BASE]))
    p = rberth("pull", "-q", f"{registry.host}/app")
    assert p.stdout == f"{registry.host}/app:latest\n"


@pytest.mark.parametrize("oci", [True, False], ids=["oci-index", "docker-manifest-list"])
def test_index_picks_the_platform(rberth, registry, oci):
    amd = build_image([BASE], arch="amd64", oci=oci)
    arm = build_image([TOP], arch="arm64", variant="v8", oci=oci)
    armv7 = build_image([BASE, TOP], arch="arm", variant="v7", oci=oci)
    index = publish_index(registry, "multi", "1", [
        (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        (armv7, {"os": "linux", "architecture": "arm", "variant": "v7"}),
        (amd, {"os": "linux", "architecture": "amd64"}),
        # An attestation manifest, as buildkit adds, is never chosen.
        (build_image([TOP]), {"os": "unknown", "architecture": "unknown"}),
    ], oci=oci)
    name = f"{registry.host}/multi:1"
    out = rberth("pull", name).stdout
    assert f"Digest: {index}" in out
    info = json.loads(rberth("inspect", name).stdout)[0]
    assert (info["Id"], info["Architecture"]) == (amd.image_id, "amd64")
    # RepoDigests name the index, as Docker's do for multi-platform images.
    assert info["RepoDigests"] == [f"{registry.host}/multi@{index}"]
    rberth("pull", "--platform", "linux/arm64", name)
    assert rberth("inspect", "-f", "{{.Id}}", name).stdout.strip() == arm.image_id
    rberth("pull", "--platform", "linux/arm/v7", name)
    assert rberth("inspect", "-f", "{{.Id}}", name).stdout.strip() == armv7.image_id
    p = rberth("pull", "--platform", "linux/s390x", name, check=False)
    assert p.returncode == 1
    assert "no matching manifest for linux/s390x in the manifest list entries" in p.stderr


def test_single_manifest_of_another_platform(rberth, registry):
    publish(registry, "armonly", "1", build_image([BASE], arch="arm64"))
    p = rberth("pull", "--platform", "linux/amd64", f"{registry.host}/armonly:1", check=False)
    assert p.returncode == 1
    assert "does not match the specified platform: wanted linux/amd64, actual: linux/arm64" in p.stderr


def test_docker_schema2_and_uncompressed_layers(rberth, registry):
    schema2 = build_image([BASE, TOP], oci=False)
    plain = build_image([TOP], compress=False)
    d1 = publish(registry, "s2", "1", schema2)
    d2 = publish(registry, "plain", "1", plain)
    rberth("pull", f"{registry.host}/s2:1")
    rberth("pull", f"{registry.host}/plain:1")
    assert blob_path(rberth.root, d1).read_bytes() == schema2.manifest
    # An uncompressed layer stays uncompressed: its digest is the registry's.
    assert blob_path(rberth.root, sha(plain.layers[0])).read_bytes() == TOP
    assert json.loads(rberth("inspect", f"{registry.host}/plain:1").stdout)[0]["RepoDigests"] == \
        [f"{registry.host}/plain@{d2}"]


def test_missing_repository_and_tag(rberth, registry):
    p = rberth("pull", f"{registry.host}/nothing/here", check=False)
    assert p.returncode == 1
    assert p.stdout == "Using default tag: latest\n"
    assert p.stderr == (f"Error: manifest for {registry.host}/nothing/here:latest not found: "
                        "manifest unknown: manifest unknown\n")
    publish(registry, "app", "1", build_image([BASE]))
    p = rberth("pull", f"{registry.host}/app:2", check=False)
    assert f"manifest for {registry.host}/app:2 not found" in p.stderr


def test_unreachable_registry(rberth, registry):
    port = registry.port
    registry.stop()
    start = time.monotonic()
    p = rberth("pull", f"127.0.0.1:{port}/app:1", check=False)
    assert p.returncode == 1
    assert p.stderr == (f'Error: Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: '
                        "connect: connection refused\n")
    assert time.monotonic() - start < 10


def _store_is_clean(b, *digests):
    assert b("images", "-q").stdout == ""
    for d in digests:
        assert not blob_path(b.root, d).exists()
    assert b("system", "check").stdout.strip() == "store OK"


def test_missing_layer_fails_clearly_and_leaves_nothing(rberth, registry):
    image = build_image([BASE, TOP])
    publish(registry, "broken", "1", image, drop_layers=(1,))
    p = rberth("pull", f"{registry.host}/broken:1", check=False)
    assert p.returncode == 1
    assert f"layer {sha(image.layers[1])} of {registry.host}/broken:1 not found in the registry" in p.stderr
    _store_is_clean(rberth, *(sha(x) for x in image.layers))


def test_foreign_layer_is_refused(rberth, registries):
    registry = registries(foreign_urls=True)
    image = build_image([BASE], layer_media_type="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                        oci=False, urls=["https://example.invalid/layer.tar.gz"])
    publish(registry, "foreign", "1", image)
    p = rberth("pull", f"{registry.host}/foreign:1", check=False)
    assert p.returncode == 1
    assert "is a foreign layer (application/vnd.docker.image.rootfs.foreign.diff.tar.gzip)" in p.stderr
    assert "https://example.invalid/layer.tar.gz" in p.stderr
    _store_is_clean(rberth, sha(image.layers[0]))


def test_corrupt_blob_in_registry_is_refused(rberth, registry):
    image = build_image([BASE, TOP])
    publish(registry, "corrupt", "1", image)
    digest = sha(image.layers[1])
    data = registry.storage / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
    damaged = bytearray(data.read_bytes())
    damaged[-12] ^= 0xFF   # in the gzip trailer: the tar still reads, the digest differs
    data.write_bytes(bytes(damaged))
    p = rberth("pull", f"{registry.host}/corrupt:1", check=False)
    assert p.returncode == 1
    assert "digest mismatch" in p.stderr or "invalid gzip" in p.stderr or "crc" in p.stderr.lower(), p.stderr
    _store_is_clean(rberth, *(sha(x) for x in image.layers))


def test_hostile_layer_is_refused(rberth, registry):
    evil = tarfile.TarInfo("../../etc/evil")
    evil.size = 0
    image = build_image([layer_tar({}, extra=[evil])])
    publish(registry, "evil", "1", image)
    p = rberth("pull", f"{registry.host}/evil:1", check=False)
    assert p.returncode == 1
    assert "etc/evil" in p.stderr
    _store_is_clean(rberth, sha(image.layers[0]))


def test_killed_pull_leaves_no_half_layer(rberth, registry, reg_env, tmp_path):
    big = layer_tar({"data/blob": random_bytes(24 << 20, seed=7)})
    image = build_image([BASE, big])
    publish(registry, "big", "1", image)
    big_digest = sha(image.layers[1])
    proxy = ThrottledProxy(registry.port, bytes_per_second=3 << 20)
    try:
        name = f"{proxy.host}/big:1"
        proc = subprocess.Popen([*berth_argv(rberth.root), "pull", name],
                                env={**os.environ, **reg_env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            tmp = rberth.root / "tmp"

            def staging_grew():
                return any(p.stat().st_size > (2 << 20) for p in tmp.glob("blob-*")) if tmp.exists() else False
            wait_for(staging_grew, timeout=60)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        # No half layer is visible: not as a blob, not as an image.
        assert not blob_path(rberth.root, big_digest).exists()
        assert rberth("images", "-q").stdout == ""
        proxy.rate = 1 << 40
        out = rberth("pull", name).stdout
        assert f"Status: Downloaded newer image for {name}" in out
    finally:
        proxy.stop()
    assert blob_path(rberth.root, big_digest).read_bytes() == image.layers[1]
    assert rberth("system", "check").stdout.strip() == "store OK"


def test_cut_download_resumes_with_range(rberth, registry):
    image = build_image([layer_tar({"data/blob": random_bytes(6 << 20, seed=3)})])
    publish(registry, "resume", "1", image)
    proxy = ThrottledProxy(registry.port, cut_after=3 << 20)
    try:
        rberth("pull", f"{proxy.host}/resume:1")
    finally:
        proxy.stop()
    assert any(b"Range: bytes=" in r or b"range: bytes=" in r for r in proxy.requests)
    assert blob_path(rberth.root, sha(image.layers[0])).read_bytes() == image.layers[0]


def test_progress_bars_on_a_terminal(rberth, registry, reg_env):
    import pexpect
    image = build_image([BASE, layer_tar({"data/blob": random_bytes(4 << 20, seed=5)})])
    publish(registry, "bars", "1", image)
    proxy = ThrottledProxy(registry.port, bytes_per_second=2 << 20)
    try:
        name = f"{proxy.host}/bars:1"
        child = pexpect.spawn(berth_argv()[0], [*berth_argv(rberth.root)[1:], "pull", name],
                              env={**os.environ, **reg_env}, timeout=60, dimensions=(40, 120))
        child.expect_exact(b"Downloading ")
        child.expect(rb"\d+\.\d/4\.2 MB")   # after the bar, its byte counts
        child.expect(pexpect.EOF)
        child.close()
    finally:
        proxy.stop()
    assert child.exitstatus == 0
    text = child.before.decode()
    assert f"{sha(image.layers[1])[7:19]}: Pull complete" in text
    assert text.rstrip().endswith(name)
