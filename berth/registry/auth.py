"""Registry authentication as an httpx auth flow: a generator over requests.

A request goes out with whatever the registry asked for last time (so
streamed bodies are not refused halfway); a 401 answer names a scheme in
WWW-Authenticate.  Basic sends the credentials; Bearer first fetches a
token for this session's scopes from the realm (yielding that request
through the same transport), caches it until it expires, then retries.
Credentials never appear in reprs or error messages.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Generator, Sequence

import httpx

from berth.errors import Unauthorized

# Docker keeps a token at least this long even if the server says less.
MIN_TOKEN_SECONDS = 60
# Tokens are dropped a little early so none expires on its way to the registry.
EXPIRY_MARGIN = 5
CLIENT_ID = "berth"


@dataclass(frozen=True)
class Challenge:
    scheme: str                          # lower case: "basic", "bearer"
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_challenges(values: Sequence[str]) -> list[Challenge]:
    """Every challenge in WWW-Authenticate headers (RFC 7235 syntax)."""
    out: list[Challenge] = []
    for value in values:
        i, n, current = 0, len(value), None
        while i < n:
            while i < n and value[i] in " \t,":
                i += 1
            m = _TOKEN.match(value, i)
            if not m:
                break   # not RFC 7235: keep what was understood
            name, i = m.group(0), m.end()
            j = i
            while j < n and value[j] in " \t":
                j += 1
            if j < n and value[j] == "=":
                j += 1
                while j < n and value[j] in " \t":
                    j += 1
                quoted, token = _QUOTED.match(value, j), _TOKEN.match(value, j)
                if quoted:
                    param, i = re.sub(r"\\(.)", r"\1", quoted.group(1)), quoted.end()
                elif token:
                    param, i = token.group(0), token.end()
                else:   # a token68's padding ("abc=="), not a parameter
                    while j < n and value[j] == "=":
                        j += 1
                    i = j
                    continue
                if current is not None:
                    current.params[name.lower()] = param
            else:
                current = Challenge(name.lower(), {})
                out.append(current)
    return out


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)   # an OAuth2 refresh token

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)

    def basic_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


class TokenCache:
    """Bearer tokens by (realm, service, scopes, account), shared by sessions."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[tuple, tuple[str, float]] = {}

    def get(self, key: tuple) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
            if found is None or found[1] <= self._clock():
                self._tokens.pop(key, None)
                return None
            return found[0]

    def put(self, key: tuple, token: str, lifetime: float) -> None:
        with self._lock:
            self._tokens[key] = (token, self._clock() + max(lifetime, MIN_TOKEN_SECONDS) - EXPIRY_MARGIN)

    def drop(self, key: tuple) -> None:
        with self._lock:
            self._tokens.pop(key, None)


def scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


class RegistryAuth(httpx.Auth):
    """Authenticates one session's requests to one registry for fixed scopes."""

    def __init__(self, credentials: Credentials | None, scopes: Sequence[str], tokens: TokenCache):
        self.credentials = credentials if credentials and not credentials.empty else None
        self.scopes = tuple(sorted(set(scopes)))
        self._tokens = tokens
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        # Set when a request was refused for lack of credentials a scheme needs.
        self.missing_credentials: Challenge | None = None

    def learn(self, response: httpx.Response) -> None:
        """Remember the challenge of a 401 (the ping's), to authenticate up front."""
        challenge = _preferred(response)
        if challenge is not None:
            with self._lock:
                self._challenges[response.request.url.netloc.decode()] = challenge

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        host = request.url.netloc.decode()
        with self._lock:
            known = self._challenges.get(host)
        if known is not None:
            header = yield from self._authorization(known)
            if header:
                request.headers["Authorization"] = header
        response = yield request
        if response.status_code != 401:
            return
        challenge = _preferred(response)
        if challenge is None:
            return
        if not isinstance(request.stream, httpx.ByteStream):
            with self._lock:
                self._challenges[host] = challenge
            return  # a streamed body cannot be sent twice
        if known is not None and known.scheme == challenge.scheme and known.realm == challenge.realm:
            if challenge.scheme != "bearer":
                return  # the credentials were refused; the caller reports the 401
            # A cached token the registry no longer takes: fetch a fresh one, once.
            self._tokens.drop(self._token_key(challenge))
        with self._lock:
            self._challenges[host] = challenge
        sent = request.headers.get("Authorization")
        header = yield from self._authorization(challenge)
        if not header or header == sent:
            return
        request.headers["Authorization"] = header
        yield request

    def _authorization(self, challenge: Challenge) -> Generator[httpx.Request, httpx.Response, str | None]:
        if challenge.scheme == "basic":
            if self.credentials is None or not self.credentials.username:
                self.missing_credentials = challenge
                return None
            return self.credentials.basic_header()
        if challenge.scheme != "bearer" or not challenge.realm:
            return None
        service = challenge.params.get("service", "")
        key = self._token_key(challenge)
        token = self._tokens.get(key)
        if token is None:
            response = yield self._token_request(challenge.realm, service)
            response.read()
            if self.credentials and self.credentials.identity_token and response.status_code == 404:
                # Servers without OAuth2 support: the basic flow with the token as password.
                response = yield self._token_request(challenge.realm, service, oauth=False)
                response.read()
            token, lifetime = _token_of(response)
            self._tokens.put(key, token, lifetime)
        return "Bearer " + token

    def _token_key(self, challenge: Challenge) -> tuple:
        account = self.credentials.username if self.credentials else ""
        return (challenge.realm, challenge.params.get("service", ""), self.scopes, account)

    def _token_request(self, realm: str, service: str, oauth: bool = True) -> httpx.Request:
        creds = self.credentials
        if creds and creds.identity_token and oauth:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": service, "client_id": CLIENT_ID, "access_type": "offline"}
            if self.scopes:
                form["scope"] = " ".join(self.scopes)
            return httpx.Request("POST", realm, data=form)
        params = [("service", service)] if service else []
        params += [("scope", s) for s in self.scopes]
        headers = {}
        if creds is not None:
            if creds.username:
                params.append(("account", creds.username))
            secret = creds.password or creds.identity_token
            headers["Authorization"] = Credentials(creds.username, secret).basic_header()
        return httpx.Request("GET", realm, params=params, headers=headers)


def _preferred(response: httpx.Response) -> Challenge | None:
    found = parse_challenges(response.headers.get_list("www-authenticate"))
    for scheme in ("bearer", "basic"):
        for c in found:
            if c.scheme == scheme:
                return c
    return None


def _token_of(response: httpx.Response) -> tuple[str, float]:
    realm = str(response.request.url.copy_with(query=None))
    verb = response.request.method.capitalize()
    if response.status_code != 200:
        detail = _error_text(response)
        if response.status_code in (401, 403):
            if not detail.startswith(("unauthorized", "denied")):
                detail = "unauthorized: " + (detail or "incorrect username or password")
            raise Unauthorized(f'{verb} "{realm}": {detail}')
        raise Unauthorized(f'{verb} "{realm}": token server answered {response.status_code}'
                           + (f": {detail}" if detail else ""))
    try:
        body = response.json()
    except ValueError:
        raise Unauthorized(f'{verb} "{realm}": token server sent no JSON') from None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise Unauthorized(f'{verb} "{realm}": token server sent no token')
    lifetime = body.get("expires_in")
    return token, float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else MIN_TOKEN_SECONDS


def _error_text(response: httpx.Response) -> str:
    """A token server's or registry's error, as Docker prints it."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list):
            return "; ".join(error_line(e) for e in body["errors"] if isinstance(e, dict))
        if body.get("details") or body.get("error"):
            return str(body.get("details") or body.get("error"))
    return ""


def error_line(error: dict) -> str:
    """`code: message` as Docker's errcode prints a registry error."""
    code = str(error.get("code") or "unknown").lower().replace("_", " ")
    message = str(error.get("message") or "")
    return f"{code}: {message}" if message else code
