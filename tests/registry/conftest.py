"""Fixtures for the registry tests: registries started per test on
127.0.0.1, and a berth whose client config and certs.d are private."""

from __future__ import annotations

import shutil

import pytest

from reg_testlib import REGISTRY_BIN, CA, TokenServer, start_registry


@pytest.fixture
def registries(tmp_path):
    """Start docker-registry instances; all are stopped after the test."""
    if not shutil.which(REGISTRY_BIN):
        pytest.skip("docker-registry (Debian's docker-registry) is not installed")
    started = []

    def start(**options):
        reg = start_registry(tmp_path / f"registry-{len(started)}", **options)
        started.append(reg)
        return reg
    yield start
    for reg in started:
        reg.stop()


@pytest.fixture
def registry(registries):
    """A plain-HTTP registry without authentication."""
    return registries()


@pytest.fixture
def reg_env(tmp_path):
    """Environment giving berth a private config.json and certs.d."""
    config, certs = tmp_path / "docker-config", tmp_path / "certs.d"
    certs.mkdir()
    return {"DOCKER_CONFIG": str(config), "BERTH_CERTS_D": str(certs)}


@pytest.fixture
def rberth(berth, reg_env):
    """The `berth` fixture with the private registry environment."""
    def run(*args, env=None, **kw):
        return berth(*args, env={**reg_env, **(env or {})}, **kw)
    run.root = berth.root
    return run


@pytest.fixture
def other(other_berth, reg_env):
    """A second state root with the same registry environment."""
    b = other_berth("second-root")

    def run(*args, env=None, **kw):
        return b(*args, env={**reg_env, **(env or {})}, **kw)
    run.root = b.root
    return run


@pytest.fixture
def ca(tmp_path):
    return CA(tmp_path / "pki")


@pytest.fixture
def token_server(ca):
    server = TokenServer(ca, {"alice": "wonderland"})
    yield server
    server.stop()


@pytest.fixture
def bb_image(rberth, busybox_tar):
    """Import busybox under a name; returns a function tagging it for a registry."""
    image_id = rberth("import", "-c", 'CMD ["echo", "from berth"]', busybox_tar, "bb-local:1").stdout.strip()

    def named(name: str) -> str:
        rberth("tag", "bb-local:1", name)
        return image_id
    return named
