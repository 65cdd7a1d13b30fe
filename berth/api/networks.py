"""/networks: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from berth.api.routing import Request, Response, Route, json_response, no_content
from berth.errors import InvalidArgument


class NetworkBackend(Protocol):
    """The engine's NetworkService."""

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict]: ...
    def inspect(self, ref: str) -> dict: ...
    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, attachable: bool = False, labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None) -> dict: ...
    def remove(self, ref: str) -> None: ...
    def connect(self, network: str, container: str, *, aliases: Sequence[str] = ()) -> None: ...
    def disconnect(self, network: str, container: str, *, force: bool = False) -> None: ...
    def prune(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[str]: ...


def _ipam(body: dict) -> tuple[str | None, str | None]:
    """The one IPv4 subnet (and gateway) berth networks have."""
    configs = ((body.get("IPAM") or {}).get("Config")) or []
    if not isinstance(configs, list):
        raise InvalidArgument("IPAM.Config must be a list")
    if len(configs) > 1:
        raise InvalidArgument("berth networks have one IPv4 subnet; give one IPAM config")
    if not configs:
        return None, None
    config = configs[0] or {}
    if config.get("IPRange"):
        raise InvalidArgument("IPRange is not supported")
    return config.get("Subnet") or None, config.get("Gateway") or None


class NetworksRouter:
    def __init__(self, networks: NetworkBackend):
        self.networks = networks

    def routes(self) -> list[Route]:
        return [Route("GET", "/networks", self.list),
                Route("GET", "/networks/{id}", self.inspect),
                Route("POST", "/networks/create", self.create),
                Route("POST", "/networks/prune", self.prune),
                Route("POST", "/networks/{id}/connect", self.connect),
                Route("POST", "/networks/{id}/disconnect", self.disconnect),
                Route("DELETE", "/networks/{id}", self.remove)]

    def list(self, req: Request):
        return json_response(self.networks.list(req.query.filters()))

    def inspect(self, req: Request):
        return json_response(self.networks.inspect(req.params["id"]))

    def create(self, req: Request):
        body = req.json(required=True)
        name = body.get("Name")
        if not name:
            raise InvalidArgument("network name is required")
        if body.get("EnableIPv6"):
            raise InvalidArgument("IPv6 networks are not supported")
        subnet, gateway = _ipam(body)
        created = self.networks.create(name, driver=body.get("Driver") or "bridge", subnet=subnet, gateway=gateway,
                                       internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
                                       labels=body.get("Labels") or {}, options=body.get("Options") or {})
        return json_response(created, status=201)

    def remove(self, req: Request):
        self.networks.remove(req.params["id"])
        return no_content()

    def connect(self, req: Request):
        body = req.json(required=True)
        container = body.get("Container")
        if not container:
            raise InvalidArgument("Container is required")
        endpoint = body.get("EndpointConfig") or {}
        self.networks.connect(req.params["id"], container, aliases=list(endpoint.get("Aliases") or []))
        return Response(200, b"", content_type=None)

    def disconnect(self, req: Request):
        body = req.json(required=True)
        container = body.get("Container")
        if not container:
            raise InvalidArgument("Container is required")
        self.networks.disconnect(req.params["id"], container, force=bool(body.get("Force")))
        return Response(200, b"", content_type=None)

    def prune(self, req: Request):
        removed = self.networks.prune(req.query.filters())
        return json_response({"NetworksDeleted": removed or None})
