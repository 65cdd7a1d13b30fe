"""The OCI distribution API of one registry, over httpx.

One seam carries every byte: a transport factory giving an httpx transport
for an endpoint (the real one speaks HTTP/1.1 with the endpoint's TLS
context and honours HTTP(S)_PROXY/NO_PROXY as Docker's daemon does).
Authentication is the `RegistryAuth` flow; failures become berth's error
categories with Docker's wording, and never carry credentials.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterator

import httpx

import berth
from berth.errors import BerthError, DataCorrupt, NotFound, Unauthorized, Unavailable
from berth.registry.auth import RegistryAuth, error_line
from berth.registry.hosts import Endpoint, system_context
from berth.registry.manifests import ACCEPT, MAX_MANIFEST_BYTES
from berth.store import digest as dg

TransportFactory = Callable[[Endpoint], httpx.BaseTransport]
USER_AGENT = f"berth/{berth.__version__}"
TIMEOUT = httpx.Timeout(120.0, connect=30.0)
READ_CHUNK = 1 << 20
# A download cut off mid-blob resumes with a Range request, as Docker's does.
RESUME_ATTEMPTS = 3
RESUME_BACKOFF = 0.5


def default_transport(endpoint: Endpoint) -> httpx.BaseTransport:
    # A plain-HTTP registry may still send clients to an HTTPS token realm.
    tls = endpoint.tls or system_context()
    proxy = None
    url = httpx.URL(endpoint.url)
    proxies = urllib.request.getproxies_environment()
    # Like Go's ProxyFromEnvironment: loopback is never proxied.
    if proxies.get(url.scheme) and not _loopback(url.host) \
            and not urllib.request.proxy_bypass_environment(url.netloc.decode(), proxies):
        proxy = httpx.Proxy(proxies[url.scheme])
    return httpx.HTTPTransport(verify=tls, proxy=proxy, retries=0,
                               limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))


_STATUS_ERRORS = {401: "unauthorized: authentication required",
                  403: "denied: requested access to the resource is denied"}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Cancelled(BerthError):
    """Another part of the same operation failed; this one stops quietly."""


@dataclass(frozen=True)
class Fetched:
    data: bytes
    media_type: str     # the Content-Type the registry sent
    digest: str         # sha256 of data, checked against the registry's header


class RegistryClient:
    """Requests to one registry for one session of scopes (see `RegistryAuth`)."""

    def __init__(self, domain: str, endpoints: list[Endpoint], auth: RegistryAuth,
                 transport_factory: TransportFactory = default_transport):
        self.domain = domain
        self.auth = auth
        self._endpoints = endpoints
        self._factory = transport_factory
        self._http: httpx.Client | None = None
        self.base = ""

    # -- session -----------------------------------------------------------------

    def open(self) -> "RegistryClient":
        """Ping /v2/ on each endpoint in turn and keep the first that answers."""
        failure: BerthError | None = None
        for endpoint in self._endpoints:
            http = httpx.Client(transport=self._factory(endpoint), timeout=TIMEOUT,
                                headers={"User-Agent": USER_AGENT})
            url = f"{endpoint.url}/v2/"
            try:
                response = http.get(url)
            except httpx.TransportError as e:
                http.close()
                failure = Unavailable(f'Get "{url}": {transport_reason(e, httpx.URL(url))}')
                continue
            if response.status_code == 401:
                self.auth.learn(response)
            elif response.status_code != 200:
                http.close()
                failure = Unavailable(f'Get "{url}": the server is not a registry '
                                      f"(it answered {response.status_code} {response.reason_phrase})")
                continue
            self._http, self.base = http, endpoint.url
            return self
        assert failure is not None
        raise failure

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> "RegistryClient":
        return self if self._http is not None else self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def authenticate(self) -> None:
        """GET /v2/ with the session's credentials, as `login` proves them."""
        url = self.url("")
        response = self._send("GET", url)
        if response.status_code == 401:
            raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")
        if response.status_code != 200:
            raise self.failure(response)

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{path}"

    def _send(self, method: str, url: str | httpx.URL, *, stream: bool = False,
              follow: bool = False, **kw) -> httpx.Response:
        assert self._http is not None, "open() the client first"
        request = self._http.build_request(method, url, **kw)
        try:
            return self._http.send(request, auth=self.auth, stream=stream, follow_redirects=follow)
        except httpx.TransportError as e:
            raise Unavailable(f'{method.capitalize()} "{_safe(request.url)}": '
                              f"{transport_reason(e, request.url)}") from None

    def failure(self, response: httpx.Response, subject: str = "") -> BerthError:
        """The error for an unexpected response; `subject` prefixes registry errors."""
        verb, url = response.request.method.capitalize(), _safe(response.request.url)
        detail = registry_errors(response)
        status = response.status_code
        if status == 401 and self.auth.missing_credentials is not None:
            return Unauthorized(f'{verb} "{url}": no basic auth credentials')
        # HEAD answers have no body; Docker names their errors by status.
        text = detail or _STATUS_ERRORS.get(status) or f"{status} {response.reason_phrase}".strip()
        if subject:
            text = f"{subject}: {text}"
        if status in (401, 403):
            return Unauthorized(text)
        if status == 404:
            return NotFound(text)
        if status == 429 or status >= 500:
            return Unavailable(text if detail else f'{verb} "{url}": {text}')
        return BerthError(text if detail else f'{verb} "{url}": unexpected status {text}')

    # -- manifests -----------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Fetched | None:
        """The manifest's bytes, or None when the registry does not know it."""
        response = self._send("GET", self.url(f"{repository}/manifests/{reference}"), stream=True,
                              headers={"Accept": ", ".join(ACCEPT)})
        try:
            if response.status_code == 404:
                response.read()
                return None
            if response.status_code != 200:
                response.read()
                raise self.failure(response)
            data = _read_limited(response, MAX_MANIFEST_BYTES, "manifest")
        finally:
            response.close()
        digest = dg.of_bytes(data)
        declared = response.headers.get("Docker-Content-Digest")
        if dg.is_digest(reference) and digest != reference:
            raise DataCorrupt(f"manifest verification failed for digest {reference}")
        if declared and dg.is_digest(declared) and declared != digest:
            raise DataCorrupt(f"manifest verification failed for digest {declared}")
        return Fetched(data, response.headers.get("Content-Type", ""), digest)

    def manifest_exists(self, repository: str, reference: str) -> str | None:
        """The digest of a manifest the registry has, by HEAD."""
        response = self._send("HEAD", self.url(f"{repository}/manifests/{reference}"),
                              headers={"Accept": ", ".join(ACCEPT)})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.failure(response)
        return response.headers.get("Docker-Content-Digest") or None

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        response = self._send("PUT", self.url(f"{repository}/manifests/{reference}"), content=data,
                              headers={"Content-Type": media_type})
        if response.status_code not in (200, 201, 202):
            raise self.failure(response)
        digest = dg.of_bytes(data)
        declared = response.headers.get("Docker-Content-Digest")
        if declared and declared != digest:
            raise DataCorrupt(f"registry stored the manifest as {declared}, expected {digest}")
        return digest

    # -- blobs ---------------------------------------------------------------------

    def blob_size(self, repository: str, digest: str) -> int | None:
        """The size of a blob the repository has (HEAD), or None."""
        response = self._send("HEAD", self.url(f"{repository}/blobs/{digest}"), follow=True)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.failure(response)
        try:
            return int(response.headers.get("Content-Length", ""))
        except ValueError:
            return -1

    def get_blob(self, repository: str, digest: str, limit: int) -> bytes:
        """A small blob (an image config), verified."""
        with self.open_blob(repository, digest, None) as reader:
            data = bytearray()
            while chunk := reader.read(READ_CHUNK):
                data += chunk
                if len(data) > limit:
                    raise DataCorrupt(f"blob {digest} is larger than {limit} bytes")
        if dg.of_bytes(bytes(data)) != digest:
            raise DataCorrupt(f"digest mismatch for blob {digest}")
        return bytes(data)

    def open_blob(self, repository: str, digest: str, size: int | None,
                  cancel: threading.Event | None = None) -> "BlobReader":
        return BlobReader(self, self.url(f"{repository}/blobs/{digest}"), digest, size, cancel)

    def start_upload(self, repository: str, mount: str | None = None,
                     source: str | None = None) -> tuple[bool, httpx.URL]:
        """POST an upload; with `mount`, ask for a cross-repository mount first.

        Returns (True, blob URL) when the registry mounted the blob, else
        (False, upload URL) for an upload session it opened.
        """
        params = {"mount": mount, "from": source} if mount and source else None
        response = self._send("POST", self.url(f"{repository}/blobs/uploads/"), params=params)
        if response.status_code == 201 and mount:
            return True, self._location(response)
        if response.status_code != 202:
            raise self.failure(response)
        return False, self._location(response)

    def upload(self, location: httpx.URL, digest: str, size: int, opener: Callable,
               on_bytes: Callable[[int], None], chunk_size: int,
               cancel: threading.Event | None = None) -> None:
        """Send a blob to an open upload session: in one PUT when it fits in
        `chunk_size` (monolithic), else in PATCH chunks and a closing PUT."""
        with opener() as f:
            if size <= chunk_size:
                response = self._send("PUT", location.copy_merge_params({"digest": digest}),
                                      content=_chunks(f, size, on_bytes, cancel),
                                      headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(size)})
                if response.status_code != 201:
                    raise self.failure(response, f"blob upload {dg.hex_of(digest)[:12]}")
                return
            offset = 0
            while offset < size:
                n = min(chunk_size, size - offset)
                response = self._send("PATCH", location, content=_chunks(f, n, on_bytes, cancel),
                                      headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(n),
                                               "Content-Range": f"{offset}-{offset + n - 1}"})
                if response.status_code != 202:
                    raise self.failure(response, f"blob upload {dg.hex_of(digest)[:12]}")
                location = self._location(response)
                offset += n
                received = response.headers.get("Range", "")
                if received and received.split("-")[-1] != str(offset - 1):
                    raise Unavailable(f"registry acknowledged {received} of blob {digest}, "
                                      f"expected 0-{offset - 1}")
            response = self._send("PUT", location.copy_merge_params({"digest": digest}),
                                  headers={"Content-Length": "0"})
            if response.status_code != 201:
                raise self.failure(response, f"blob upload {dg.hex_of(digest)[:12]}")

    def cancel_upload(self, location: httpx.URL) -> None:
        try:
            self._send("DELETE", location)
        except BerthError:
            pass

    def _location(self, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise Unavailable(f"registry answered {response.request.method} "
                              f"{_safe(response.request.url)} without a Location")
        return response.request.url.join(location)

    # -- listings --------------------------------------------------------------------

    def _paged(self, path: str, key: str, page: int = 100) -> Iterator[str]:
        url: httpx.URL | str = self.url(path)
        params: dict | None = {"n": page}
        while url:
            response = self._send("GET", url, params=params)
            if response.status_code != 200:
                raise self.failure(response)
            body = response.json() if response.content else {}
            yield from (x for x in (body.get(key) or []) if isinstance(x, str))
            link = response.headers.get("Link", "")
            url, params = "", None
            if 'rel="next"' in link and "<" in link:
                url = response.request.url.join(link[link.index("<") + 1:link.index(">")])

    def tags(self, repository: str) -> list[str]:
        return list(self._paged(f"{repository}/tags/list", "tags"))

    def catalog(self) -> Iterator[str]:
        return self._paged("_catalog", "repositories")

    def search_v1(self, base: str, term: str, limit: int) -> dict | None:
        """The v1 search API at `base`; None where the server does not offer it."""
        response = self._send("GET", f"{base}/v1/search", params={"q": term, "n": limit})
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            raise self.failure(response)
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


class BlobReader:
    """A blob's bytes as a forward-only stream; resumes with Range after a cut."""

    def __init__(self, client: RegistryClient, url: str, digest: str, size: int | None,
                 cancel: threading.Event | None):
        self._client = client
        self._url = url
        self._digest = digest
        self._size = size
        self._cancel = cancel
        self.offset = 0
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] = iter(())
        self._pending = b""
        self._open()

    def _open(self) -> None:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        response = self._client._send("GET", self._url, stream=True, follow=True, headers=headers)
        if self.offset and response.status_code != 206:
            response.close()
            raise Unavailable(f"download of {self._digest} was cut at byte {self.offset} and "
                              "the registry cannot resume it")
        if response.status_code not in (200, 206):
            response.read()
            if response.status_code == 404:
                raise NotFound(f"blob {self._digest} not found: "
                               f"{registry_errors(response) or 'blob unknown: blob unknown to registry'}")
            raise self._client.failure(response, f"fetching blob {self._digest}")
        self._response = response
        self._chunks = response.iter_bytes()

    def read(self, n: int = -1) -> bytes:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled("cancelled")
        if not self._pending:
            self._pending = self._next()
        if n is None or n < 0 or n >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:n], self._pending[n:]
        return data

    def _next(self) -> bytes:
        attempts = 0
        while True:
            try:
                chunk = next(self._chunks, b"")
            except httpx.TransportError as e:
                self.close()
                attempts += 1
                if attempts > RESUME_ATTEMPTS or (self._size is not None and self.offset >= self._size):
                    raise Unavailable(f'Get "{_safe(httpx.URL(self._url))}": '
                                      f"{transport_reason(e, httpx.URL(self._url))}") from None
                time.sleep(RESUME_BACKOFF * attempts)
                self._open()
                continue
            self.offset += len(chunk)
            return chunk

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _chunks(f, n: int, on_bytes: Callable[[int], None], cancel: threading.Event | None) -> Iterator[bytes]:
    remaining = n
    while remaining > 0:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        data = f.read(min(READ_CHUNK, remaining))
        if not data:
            raise DataCorrupt("blob is shorter than its recorded size")
        remaining -= len(data)
        on_bytes(len(data))
        yield data


def _read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > limit:
            raise DataCorrupt(f"{what} is larger than {limit} bytes")
    return bytes(data)


def registry_errors(response: httpx.Response) -> str:
    """The registry's error list, `code: message` joined, or empty."""
    try:
        response.read()
        body = response.json()
    except (ValueError, httpx.HTTPError):
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    return "; ".join(error_line(e) for e in errors if isinstance(e, dict))


def _safe(url: httpx.URL) -> str:
    """A URL fit for a message: no userinfo, no upload state tokens."""
    return str(url.copy_with(username=None, password=None, query=None))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def transport_reason(exc: httpx.TransportError, url: httpx.URL) -> str:
    """Why a connection failed, in Go's words as Docker prints them."""
    port = url.port or (443 if url.scheme == "https" else 80)
    hostport = f"{url.host}:{port}"
    for e in _causes(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            code = getattr(e, "verify_code", 0)
            if code == 62:
                return f"tls: failed to verify certificate: x509: certificate is not valid for {url.host}"
            if code in (9, 10):
                return "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
            return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        if isinstance(e, ssl.SSLError):
            text = str(e).upper()
            if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text or "HTTP_REQUEST" in text \
                    or "PACKET_LENGTH_TOO_LONG" in text:
                return "http: server gave HTTP response to HTTPS client"
            if "CERTIFICATE_REQUIRED" in text or "BAD_CERTIFICATE" in text:
                return "remote error: tls: certificate required"
            return f"tls: {getattr(e, 'reason', None) or e}".lower()
        if isinstance(e, socket.gaierror):
            if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                return f"dial tcp: lookup {url.host}: no such host"
            return f"dial tcp: lookup {url.host}: {str(e.strerror or e).lower()}"
        if isinstance(e, ConnectionRefusedError):
            return f"dial tcp {hostport}: connect: connection refused"
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"dial tcp {hostport}: connect: {'network' if e.errno == errno.ENETUNREACH else 'host'} is unreachable"
        if isinstance(e, ConnectionResetError):
            return f"read tcp {hostport}: read: connection reset by peer"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"dial tcp {hostport}: i/o timeout"
    if isinstance(exc, httpx.TimeoutException):
        return "net/http: timeout awaiting response headers"
    text = str(exc)
    # httpcore words its own failures; some name the SSL error as text only.
    if "WRONG_VERSION_NUMBER" in text.upper() or "RECORD LAYER FAILURE" in text.upper():
        return "http: server gave HTTP response to HTTPS client"
    return text or type(exc).__name__
