"""Smaller parts of the Engine API: a client's own registry credentials
(X-Registry-Auth), POST /containers/{id}/update, an exec's Pid."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import pytest

docker = pytest.importorskip("docker")


@pytest.fixture
def client(api):
    c = docker.DockerClient(base_url=api.host, timeout=120)
    yield c
    c.close()


def _auth_header(config: dict) -> dict:
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(config).encode()).decode()}


def _errors(lines: list[dict]) -> list[str]:
    return [line["error"] for line in lines if "error" in line]


def _pull_fails(client, repo: str, **kwargs) -> bool:
    """A refused pull fails before its stream (an HTTP error) or in it (an error message)."""
    try:
        return bool(_errors(list(client.api.pull(repo, tag="v1", stream=True, decode=True, **kwargs))))
    except docker.errors.APIError:
        return True


def test_x_registry_auth_is_honoured(client, api, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
    from reg_testlib import REGISTRY_BIN, start_registry
    if not Path(REGISTRY_BIN).exists() or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry and htpasswd (apache2-utils) are needed")
    registry = start_registry(tmp_path / "registry", htpasswd={"alice": "s3cret"})
    try:
        repo = f"{registry.host}/private/busybox"
        client.images.get("busybox").tag(repo, "v1")
        # No login is stored: the daemon has only what the client sends.
        refused = list(client.api.push(repo, tag="v1", stream=True, decode=True))
        assert _errors(refused), refused
        wrong = list(client.api.push(repo, tag="v1", stream=True, decode=True,
                                     auth_config={"username": "alice", "password": "wrong"}))
        assert _errors(wrong), wrong
        pushed = list(client.api.push(repo, tag="v1", stream=True, decode=True,
                                      auth_config={"username": "alice", "password": "s3cret",
                                                   "serveraddress": registry.host}))
        assert not _errors(pushed) and any(line.get("aux", {}).get("Tag") == "v1" for line in pushed), pushed
        client.images.remove(f"{repo}:v1")
        assert _pull_fails(client, repo)
        # An identity token is not a password: the registry's basic auth refuses it.
        assert _pull_fails(client, repo, auth_config={"identitytoken": "not-a-password"})
        pulled = list(client.api.pull(repo, tag="v1", stream=True, decode=True,
                                      auth_config={"username": "alice", "password": "s3cret"}))
        assert not _errors(pulled), pulled
        assert client.images.get(f"{repo}:v1").id == client.images.get("busybox").id
        # The docker CLI's encoding (URL-safe base64 with padding) through raw HTTP, and config.json's "auth".
        header = _auth_header({"auth": base64.b64encode(b"alice:s3cret").decode()})
        r = api.request("POST", f"/images/{repo}:v1/push", headers=header)
        assert r.status == 200 and b'"error"' not in r.body, r.body
    finally:
        registry.stop()


def test_a_malformed_x_registry_auth_is_refused(api):
    r = api.request("POST", "/images/create?fromImage=127.0.0.1:1/x&tag=v1", headers={"X-Registry-Auth": "%%%"})
    assert r.status == 400 and "invalid X-Registry-Auth header" in r.json()["message"]
    r = api.request("POST", "/images/busybox/push", headers={"X-Registry-Auth": "WzFd"})   # [1]
    assert r.status == 400 and "invalid X-Registry-Auth header" in r.json()["message"]
