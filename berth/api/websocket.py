"""Attach over a websocket (GET /containers/{id}/attach/ws), as dockerd serves it.

dockerd hands the attach to golang.org/x/net/websocket: after the RFC 6455
handshake the container's output goes out as websocket messages, one per
chunk, without stdcopy's 8-byte headers (stdout and stderr are not told
apart), binary frames from API 1.28 on and text frames before; every
message from the client, text or binary, is stdin.  The attach itself is
the regular one (ContainersRouter's session, berth.api.sessions.relay):
this module only does the handshake and makes the websocket look like the
hijacked byte stream that session pumps.  The framing is wsproto's.
"""

from __future__ import annotations

import codecs
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, generate_accept_token

from berth.api import httpstatus
from berth.api.routing import Hijack, Request, Response

VERSION = "13"  # RFC 6455's, the only one x/net/websocket speaks
RECV_SIZE = 1 << 16


def handshake(req: Request) -> list[tuple[str, str]] | Response:
    """The 101 response's headers for a websocket request, or the 400 that refuses it."""
    upgrade = (req.headers.get("upgrade") or "").strip().lower()
    connection = (req.headers.get("connection") or "").lower()
    if upgrade != "websocket" or "upgrade" not in connection:
        return _bad_request("not a websocket request: Upgrade: websocket and Connection: Upgrade are required")
    key = (req.headers.get("sec-websocket-key") or "").strip()
    if not key:
        return _bad_request("not a websocket request: Sec-WebSocket-Key is missing")
    if (req.headers.get("sec-websocket-version") or "").strip() != VERSION:
        return _bad_request(f"unsupported websocket version: only {VERSION} is spoken here",
                            headers=[("Sec-WebSocket-Version", VERSION)])
    return [("Sec-WebSocket-Accept", generate_accept_token(key.encode("latin-1")).decode("ascii"))]


def _bad_request(message: str, headers: list[tuple[str, str]] = ()) -> Response:
    return Response(400, httpstatus.error_body(message), headers=list(headers))


def hijack(headers: list[tuple[str, str]], session: Callable[[Any], None], *, text: bool) -> Hijack:
    """Switch to the websocket protocol and run `session` over it; a Close frame ends it."""
    def run(raw) -> None:
        stream = WebSocketStream(raw, text=text)
        try:
            session(stream)
        finally:
            stream.close()
    return Hijack(run, content_type=None, upgrade="websocket", headers=headers)


class WebSocketStream:
    """The server's end of a websocket, as the byte stream an attach session pumps.

    ``recv`` gives the payloads of the client's messages (b"" once it sent
    Close or went away), ``sendall`` sends one message.  Pings are answered
    and a Close is returned, after which the socket is shut down so that
    the session sees the client gone.  One thread may receive while another
    sends.
    """

    def __init__(self, raw, *, text: bool = False):
        self.raw = raw
        self.ws = Connection(ConnectionType.SERVER)
        self._lock = threading.Lock()
        self._inbox: deque[bytes] = deque()
        self._ended = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace") if text else None

    def fileno(self) -> int:
        return self.raw.fileno()

    def recv(self, n: int = RECV_SIZE) -> bytes:
        while not self._inbox:
            if self._ended:
                return b""
            data = self.raw.recv(n)
            with self._lock:
                self._receive(data)
        data = self._inbox.popleft()
        if len(data) > n:
            data, rest = data[:n], data[n:]
            self._inbox.appendleft(rest)
        return data

    def _receive(self, data: bytes) -> None:
        if self.ws.state is ConnectionState.CLOSED:
            self._ended = True
            return
        self.ws.receive_data(data or None)
        for event in self.ws.events():
            if isinstance(event, Message):
                payload = event.data.encode() if isinstance(event, TextMessage) else bytes(event.data)
                if payload:
                    self._inbox.append(payload)
            elif isinstance(event, Ping):
                self._send(event.response())
            elif isinstance(event, CloseConnection):
                self._ended = True
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    self._send(event.response())
                elif self.ws.state is ConnectionState.OPEN:  # a frame wsproto could not parse
                    self._send(CloseConnection(code=event.code, reason=event.reason))
                self._shutdown()
                return

    def sendall(self, data: bytes) -> None:
        if self._decoder is not None:
            text = self._decoder.decode(data)
            if not text:
                return  # half a character: it goes with the next chunk
            message: Message = TextMessage(data=text)
        else:
            message = BytesMessage(data=data)
        with self._lock:
            if self.ws.state is not ConnectionState.OPEN:
                raise BrokenPipeError("the websocket is closed")
            self._send(message)

    def close(self, code: int = CloseReason.NORMAL_CLOSURE) -> None:
        """Say goodbye with a Close frame, unless the client already did (or cannot hear it)."""
        with self._lock:
            if self.ws.state is ConnectionState.OPEN:
                try:
                    self._send(CloseConnection(code=code))
                except OSError:
                    pass

    def _send(self, event) -> None:
        try:
            data = self.ws.send(event)
        except LocalProtocolError as e:
            raise BrokenPipeError(str(e)) from None
        self.raw.sendall(data)

    def _shutdown(self) -> None:
        """After the close handshake the server closes the connection first (RFC 6455, 7.1.1)."""
        try:
            self.raw.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
