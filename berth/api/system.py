"""/_ping, /version, /info, /events, /system/df, /auth: the engine as a whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from berth.api.routing import Request, Response, Route, StreamResponse, json_body, json_response
from berth.errors import InvalidArgument


class SystemBackend(Protocol):
    """The engine's SystemService."""

    def version(self) -> dict: ...
    def info(self, containers: dict[str, int] | None = None) -> dict: ...
    def events(self, filters: dict[str, list[str]], *, since: float | None = None,
               until: float | None = None, stop: Callable[[], bool] = ...): ...


class UsageBackend(Protocol):
    """What `system df` and info's counts add up: summaries of everything."""

    def layers_size(self) -> int: ...
    def images(self) -> list: ...
    def containers(self, *, size: bool) -> list: ...
    def volumes(self) -> list[dict]: ...


class LoginBackend(Protocol):
    def check_login(self, server: str | None, credentials: Any) -> str: ...


# Fields of Docker's SystemInfo that berth has no counterpart for; clients
# (the docker CLI, docker-py) expect them to be there.
_INFO_DEFAULTS = {
    "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
              "Error": "", "RemoteManagers": None},
    "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                       "AllowNondistributableArtifactsHostnames": None,
                       "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": None},
    "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
    "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "LiveRestoreEnabled": True, "Isolation": "",
    "InitBinary": "", "ProductLicense": "", "DefaultAddressPools": None, "Warnings": None,
    "KernelMemoryTCP": False, "OomKillDisable": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False,
    "CPUSet": True, "CPUShares": True, "SystemTime": "", "IndexServerAddress": "https://index.docker.io/v1/",
    "GenericResources": None, "CDISpecDirs": [],
}


def summarize(containers: list) -> dict[str, int]:
    counts = {"running": 0, "paused": 0, "stopped": 0}
    for s in containers:
        key = s.state if s.state in ("running", "paused") else "stopped"
        counts[key] += 1
    return counts


class SystemRouter:
    def __init__(self, system: SystemBackend, usage: UsageBackend, *, login: LoginBackend | None = None,
                 image_summary: Callable[[Any], dict], container_summary: Callable[[Any], dict]):
        self.system = system
        self.usage = usage
        self.login_backend = login
        self.image_summary = image_summary
        self.container_summary = container_summary

    def routes(self) -> list[Route]:
        return [Route("GET", "/_ping", self.ping),
                Route("HEAD", "/_ping", self.ping),
                Route("GET", "/version", self.version),
                Route("GET", "/info", self.info),
                Route("GET", "/events", self.events),
                Route("GET", "/system/df", self.df),
                Route("POST", "/auth", self.auth)]

    def ping(self, req: Request):
        return Response(200, b"OK", content_type="text/plain; charset=utf-8",
                        headers=[("Builder-Version", "1"), ("Swarm", "inactive"),
                                 ("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache")])

    def version(self, req: Request):
        return json_response(self.system.version())

    def info(self, req: Request):
        info = dict(_INFO_DEFAULTS)
        info.update(self.system.info(summarize(self.usage.containers(size=False))))
        return json_response(info)

    def events(self, req: Request):
        q = req.query
        since, until = _timestamp(q.get("since")), _timestamp(q.get("until"))
        messages = self.system.events(q.filters(), since=since, until=until, stop=req.disconnected)
        # A generator checks its filters when first advanced; take the first
        # event in the handler only when it cannot block (until is given).
        return StreamResponse((json_body(m) for m in messages), prime=until is not None)

    def df(self, req: Request):
        return json_response({
            "LayersSize": self.usage.layers_size(),
            "Images": [self.image_summary(i) for i in self.usage.images()],
            "Containers": [self.container_summary(c) for c in self.usage.containers(size=True)],
            "Volumes": self.usage.volumes(),
            "BuildCache": [],
        })

    def auth(self, req: Request):
        if self.login_backend is None:
            raise InvalidArgument("this daemon has no registry support")
        body = req.json(required=True)
        from berth.registry.auth import Credentials
        credentials = Credentials(username=body.get("username") or "", password=body.get("password") or "",
                                  identity_token=body.get("identitytoken") or "")
        # dockerd checks a login and keeps nothing: clients send their own
        # credentials with each pull and push (X-Registry-Auth).
        self.login_backend.check_login(body.get("serveraddress") or None, credentials)
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def _timestamp(value: str | None) -> float | None:
    """since/until: Unix seconds (with fraction) as the CLI sends them, or RFC 3339."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    from berth.units import parse_timestamp
    try:
        return parse_timestamp(value)
    except Exception:  # noqa: BLE001 - any unparsable value is the client's error
        raise InvalidArgument(f"invalid timestamp: {value}") from None
