"""POST /build: Docker's classic builder over the API.

The body is the build context as a tar (plain or compressed) or a lone
Dockerfile; the output is Docker's JSON message stream: the builder's text
as {"stream": ...} lines, the image ID as {"aux": {"ID": ...}}, and a
failure as {"errorDetail": {"code", "message"}, "error"}, whose code the
docker CLI exits with.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol

from berth.api.routing import Request, Route, StreamResponse, json_body, json_response
from berth.api.streams import error_message, produced
from berth.errors import InvalidArgument


class BuildBackend(Protocol):
    """The engine's BuildService."""

    def context_from_stream(self, stream: BinaryIO, dockerfile: str | None = None) -> Any: ...
    def build(self, context: Any, options: Any, out: Any) -> Any: ...


def _options(req: Request):
    from berth.build.builder import RESOURCE_PARAMS, STRING_RESOURCES, BuildOptions

    q = req.query
    if q.get("remote"):
        raise InvalidArgument("remote build contexts (URLs and git repositories) are not supported; "
                              "send the context as a tar")
    build_args = q.json("buildargs", {})
    labels = q.json("labels", {})
    if not isinstance(build_args, dict) or not isinstance(labels, dict):
        raise InvalidArgument("buildargs and labels must be JSON objects")
    extra_hosts = [h for h in (q.get("extrahosts") or "").split(",") if h]
    resources: dict = {}
    for field_name, param in RESOURCE_PARAMS.items():
        if field_name == "Ulimits":
            value = q.json(param, [])
        elif field_name in STRING_RESOURCES:
            value = q.get(param) or ""
        else:
            value = q.int(param, 0)
        if value:
            resources[field_name] = value
    return BuildOptions(tags=q.all("t"), build_args=build_args, target=q.get("target") or None,
                        no_cache=q.bool("nocache"), remove=q.bool("rm", True), force_remove=q.bool("forcerm"),
                        labels=labels, network_mode=q.get("networkmode") or "default",
                        extra_hosts=extra_hosts, platform=q.get("platform") or None, resources=resources)


class BuildRouter:
    def __init__(self, builder: BuildBackend):
        self.builder = builder

    def routes(self) -> list[Route]:
        return [Route("POST", "/build", self.build),
                Route("POST", "/build/prune", self.prune)]

    def prune(self, req: Request):
        # The classic builder's cache is the image store itself (its
        # intermediate images); `image prune` is what frees it.
        return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})

    def build(self, req: Request):
        options = _options(req)
        quiet = req.query.bool("q")
        dockerfile = req.query.get("dockerfile") or None
        # Unpack the context before answering: a bad archive is a 400, as with dockerd.
        context = self.builder.context_from_stream(req.body, dockerfile)

        def work(emit):
            try:
                result = self.builder.build(
                    context, options, (lambda data: None) if quiet else
                    (lambda data: emit({"stream": data.decode("utf-8", "replace")})))
            finally:
                context.close()
            emit({"aux": {"ID": result.image_id}})
            if quiet:
                emit({"stream": result.image_id + "\n"})

        def chunks():
            try:
                for message in produced(work):
                    yield json_body(message)
            except GeneratorExit:
                raise
            except Exception as e:  # noqa: BLE001 - once streaming, failures are reported in-band
                message = error_message(e)
                message["errorDetail"]["code"] = getattr(e, "exit_code", 1)
                yield json_body(message)
        return StreamResponse(chunks())
