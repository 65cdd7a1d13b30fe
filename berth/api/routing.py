"""Requests, responses and the route table of the Engine API.

A route group (containers, images, ...) is a class with ``routes()``
returning `Route`s; each handler takes a `Request` and returns one of the
response kinds below.  Handlers only translate HTTP into engine calls and
engine results into Docker's JSON: errors are raised as berth.errors and
become statuses in berth.api.httpstatus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from berth.errors import InvalidArgument, NotFound

JSON = "application/json"
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
TAR = "application/x-tar"

_FALSE = {"", "0", "no", "false", "none"}


class Query:
    """A request's query string: every value of a key kept, as url.Values."""

    def __init__(self, pairs: Iterable[tuple[str, str]]):
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self._values.get(key)
        return values[0] if values else default

    def all(self, key: str) -> list[str]:
        return list(self._values.get(key, []))

    def bool(self, key: str, default: bool = False) -> bool:
        """moby's BoolValue: absent is the default; "", 0, no, false and none are false."""
        if key not in self._values:
            return default
        return self._values[key][0].strip().lower() not in _FALSE

    def int(self, key: str, default: int | None = None) -> int | None:
        value = self.get(key)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value for {key}: {value!r} is not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        """The `filters` parameter: {"key": {"value": true}} or the old {"key": ["value"]}."""
        text = self.get("filters")
        if not text:
            return {}
        try:
            raw = json.loads(text)
        except ValueError:
            raise InvalidArgument(f"invalid filter: {text}") from None
        if not isinstance(raw, dict):
            raise InvalidArgument(f"invalid filter: {text}")
        out: dict[str, list[str]] = {}
        for key, values in raw.items():
            if isinstance(values, dict):
                out[key] = [v for v, on in values.items() if on]
            elif isinstance(values, list):
                out[key] = [str(v) for v in values]
            else:
                raise InvalidArgument(f"invalid filter: {text}")
        return out

    def json(self, key: str, default: Any = None) -> Any:
        """A parameter carrying JSON (buildargs, labels)."""
        text = self.get(key)
        if not text:
            return default
        try:
            return json.loads(text)
        except ValueError:
            raise InvalidArgument(f"invalid JSON in query parameter {key}: {text}") from None


class Headers:
    """Case-insensitive request headers (the last of repeated ones wins)."""

    def __init__(self, pairs: Iterable[tuple[bytes, bytes]]):
        self._values = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in pairs}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values


@dataclass
class Request:
    method: str
    path: str                  # without the /v1.NN prefix
    version: tuple[int, int]   # the API version this request speaks
    query: Query
    headers: Headers
    body: BinaryIO
    params: dict[str, str] = field(default_factory=dict)
    # Whether the client has hung up: a stream that waits for something to
    # send (events, logs -f) ends when it has, instead of holding a thread.
    disconnected: Callable[[], bool] = lambda: False

    def version_at_least(self, major: int, minor: int) -> bool:
        return self.version >= (major, minor)

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length")
        if length is not None:
            return length.strip() not in ("", "0")
        return "chunked" in (self.headers.get("transfer-encoding") or "").lower()

    def json(self, *, required: bool = False) -> dict:
        """The JSON body, as moby's CheckForJSON and decoder: an empty body is {}."""
        if not self.has_body:
            if required:
                raise InvalidArgument("request body is required")
            return {}
        content_type = (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != JSON:
            raise InvalidArgument(f"unsupported Content-Type header ({content_type}): "
                                  "must be 'application/json'")
        data = self.body.read()
        if not data.strip():
            if required:
                raise InvalidArgument("request body is required")
            return {}
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"invalid JSON: {e}") from None
        if not isinstance(value, dict):
            raise InvalidArgument("invalid JSON: the request body must be a JSON object")
        return value


@dataclass
class Response:
    """A whole response body, sent with Content-Length."""
    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class StreamResponse:
    """A body sent as it is produced (chunked): logs, events, progress, archives.

    With ``prime`` the first chunk is produced before the status is sent,
    so a failure before any output is still an HTTP error (moby checks
    whether its flushing writer has flushed); afterwards a handler reports
    failures in-band.
    """
    chunks: Iterator[bytes]
    content_type: str | None = JSON
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    prime: bool = False


@dataclass
class Hijack:
    """Take over the connection (attach, exec start).

    The server answers ``101 UPGRADED`` when the client asked to upgrade,
    else ``200 OK``, with ``content_type``, then calls ``session`` with the
    raw stream and closes the connection when it returns.  Another
    ``upgrade`` than Docker's ``tcp`` (a websocket) is answered ``101
    Switching Protocols`` with ``headers`` (its handshake's) added.
    """
    session: Callable[[Any], None]
    content_type: str | None = RAW_STREAM
    upgrade: str = "tcp"
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status=status, body=json_body(value))


def no_content() -> Response:
    return Response(status=204, body=b"", content_type=None)


def not_modified() -> Response:
    return Response(status=304, body=b"", content_type=None)


def json_lines(messages: Iterable[dict]) -> Iterator[bytes]:
    for message in messages:
        yield json_body(message)


Handler = Callable[[Request], "Response | StreamResponse | Hijack"]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str      # "/containers/{name}/json"; {name:.*} may span slashes
    handler: Handler


_PARAM = re.compile(r"\{(\w+)(?::([^}]*))?\}")


def _compile(pattern: str) -> re.Pattern:
    out, pos = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{'.+' if m.group(2) == '.*' else '[^/]+'})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + "/?$")


class MethodNotAllowed(Exception):
    pass


class Router:
    """Matches (method, path) to a handler; moby's mux in a few lines."""

    def __init__(self, routes: Iterable[Route] = ()):
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        for route in routes:
            self.add(route)

    def add(self, route: Route) -> None:
        self._routes.append((route.method, _compile(route.pattern), route.handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        path_matched = False
        for route_method, regex, handler in self._routes:
            m = regex.match(path)
            if m is None:
                continue
            path_matched = True
            if route_method == method or (method == "HEAD" and route_method == "GET"
                                          and not self._has(method, path)):
                return handler, m.groupdict()
        if path_matched:
            raise MethodNotAllowed(method)
        raise NotFound("page not found")

    def _has(self, method: str, path: str) -> bool:
        return any(m == method and regex.match(path) for m, regex, _ in self._routes)
