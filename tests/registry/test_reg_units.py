"""The registry layer's pure parts: challenges, platforms, hosts, credentials, progress."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest

from berth.errors import DataCorrupt, InvalidArgument, NotFound
from berth.registry.auth import Credentials, parse_challenges
from berth.registry.credentials import CredentialStore, server_address
from berth.registry.hosts import RegistrySettings, endpoints, is_secure
from berth.registry.manifests import Descriptor, Platform, media_type_of, select_platform
from berth.registry.progress import Progress


def test_challenges():
    [bearer] = parse_challenges(['Bearer realm="https://auth.example/token",service="reg",'
                                 'scope="repository:a/b:pull,push"'])
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.example/token", "service": "reg",
                             "scope": "repository:a/b:pull,push"}
    found = parse_challenges(['Negotiate abc==, Basic realm="q \\"x\\""', "Bearer realm=r,error=insufficient_scope"])
    assert [(c.scheme, c.params) for c in found] == [
        ("negotiate", {}), ("basic", {"realm": 'q "x"'}), ("bearer", {"realm": "r", "error": "insufficient_scope"})]
    assert parse_challenges([""]) == [] and parse_challenges(["Basic"])[0].scheme == "basic"


def test_credentials_never_show_secrets():
    creds = Credentials("alice", "hunter2", "refresh-me")
    assert "hunter2" not in repr(creds) and "refresh-me" not in repr(creds)


@pytest.mark.parametrize("text,expected", [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm64/v8", Platform("linux", "arm64")),
    ("linux/arm", Platform("linux", "arm", "v7")),
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("LINUX/x86_64", Platform("linux", "amd64")),
    ("arm64", Platform("linux", "arm64")),
])
def test_platform_parse(text, expected):
    assert Platform.parse(text) == expected


def test_platform_parse_refuses_nonsense():
    with pytest.raises(InvalidArgument):
        Platform.parse("nonsense")
    with pytest.raises(InvalidArgument):
        Platform.parse("a/b/c/d")


def _entry(n, os_, arch, variant=""):
    return Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + f"{n}" * 64, 1,
                      platform=Platform.normalized(os_, arch, variant))


def test_platform_selection_prefers_the_exact_variant():
    entries = [_entry(1, "linux", "arm", "v6"), _entry(2, "linux", "arm", "v7"), _entry(3, "linux", "amd64"),
               _entry(4, "windows", "amd64")]
    assert select_platform(entries, Platform.parse("linux/arm/v7")).digest == entries[1].digest
    assert select_platform(entries[:1], Platform.parse("linux/arm/v7")).digest == entries[0].digest
    assert select_platform(entries, Platform.parse("linux/amd64")).digest == entries[2].digest
    with pytest.raises(NotFound, match="no matching manifest for linux/arm/v5 in the manifest list entries"):
        select_platform(entries, Platform.parse("linux/arm/v5"))


def test_media_type_detection():
    oci = json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode()
    assert media_type_of(oci, "application/vnd.oci.image.manifest.v1+json; charset=utf-8") == \
        "application/vnd.oci.image.manifest.v1+json"
    assert media_type_of(json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "") == \
        "application/vnd.oci.image.index.v1+json"
    with pytest.raises(InvalidArgument, match="schema 1"):
        media_type_of(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(),
                      "application/vnd.docker.distribution.manifest.v1+prettyjws")
    with pytest.raises(DataCorrupt):
        media_type_of(b"not json", "")


def test_insecure_registries_as_docker_decides():
    s = RegistrySettings()
    assert not is_secure("127.0.0.1:5000", s)
    assert not is_secure("localhost:5000", s, resolve=lambda h: ["127.0.0.1"])
    assert is_secure("registry.example:5000", s, resolve=lambda h: ["192.0.2.7"])
    assert is_secure("docker.io", s) and is_secure("index.docker.io", s)
    s = RegistrySettings(insecure_registries=("10.0.0.0/8", "myreg:5000"))
    assert is_secure("127.0.0.1:5000", s)
    assert not is_secure("myreg:5000", s, resolve=lambda h: [])
    assert not is_secure("inside:443", s, resolve=lambda h: ["10.1.2.3"])
    verified = endpoints("registry.example", RegistrySettings(), resolve=lambda h: ["192.0.2.7"])
    assert [e.url for e in verified] == ["https://registry.example"] and verified[0].secure
    loose = endpoints("127.0.0.1:5000", RegistrySettings())
    assert [e.url for e in loose] == ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
    assert not loose[0].secure
    assert endpoints("docker.io", RegistrySettings())[0].url == "https://registry-1.docker.io"


def test_credential_file(tmp_path):
    store = CredentialStore(tmp_path / "cfg")
    assert store.get("docker.io") is None
    store.store("docker.io", Credentials("bob", "pw:with:colons"))
    store.store("127.0.0.1:5000", Credentials("alice", "s"))
    data = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert set(data["auths"]) == {"https://index.docker.io/v1/", "127.0.0.1:5000"}
    assert oct(os.stat(tmp_path / "cfg" / "config.json").st_mode & 0o777) == "0o600"
    assert store.get("index.docker.io") == Credentials("bob", "pw:with:colons")
    assert store.erase("docker.io") and not store.erase("docker.io")
    assert store.get("docker.io") is None and store.get("127.0.0.1:5000").username == "alice"
    assert server_address("registry-1.docker.io") == "https://index.docker.io/v1/"


def test_credential_file_written_by_others(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({
        "auths": {"https://registry.example:5000/v1/": {"auth": base64.b64encode(b"u:p").decode()},
                  "broken.example": {"auth": "!!!"}},
        "detachKeys": "ctrl-x"}))
    store = CredentialStore(cfg)
    assert store.get("registry.example:5000") == Credentials("u", "p")
    with pytest.raises(DataCorrupt):
        store.get("broken.example")
    store.store("registry.example:5000", Credentials("u", "q"))
    data = json.loads((cfg / "config.json").read_text())
    assert data["detachKeys"] == "ctrl-x" and "https://registry.example:5000/v1/" not in data["auths"]


def test_plain_progress_lines():
    from berth.cli.commands.registry import ProgressView
    out = io.StringIO()
    with ProgressView(out, tty=False) as view:
        for event in (Progress("Pulling from app", "1"), Progress("Pulling fs layer", "abc"),
                      Progress("Downloading", "abc", 10, 100), Progress("Downloading", "abc", 10, 100),
                      Progress("Download complete", "abc"), Progress("Digest: sha256:x")):
            view(event)
    assert out.getvalue().splitlines() == ["1: Pulling from app", "abc: Pulling fs layer",
                                           "abc: Download complete", "Digest: sha256:x"]
    quiet = io.StringIO()
    with ProgressView(quiet, quiet=True) as view:
        view(Progress("Pushed", "abc"))
    assert quiet.getvalue() == ""
