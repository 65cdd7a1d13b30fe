"""The daemon's HTTP server: h11 over threads, one per connection.

Why h11 and threads rather than aiohttp: every engine call blocks (sqlite,
subprocesses, flock, the supervisor's socket), so an event loop would push
nearly all work into executor threads anyway; and attach/exec must take
over the connection's socket (Docker's hijack), which is a plain socket
here.  h11 is a pure HTTP/1.1 state machine with no I/O of its own, so the
server owns its sockets, and a hijacking handler gets the socket with the
bytes h11 had already buffered.
"""

from __future__ import annotations

import io
import os
import re
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

from berth.api import httpstatus
from berth.api.routing import (JSON, Headers, Hijack, MethodNotAllowed, Query, Request, Response, Router,
                               StreamResponse)
from berth.errors import BerthError, InvalidArgument

MAX_HEADER_BYTES = 1 << 20      # X-Registry-Config can carry many registries' credentials
RECV_SIZE = 1 << 16
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


class Application:
    """What every request goes through: version check, routing, error mapping."""

    def __init__(self, router: Router, *, api_version: str, min_api_version: str, server: str,
                 log: Callable[[str], None] = lambda line: None, debug: bool = False):
        self.router = router
        self.debug = debug
        self.api_version = api_version
        self.min_api_version = min_api_version
        self.max = parse_version(api_version)
        self.min = parse_version(min_api_version)
        self.log = log
        # moby's version middleware sets these on every response, errors included.
        self.common_headers = [("Api-Version", api_version), ("Server", server), ("Ostype", "linux"),
                               ("Docker-Experimental", "false")]

    def split_version(self, path: str) -> tuple[tuple[int, int], str]:
        m = _VERSIONED.match(path)
        if m is None:
            return self.max, path
        version = (int(m.group(1)), int(m.group(2)))
        shown = f"{m.group(1)}.{m.group(2)}"
        if version > self.max:
            raise InvalidArgument(f"client version {shown} is too new. Maximum supported API version "
                                  f"is {self.api_version}")
        if version < self.min:
            raise InvalidArgument(f"client version {shown} is too old. Minimum supported API version "
                                  f"is {self.min_api_version}, please upgrade your client to a newer version")
        return version, m.group(3)

    def handle(self, request: Request) -> Response | StreamResponse | Hijack:
        try:
            request.version, request.path = self.split_version(request.path)
            handler, params = self.router.match(request.method, request.path)
            request.params = {k: unquote(v) for k, v in params.items()}
            return handler(request)
        except MethodNotAllowed:
            return Response(405, httpstatus.error_body("method not allowed"))
        except Exception as e:  # noqa: BLE001 - every failure becomes a status, bugs included
            return self.error_response(e, request)

    def error_response(self, error: BaseException, request: Request | None = None) -> Response:
        status = httpstatus.status_for(error)
        if status >= 500 and not isinstance(error, (BerthError, OSError)):
            import traceback
            self.log("".join(traceback.format_exception(error)).rstrip())  # a bug: show where
        elif request is not None and (status >= 500 or self.debug):
            self.log(f"{request.method} {request.path}: {status} {httpstatus.message_for(error)}")
        return Response(status, httpstatus.error_body(httpstatus.message_for(error)))


class _Body(io.RawIOBase):
    """The request body, read from the connection as the handler consumes it."""

    def __init__(self, conn: "HttpConnection"):
        self._conn = conn
        self._buf = b""
        self._done = False

    def readable(self) -> bool:
        return True

    @property
    def finished(self) -> bool:
        return self._done and not self._buf

    def readinto(self, b) -> int:
        while not self._buf and not self._done:
            event = self._conn.next_body_event()
            if isinstance(event, h11.Data):
                self._buf = bytes(event.data)
            else:
                self._done = True
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def drain(self, limit: int) -> bool:
        """Skip what the handler left unread; False when more than `limit` bytes remain."""
        skipped = 0
        while not self._done:
            skipped += len(self._buf)
            self._buf = b""
            if skipped > limit:
                return False
            self.readinto(bytearray(RECV_SIZE))
        return True


