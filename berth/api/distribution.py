"""GET /distribution/{name}/json: what a registry serves for a name (the
manifest's descriptor and platforms), without pulling it (moby's
distribution router; `docker manifest`-style lookups and platform checks
use it)."""

from __future__ import annotations

from typing import Protocol

from berth.api.routing import Request, Route, json_response


class DistributionBackend(Protocol):
    """The registry service's lookup: {"Descriptor": {mediaType, digest, size},
    "Platforms": [{architecture, os, variant?}]} for a reference."""

    def distribution(self, name: str) -> dict: ...


class DistributionRouter:
    def __init__(self, registry: DistributionBackend):
        self.registry = registry

    def routes(self) -> list[Route]:
        return [Route("GET", "/distribution/{name:.*}/json", self.inspect)]

    def inspect(self, req: Request):
        return json_response(self.registry.distribution(req.params["name"]))
