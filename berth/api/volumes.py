"""/volumes: list, inspect, create, remove, prune."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from berth.api.routing import Request, Route, json_response, no_content
from berth.errors import InvalidArgument


class VolumeBackend(Protocol):
    """The engine's VolumeService."""

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict]: ...
    def inspect(self, name: str) -> dict: ...
    def create(self, name: str | None = None, *, driver: str = "local", labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None) -> dict: ...
    def remove(self, name: str, *, force: bool = False) -> None: ...
    def prune(self, *, all: bool = False, filters: Mapping[str, Sequence[str]] | None = None
              ) -> tuple[list[str], int]: ...


class VolumesRouter:
    def __init__(self, volumes: VolumeBackend):
        self.volumes = volumes

    def routes(self) -> list[Route]:
        return [Route("GET", "/volumes", self.list),
                Route("POST", "/volumes/create", self.create),
                Route("POST", "/volumes/prune", self.prune),
                Route("GET", "/volumes/{name}", self.inspect),
                Route("DELETE", "/volumes/{name}", self.remove)]

    def list(self, req: Request):
        return json_response({"Volumes": self.volumes.list(req.query.filters()), "Warnings": None})

    def inspect(self, req: Request):
        return json_response(self.volumes.inspect(req.params["name"]))

    def create(self, req: Request):
        body = req.json()
        for key in ("Labels", "DriverOpts"):
            if body.get(key) is not None and not isinstance(body[key], dict):
                raise InvalidArgument(f"{key} must be an object")
        volume = self.volumes.create(body.get("Name") or None, driver=body.get("Driver") or "local",
                                     labels=body.get("Labels") or {}, options=body.get("DriverOpts") or {})
        return json_response(volume, status=201)

    def remove(self, req: Request):
        self.volumes.remove(req.params["name"], force=req.query.bool("force"))
        return no_content()

    def prune(self, req: Request):
        filters = req.query.filters()
        # API 1.42+: only anonymous volumes unless the `all` filter says otherwise.
        every = filters.pop("all", ["false"])[0].strip().lower() in ("1", "true")
        if not req.version_at_least(1, 42):
            every = True
        removed, reclaimed = self.volumes.prune(all=every, filters=filters)
        return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed})