class RawStream:
    """A hijacked connection: bytes in both directions, no HTTP any more."""

    def __init__(self, sock: socket.socket, pending: bytes):
        self.sock = sock
        self._pending = pending
        self._send_lock = threading.Lock()

    def recv(self, n: int = RECV_SIZE) -> bytes:
        """Bytes from the client; b"" once it closed its sending side (or the connection)."""
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        try:
            return self.sock.recv(n)
        except (OSError, ssl.SSLError):
            return b""

    def sendall(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def close(self) -> None:
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                self.sock.unwrap()
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError, ssl.SSLError):
            pass
        self.sock.close()


class HttpConnection:
    def __init__(self, sock: socket.socket, app: Application):
        self.sock = sock
        self.app = app
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)

    # -- reading -----------------------------------------------------------------------

    def _next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = self.sock.recv(RECV_SIZE)
            except (ConnectionError, ssl.SSLError, TimeoutError):
                data = b""
            self.h11.receive_data(data)

    def next_body_event(self):
        if self.h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        event = self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            raise InvalidArgument("unexpected EOF: the client closed the connection mid-body")
        return event

    def peer_gone(self) -> bool:
        """Whether the client has closed its end, seen without reading (TLS or not)."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLRDHUP)
        return any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                   for _, events in poller.poll(0))

    # -- writing -----------------------------------------------------------------------

    def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.sock.sendall(data)

    def _headers(self, content_type: str | None, extra, length: int | None = None) -> list:
        headers = list(self.app.common_headers) + list(extra)
        if content_type:
            headers.append(("Content-Type", content_type))
        if length is not None:
            headers.append(("Content-Length", str(length)))
        return headers

    def _respond(self, request: Request, response: Response) -> None:
        no_body = response.status in (204, 304) or response.status < 200
        body = b"" if no_body else response.body
        length = None if no_body else len(body)
        self._send(h11.Response(status_code=response.status, reason=httpstatus.reason(response.status),
                                headers=self._headers(response.content_type if not no_body else None,
                                                      response.headers, length)))
        if body and request.method != "HEAD":
            self._send(h11.Data(data=body))
        self._send(h11.EndOfMessage())

    def _stream(self, request: Request, response: StreamResponse) -> None:
        chunks: Iterator[bytes] = iter(response.chunks)
        first = b""
        try:
            if response.prime:
                try:
                    first = next(chunks)
                except StopIteration:
                    pass
                except Exception as e:  # noqa: BLE001 - nothing sent yet: an HTTP error
                    self._respond(request, self.app.error_response(e, request))
                    return
            self._send(h11.Response(status_code=response.status, reason=httpstatus.reason(response.status),
                                    headers=self._headers(response.content_type, response.headers)))
            if request.method == "HEAD":
                self._send(h11.EndOfMessage())
                return
            if first:
                self._send(h11.Data(data=first))
            try:
                for chunk in chunks:
                    if chunk:
                        self._send(h11.Data(data=chunk))
            except (BerthError, OSError) as e:
                if _peer_gone(e):
                    raise
                # The status is sent: the stream just ends (as dockerd's do when
                # the container goes away under `logs -f`).
                if self.app.debug:
                    self.app.log(f"{request.method} {request.path}: stream ended: {httpstatus.message_for(e)}")
            self._send(h11.EndOfMessage())
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _hijack(self, request: Request, hijack: Hijack) -> None:
        upgrade = "upgrade" in (request.headers.get("connection") or "").lower()
        status = "200 OK"
        if upgrade:
            status = "101 UPGRADED" if hijack.upgrade == "tcp" else "101 Switching Protocols"
        lines = [f"HTTP/1.1 {status}"] + ([f"Content-Type: {hijack.content_type}"] if hijack.content_type else [])
        if upgrade:
            lines += ["Connection: Upgrade", f"Upgrade: {hijack.upgrade}"]
        lines += [f"{k}: {v}" for k, v in [*hijack.headers, *self.app.common_headers]]
        pending, _closed = self.h11.trailing_data
        stream = RawStream(self.sock, bytes(pending))
        try:
            stream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            hijack.session(stream)
        finally:
            stream.close()

    # -- the loop ------------------------------------------------------------------------

    def serve(self) -> None:
        try:
            while True:
                event = self._next_event()
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed, or a protocol switch we did not offer
                if not self._one(event):
                    return
                if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                    return
                self.h11.start_next_cycle()
        except h11.RemoteProtocolError as e:
            self._bad_request(e)
        except (OSError, ssl.SSLError):
            pass  # the client went away
        except Exception as e:  # noqa: BLE001 - a bug: logged, and only this connection ends
            import traceback
            self.app.log("".join(traceback.format_exception(e)).rstrip())
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _bad_request(self, error: h11.RemoteProtocolError) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            self._send(h11.Response(status_code=error.error_status_hint,
                                    headers=self._headers(JSON, [], len(httpstatus.error_body(str(error))))))
            self._send(h11.Data(data=httpstatus.error_body(str(error))))
            self._send(h11.EndOfMessage())
        except (h11.LocalProtocolError, OSError):
            pass

    def _one(self, event: h11.Request) -> bool:
        """Answer one request; False when the connection is finished."""
        target = event.target.decode("latin-1")
        parts = urlsplit(target)
        body = _Body(self)
        request = Request(method=event.method.decode("ascii").upper(), path=parts.path or "/",
                          version=self.app.max, query=Query(parse_qsl(parts.query, keep_blank_values=True)),
                          headers=Headers(event.headers), body=io.BufferedReader(body, RECV_SIZE),
                          disconnected=self.peer_gone)
        started = time.monotonic()
        result = self.app.handle(request)
        if self.app.debug:
            status = result.status if not isinstance(result, Hijack) else "hijacked"
            self.app.log(f"{request.method} {target} {status} {(time.monotonic() - started) * 1000:.1f}ms")
        if isinstance(result, Hijack):
            # Whatever the client sent after the request's body is already stdin.
            if not body.drain(limit=1 << 20):
                self._respond(request, self.app.error_response(InvalidArgument("request body too large")))
                return False
            self._hijack(request, result)
            return False
        if isinstance(result, StreamResponse):
            self._stream(request, result)
        else:
            self._respond(request, result)
        # Keep the connection only if what the handler left of the body is small.
        return body.drain(limit=1 << 20)


def _peer_gone(error: OSError) -> bool:
    return isinstance(error, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError))


class ApiServer:
    """Accepts connections on the daemon's listeners, one thread per connection."""

    def __init__(self, app: Application, listeners: list[socket.socket],
                 tls: ssl.SSLContext | None = None):
        self.app = app
        self.listeners = listeners
        self.tls = tls
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._pid = os.getpid()

    def serve_forever(self) -> None:
        sel = selectors.DefaultSelector()
        for listener in self.listeners:
            listener.setblocking(False)
            sel.register(listener, selectors.EVENT_READ)
        sel.register(self._stop_r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in sel.select():
                    if key.fileobj == self._stop_r:
                        return
                    try:
                        sock, _addr = key.fileobj.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    sock.setblocking(True)
                    thread = threading.Thread(target=self._serve_one, args=(sock,), daemon=True,
                                              name="berth-api-conn")
                    thread.start()
        finally:
            sel.close()

    def _serve_one(self, sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                sock.settimeout(30)
                sock = self.tls.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                self.app.log(f"TLS handshake failed: {e}")
                sock.close()
                return
        HttpConnection(sock, self.app).serve()

    def shutdown(self) -> None:
        """Stop accepting (safe from a signal handler or another thread)."""
        if os.getpid() != self._pid:
            # A child forked by library code (pyroute2 forks to enter network
            # namespaces) inherits our signal handlers and this pipe; its
            # SIGTERM must not stop the daemon.
            return
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass
