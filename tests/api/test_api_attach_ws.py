"""GET /containers/{id}/attach/ws: the attach over an RFC 6455 websocket, driven
by wsproto's client over the daemon's unix socket (output as unframed
messages, binary from API 1.28 on; client messages are stdin)."""

from __future__ import annotations

import json
import socket
import time

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Message, RejectConnection, Request,
                            TextMessage)

from apitest import wait_for

TIMEOUT = 20  # every read: a test never hangs longer


class WsClient:
    """One websocket to the daemon; `events` are what it sent since the handshake."""

    def __init__(self, api, target: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(api.socket)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="berth", target=target)))
        self.pending: list = []
        self.closed: CloseConnection | None = None   # the daemon's Close, once it came
        self.handshake = self._next()
        self.reject_body = b""
        if isinstance(self.handshake, RejectConnection) and self.handshake.has_body:
            while True:
                data = self._next()
                self.reject_body += data.data
                if data.body_finished:
                    break

    def _next(self):
        """The next event from the daemon (it must come within TIMEOUT)."""
        deadline = time.monotonic() + TIMEOUT
        while not self.pending:
            assert time.monotonic() < deadline, "the daemon sent nothing in time"
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def read_until(self, needle: bytes, *, kind: type = BytesMessage) -> bytes:
        """The output received until `needle` shows (or the daemon closes)."""
        got = b""
        while needle not in got and self.closed is None:
            got += self.receive(kind)
        return got

    def read_to_close(self, kind: type = BytesMessage) -> bytes:
        got = b""
        while self.closed is None:
            got += self.receive(kind)
        return got

    def receive(self, kind: type = BytesMessage) -> bytes:
        event = self._next()
        if isinstance(event, CloseConnection):
            self.closed = event
            if self.ws.state.name == "REMOTE_CLOSING":
                try:
                    self.sock.sendall(self.ws.send(event.response()))
                except OSError:
                    pass  # the daemon may close the connection right after its Close
            return b""
        assert isinstance(event, Message), event
        assert isinstance(event, kind), f"{type(event).__name__}, expected {kind.__name__}"
        return event.data.encode() if isinstance(event, TextMessage) else bytes(event.data)

    def close(self) -> None:
        self.sock.close()


def _create(api, name: str, cmd: list[str], **config) -> str:
    r = api.request("POST", f"/containers/create?name={name}",
                    {"Image": "busybox", "Cmd": cmd, "HostConfig": {"NetworkMode": "none"}, **config})
    assert r.status == 201, r
    return r.json()["Id"]


def _running_cat(api, name: str = "cat") -> None:
    _create(api, name, ["cat"], OpenStdin=True, AttachStdin=True)
    assert api.request("POST", f"/containers/{name}/start").status == 204


def _running(api, name: str) -> bool:
    return api.request("GET", f"/containers/{name}/json").json()["State"]["Running"]


def test_stdin_echoed_back_and_close_leaves_it_running(api):
    _running_cat(api)
    client = WsClient(api, "/v1.47/containers/cat/attach/ws?stdin=1&stdout=1&stream=1")
    try:
        assert isinstance(client.handshake, AcceptConnection), client.handshake  # wsproto checked the accept key
        client.send(b"over the websocket\n")
        assert client.read_until(b"over the websocket\n") == b"over the websocket\n"  # no stdcopy header
        client.sock.sendall(client.ws.send(CloseConnection(code=1000)))
        assert client.read_to_close() == b""
        assert client.closed.code == 1000  # the daemon answered the Close
        assert client.sock.recv(1) == b""  # and closed the connection
    finally:
        client.close()
    assert _running(api, "cat")  # the client leaving does not stop the container
    assert api.request("POST", "/containers/cat/kill").status == 204


def test_output_after_the_attach_then_close_at_exit(api):
    _create(api, "late", ["sh", "-c", "echo on stdout; echo on stderr >&2"])
    client = WsClient(api, "/containers/late/attach/ws?stdout=1&stderr=1&stream=1")
    try:
        assert isinstance(client.handshake, AcceptConnection), client.handshake
        assert api.request("POST", "/containers/late/start").status == 204  # attached before the start
        out = client.read_to_close()
        assert sorted(out.splitlines()) == [b"on stderr", b"on stdout"]  # both streams, not multiplexed
        assert client.closed.code == 1000
    finally:
        client.close()
    assert api.request("POST", "/containers/late/wait").json()["StatusCode"] == 0


def test_logs_replay_binary_and_old_text_frames(api):
    _create(api, "said", ["sh", "-c", "echo earlier; echo problem >&2"])
    assert api.request("POST", "/containers/said/start").status == 204
    api.request("POST", "/containers/said/wait")
    client = WsClient(api, "/containers/said/attach/ws?logs=1&stdout=1")
    try:
        assert client.read_to_close() == b"earlier\n"  # stdout only, as asked
    finally:
        client.close()
    # Before API 1.42 every stream is attached whatever the query says, and
    # before 1.28 dockerd's output frames are text frames.
    client = WsClient(api, "/v1.27/containers/said/attach/ws?logs=1")
    try:
        assert sorted(client.read_to_close(kind=TextMessage).splitlines()) == [b"earlier", b"problem"]
    finally:
        client.close()


def test_detach_keys_end_the_session_only(api):
    _running_cat(api)
    client = WsClient(api, "/containers/cat/attach/ws?stdin=1&stdout=1&stream=1&detachKeys=ctrl-x")
    try:
        client.send(b"echoed\n")
        assert client.read_until(b"echoed\n") == b"echoed\n"
        client.send(b"\x18")  # ctrl-x: the daemon ends the session with a Close
        assert client.read_to_close() == b""
        assert client.closed.code == 1000
    finally:
        client.close()
    assert _running(api, "cat")
    assert api.request("POST", "/containers/cat/kill").status == 204
    wait_for(lambda: not _running(api, "cat"), timeout=TIMEOUT)


def _refused(api, target: str) -> tuple[int, bytes]:
    """A handshake the daemon refuses: its status and (JSON) body."""
    client = WsClient(api, target)
    client.close()
    assert isinstance(client.handshake, RejectConnection), client.handshake
    return client.handshake.status_code, client.reject_body


def test_unknown_container_is_404(api):
    status, body = _refused(api, "/containers/nosuch/attach/ws?stream=1&stdout=1")
    assert status == 404 and json.loads(body) == {"message": "No such container: nosuch"}


def test_not_a_websocket_request_is_400(api):
    _create(api, "plain", ["true"])
    r = api.request("GET", "/containers/plain/attach/ws?stream=1&stdout=1")
    assert r.status == 400 and r.headers["content-type"] == "application/json"
    assert "websocket" in r.json()["message"]
    r = api.request("GET", "/containers/plain/attach/ws?stream=1", headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "8"})
    assert r.status == 400 and r.headers["sec-websocket-version"] == "13"


def test_paused_container_is_409(api):
    _running_cat(api)
    assert api.request("POST", "/containers/cat/pause").status == 204
    status, body = _refused(api, "/containers/cat/attach/ws?stream=1&stdout=1")
    assert status == 409 and json.loads(body)["message"].endswith("is paused, unpause the container before attach")
    assert api.request("POST", "/containers/cat/unpause").status == 204
    assert api.request("POST", "/containers/cat/kill").status == 204
