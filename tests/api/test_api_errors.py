"""Bad requests get Docker's statuses and messages, and change nothing; every
response carries the API headers; versions are negotiated as dockerd does."""

from __future__ import annotations

import io
import tarfile

import pytest


def _containers(api) -> list[dict]:
    r = api.request("GET", "/containers/json?all=1")
    assert r.status == 200
    return r.json()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_ping_version_and_headers(api):
    for method in ("GET", "HEAD"):
        r = api.request(method, "/_ping")
        assert r.status == 200
        assert r.headers["api-version"] == "1.47"
        assert r.headers["ostype"] == "linux"
        assert r.headers["docker-experimental"] == "false"
        assert r.headers["builder-version"] == "1"
        assert r.headers["server"].startswith("berth/")
        assert r.body == (b"OK" if method == "GET" else b"")
    assert api.request("GET", "/version").json()["ApiVersion"] == "1.47"
    assert api.request("GET", "/v1.24/version").status == 200
    assert api.request("GET", "/v1.43/info").json()["OSType"] == "linux"
    new = api.request("GET", "/v1.99/version")
    assert (new.status, new.json()["message"]) == (400, "client version 1.99 is too new. Maximum supported API "
                                                        "version is 1.47")
    assert new.headers["api-version"] == "1.47"
    old = api.request("GET", "/v1.12/version")
    assert old.status == 400 and "client version 1.12 is too old" in old.json()["message"]


def test_unknown_objects_and_routes(api):
    r = api.request("GET", "/v1.47/containers/nope/json")
    assert (r.status, r.json()) == (404, {"message": "No such container: nope"})
    assert r.headers["content-type"] == "application/json"
    assert api.request("GET", "/images/nope:1/json").json() == {"message": "No such image: nope:1"}
    assert api.request("DELETE", "/volumes/nope").status == 404
    r = api.request("GET", "/no/such/route")
    assert (r.status, r.json()) == (404, {"message": "page not found"})
    assert api.request("PUT", "/containers/json").status == 405
    assert api.request("POST", "/exec/nope/start", {"Detach": False}).status == 404


def test_malformed_requests_change_nothing(api):
    before = _containers(api)
    r = api.request("POST", "/containers/create", b'{"Image": "busybox",', {"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["message"].startswith("invalid JSON")
    r = api.request("POST", "/containers/create", b'{"Image": "busybox"}', {"Content-Type": "text/plain"})
    assert r.status == 400
    assert r.json()["message"] == "unsupported Content-Type header (text/plain): must be 'application/json'"
    r = api.request("POST", "/containers/create", [1, 2])
    assert r.status == 400
    r = api.request("POST", "/containers/create", {"Image": "no-such-image"})
    assert (r.status, r.json()["message"]) == (404, "No such image: no-such-image:latest")
    r = api.request("POST", "/containers/create?name=bad/name", {"Image": "busybox"})
    assert r.status == 400
    assert _containers(api) == before == []

    r = api.request("POST", "/containers/create?name=one", {"Image": "busybox", "Cmd": ["sleep", "300"],
                                                            "HostConfig": {"NetworkMode": "none"}})
    assert r.status == 201 and len(r.json()["Id"]) == 64
    r = api.request("POST", "/containers/create?name=one", {"Image": "busybox"})
    assert r.status == 409 and "already in use" in r.json()["message"]
    assert api.request("POST", "/containers/one/wait?condition=sometime").status == 400
    assert api.request("GET", "/containers/one/logs").status == 400  # neither stdout nor stderr
    r = api.request("POST", "/containers/one/exec", {"Cmd": ["true"]})
    assert r.status == 409 and "is not running" in r.json()["message"]
    assert api.request("POST", "/containers/one/start").status == 204
    assert api.request("POST", "/containers/one/start").status == 304
    r = api.request("DELETE", "/containers/one")
    assert r.status == 409 and "container is running" in r.json()["message"]
    assert api.request("POST", "/containers/one/kill?signal=NOSUCH").status == 400
    assert [c["Names"] for c in _containers(api)] == [["/one"]]
    assert api.request("DELETE", "/containers/one?force=1").status == 204
    assert _containers(api) == []


def test_archive_put_rejects_path_traversal(api, tmp_path):
    r = api.request("POST", "/containers/create?name=files", {"Image": "busybox", "Cmd": ["sleep", "300"],
                                                              "HostConfig": {"NetworkMode": "none"}})
    assert r.status == 201
    assert api.request("POST", "/containers/files/start").status == 204
    victim = tmp_path / "escaped"
    hostile = _tar({f"../../../../../../../../..{victim}": b"owned\n"})
    r = api.request("PUT", "/containers/files/archive?path=/tmp", hostile, {"Content-Type": "application/x-tar"})
    assert r.status == 400 and "is outside of" in r.json()["message"]
    assert not victim.exists()
    listing = api.request("GET", "/containers/files/archive?path=/tmp")
    assert listing.status == 200
    assert [m.name for m in tarfile.open(fileobj=io.BytesIO(listing.body))] == ["tmp"]
    r = api.request("PUT", "/containers/files/archive?path=/tmp", _tar({"ok.txt": b"fine\n"}),
                    {"Content-Type": "application/x-tar"})
    assert r.status == 200
    r = api.request("HEAD", "/containers/files/archive?path=/tmp/ok.txt")
    assert r.status == 200 and "x-docker-container-path-stat" in r.headers
    r = api.request("PUT", "/containers/files/archive?path=/no/such/dir", _tar({"x": b""}))
    assert r.status == 404
    r = api.request("GET", "/containers/files/archive")
    assert (r.status, r.json()["message"]) == (400, "path is required")


@pytest.mark.parametrize("path", ["/containers/json?filters=%7Bbad",
                                  "/containers/json?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
                                  "/images/json?filters=%7B%22nope%22%3A%7B%22x%22%3Atrue%7D%7D"])
def test_bad_filters(api, path):
    r = api.request("GET", path)
    assert r.status == 400 and "filter" in r.json()["message"]
