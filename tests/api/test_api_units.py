"""The HTTP layer on its own: routing, versions, errors, streams and hijacking,
served in-process from handlers that need no engine."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from berth import errors
from berth.api import httpstatus
from berth.api.containers import _create_request
from berth.api.routing import Hijack, Query, Response, Route, Router, StreamResponse, json_response
from berth.api.server import ApiServer, Application
from berth.api.streams import json_messages


def test_status_mapping():
    cases = {errors.NotFound("x"): 404, errors.Conflict("x"): 409, errors.InvalidArgument("x"): 400,
             errors.DataCorrupt("x"): 400, errors.Unauthorized("x"): 401, errors.Unavailable("x"): 503,
             errors.CommandNotFound("x"): 400, errors.NotExecutable("x"): 400, errors.BerthError("x"): 500,
             RuntimeError("x"): 500}
    assert {type(e).__name__: httpstatus.status_for(e) for e in cases} == \
        {type(e).__name__: s for e, s in cases.items()}
    assert json.loads(httpstatus.error_body("No such container: x")) == {"message": "No such container: x"}


def test_query_values():
    q = Query([("all", "1"), ("size", "false"), ("t", "5"), ("names", "a"), ("names", "b"), ("empty", ""),
               ("filters", '{"label":{"a=b":true,"c":false},"status":["running"]}')])
    assert q.bool("all") and not q.bool("size") and not q.bool("empty") and not q.bool("absent")
    assert q.bool("absent", True)
    assert q.int("t") == 5 and q.int("absent", -1) == -1
    assert q.all("names") == ["a", "b"]
    assert q.filters() == {"label": ["a=b"], "status": ["running"]}
    with pytest.raises(errors.InvalidArgument):
        Query([("t", "soon")]).int("t")
    with pytest.raises(errors.InvalidArgument):
        Query([("filters", "[1]")]).filters()


def test_router():
    def handler(name):
        return lambda req: name
    router = Router([Route("GET", "/images/json", handler("list")),
                     Route("GET", "/images/{name:.*}/json", handler("inspect")),
                     Route("DELETE", "/images/{name:.*}", handler("delete")),
                     Route("GET", "/containers/{name}/json", handler("container"))])
    assert router.match("GET", "/images/json")[0](None) == "list"
    h, params = router.match("GET", "/images/127.0.0.1:5000/a/b:1/json")
    assert (h(None), params) == ("inspect", {"name": "127.0.0.1:5000/a/b:1"})
    assert router.match("HEAD", "/images/json")[0](None) == "list"
    assert router.match("GET", "/containers/abc/json/")[1] == {"name": "abc"}
    with pytest.raises(errors.NotFound):
        router.match("GET", "/containers/a/b/json")
    from berth.api.routing import MethodNotAllowed
    with pytest.raises(MethodNotAllowed):
        router.match("POST", "/images/json")


def test_create_body_translation():
    config, host, further = _create_request({
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "app_default"},
        "NetworkingConfig": {"EndpointsConfig": {"app_default": {"Aliases": ["web", "abc"]},
                                                 "other": {"Aliases": ["w2"]}}}})
    assert config == {"Image": "busybox", "Cmd": ["true"]}
    assert host == {"NetworkMode": "app_default", "NetworkAliases": ["web", "abc"]}
    assert further == [("other", ["w2"])]
    _, host, further = _create_request({"Image": "x", "NetworkingConfig": {"EndpointsConfig": {"n1": {}}}})
    assert host == {"NetworkMode": "n1"} and further == []


def test_json_messages_report_late_failures_in_band():
    def fails_at_once(emit):
        raise errors.NotFound("manifest unknown")
    with pytest.raises(errors.NotFound):
        next(json_messages(fails_at_once))

    def fails_later(emit):
        emit({"status": "Pulling"})
        raise errors.Unavailable("connection reset")
    lines = [json.loads(x) for x in json_messages(fails_later)]
    assert lines == [{"status": "Pulling"}, {"errorDetail": {"message": "connection reset"},
                                             "error": "connection reset"}]


# -- the server, in-process ------------------------------------------------------------------

@pytest.fixture
def server(tmp_path):
    def echo(raw):
        while True:
            data = raw.recv()
            if not data:
                raw.sendall(b"<eof>")
                return
            raw.sendall(data.upper())

    def numbers(req):
        count = req.query.int("n", 3)
        return StreamResponse((f"{i}\n".encode() for i in range(count)), content_type="text/plain")

    def broken(req):
        raise RuntimeError("a bug")

    router = Router([Route("GET", "/hello", lambda req: json_response({"hello": req.version})),
                     Route("POST", "/echo", lambda req: Hijack(echo)),
                     Route("GET", "/numbers", numbers),
                     Route("POST", "/body", lambda req: Response(200, json.dumps(req.json()).encode())),
                     Route("GET", "/broken", broken)])
    logged = []
    app = Application(router, api_version="1.47", min_api_version="1.24", server="berth/test",
                      log=logged.append)
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    srv = ApiServer(app, [listener])
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield path, logged
    srv.shutdown()
    thread.join(timeout=5)
    listener.close()


def _raw(path: str, request: bytes, *, half_close: bool = False) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(request)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            break
        out += data
    s.close()
    return out


def test_keep_alive_versions_and_errors(server):
    path, logged = server
    out = _raw(path, b"GET /v1.40/hello HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"
                     b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    responses = out.split(b"HTTP/1.1 ")[1:]
    assert [r[:3] for r in responses] == [b"200", b"500", b"400", b"200"]
    assert b'{"hello": [1, 40]}' in responses[0] and b"Api-Version: 1.47" in responses[0]
    assert b'{"message": "a bug"}' in responses[1] and b"Api-Version: 1.47" in responses[1]
    assert b"must be 'application/json'" in responses[2]
    assert any("RuntimeError: a bug" in line for line in logged)  # a bug is logged with its traceback


def test_chunked_stream(server):
    path, _ = server
    out = _raw(path, b"GET /numbers?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"2\r\n0\n\r\n2\r\n1\n\r\n2\r\n2\n\r\n0\r\n\r\n"


@pytest.mark.parametrize("upgrade", [True, False])
def test_hijack_with_half_close(server, upgrade):
    path, _ = server
    headers = b"Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else b""
    # Bytes sent right after the request are already the stream's.
    out = _raw(path, b"POST /echo HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\nearly ", half_close=True)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED" if upgrade else b"HTTP/1.1 200 OK")
    assert b"Content-Type: application/vnd.docker.raw-stream" in head
    assert body == b"EARLY <eof>"
