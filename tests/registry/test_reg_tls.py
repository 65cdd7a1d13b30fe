"""TLS to a real registry with a CA the test makes, in Docker's certs.d layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reg_testlib import build_image, layer_tar, publish

VERIFY_ALL = {"BERTH_INSECURE_REGISTRIES": ""}   # no insecure registries, not even 127.0.0.0/8
IMAGE = build_image([layer_tar({"tls": b"over tls\n"})])


@pytest.fixture
def tls_registry(registries, ca):
    server, _, _ = ca.issue("registry")
    reg = registries(tls=server)
    reg.verify = str(ca.pair.cert)
    publish(reg, "secure/app", "1", IMAGE)
    return reg


def host_dir(reg_env, reg) -> Path:
    d = Path(reg_env["BERTH_CERTS_D"]) / reg.host
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_unknown_authority_is_refused(rberth, tls_registry):
    p = rberth("pull", f"{tls_registry.host}/secure/app:1", env=VERIFY_ALL, check=False)
    assert p.returncode == 1
    assert p.stderr == (f'Error: Get "https://{tls_registry.host}/v2/": tls: failed to verify certificate: '
                        "x509: certificate signed by unknown authority\n")


def test_ca_from_certs_d(rberth, tls_registry, ca, reg_env, bb_image):
    shutil.copy(ca.pair.cert, host_dir(reg_env, tls_registry) / "ca.crt")
    rberth("pull", f"{tls_registry.host}/secure/app:1", env=VERIFY_ALL)
    assert rberth("inspect", "-f", "{{.Id}}", f"{tls_registry.host}/secure/app:1").stdout.strip() == IMAGE.image_id
    name = f"{tls_registry.host}/secure/pushed:1"
    bb_image(name)
    assert ": digest: sha256:" in rberth("push", name, env=VERIFY_ALL).stdout


def test_client_certificate(rberth, registries, ca, reg_env):
    server, _, _ = ca.issue("registry")
    reg = registries(tls=server, client_ca=ca.pair.cert)
    d = host_dir(reg_env, reg)
    shutil.copy(ca.pair.cert, d / "ca.crt")
    p = rberth("pull", f"{reg.host}/secure/app:1", env=VERIFY_ALL, check=False)
    assert p.returncode == 1 and "certificate required" in p.stderr, p.stderr
    client, _, _ = ca.issue("client", server=False)
    shutil.copy(client.cert, d / "client.cert")
    p = rberth("pull", f"{reg.host}/secure/app:1", env=VERIFY_ALL, check=False)
    assert p.stderr == ("Error: missing key client.key for client certificate client.cert. "
                        "CA certificates must use the extension .crt\n")
    shutil.copy(client.key, d / "client.key")
    p = rberth("pull", f"{reg.host}/secure/app:1", env=VERIFY_ALL, check=False)
    # The registry is empty: getting this far means the TLS handshake succeeded.
    assert p.stderr == f"Error: manifest for {reg.host}/secure/app:1 not found: manifest unknown: manifest unknown\n"


def test_loopback_is_insecure_by_default(rberth, tls_registry):
    """As in Docker, 127.0.0.0/8 registries are used without verifying TLS."""
    rberth("pull", f"{tls_registry.host}/secure/app:1")
    assert rberth("images", "-q", "--no-trunc").stdout.strip() == IMAGE.image_id


def test_plain_http_only_for_insecure_registries(rberth, registry):
    publish(registry, "plain", "1", IMAGE)
    name = f"{registry.host}/plain:1"
    p = rberth("pull", name, env=VERIFY_ALL, check=False)
    assert p.returncode == 1
    assert p.stderr == (f'Error: Get "https://{registry.host}/v2/": '
                        "http: server gave HTTP response to HTTPS client\n")
    rberth("pull", name, env={"BERTH_INSECURE_REGISTRIES": registry.host})
    rberth("rmi", name)
    rberth("pull", name, env={"BERTH_INSECURE_REGISTRIES": "127.0.0.0/8"})
