"""/images and /commit: list, inspect, history, tag, delete, prune, save and
load, import, pull and push (moby's image router), search, commit."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from berth.api.routing import TAR, Request, Response, Route, StreamResponse, json_response
from berth.api.streams import json_messages, written
from berth.errors import InvalidArgument
from berth.image.reference import parse


_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


class ImageBackend(Protocol):
    """What the routes need of the engine's ImageService."""

    def list(self, *, all: bool = False, filters: dict | None = None) -> list: ...
    def inspect(self, name: str) -> dict: ...
    def history(self, name: str) -> list: ...
    def tag(self, source: str, target: str) -> None: ...
    def remove(self, name: str, *, force: bool = False, prune: bool = True) -> list[dict]: ...
    def prune(self, *, all: bool = False, filters: dict | None = None) -> Any: ...
    def save(self, names: list[str], out: BinaryIO) -> None: ...
    def load(self, src: BinaryIO) -> list[str]: ...
    def import_image(self, source: str, *, stdin: BinaryIO | None = None, repository: str | None = None,
                     changes: list[str] = (), message: str = "") -> Any: ...


class RegistryBackend(Protocol):
    """The engine's RegistryService: pull, push, search."""

    def pull(self, name: str, *, platform: str | None = None, all_tags: bool = False,
             progress: Callable = ..., credentials: Any = None) -> list: ...
    def push(self, name: str, *, all_tags: bool = False, progress: Callable = ...,
             credentials: Any = None) -> list: ...
    def search(self, term: str, *, limit: int = 25, filters: dict | None = None,
               credentials: Any = None) -> Any: ...


class CommitBackend(Protocol):
    """The engine's container filesystems: a container's changes as a new image."""

    def commit(self, ref: str, *, repository: str | None = None, changes: list[str] = (), message: str = "",
               author: str = "", pause: bool = True) -> Any: ...


def image_summary(s, *, legacy_virtual_size: bool) -> dict:
    out = {"Id": s.id, "ParentId": s.parent_id, "RepoTags": s.repo_tags, "RepoDigests": s.repo_digests,
           "Created": int(s.created), "Size": s.size, "SharedSize": s.shared_size, "Labels": s.labels or {},
           "Containers": s.containers}
    if legacy_virtual_size:
        out["VirtualSize"] = s.size  # dropped in API 1.44
    return out


def _progress_message(event) -> dict:
    """A registry Progress as Docker's JSONMessage."""
    message: dict = {"status": event.status}
    if event.id:
        message["id"] = event.id
    if event.is_transfer:
        message["progressDetail"] = {"current": event.current, "total": event.total}
        message["progress"] = _bar(event.current, event.total)
    return message


def _bar(current: int, total: int, width: int = 50) -> str:
    """Docker's JSONProgress text: [====>     ]  1.2MB/4.5MB."""
    from berth.units import human_size
    filled = min(width, int(width * current / total)) if total else 0
    arrow = "=" * max(0, filled - 1) + (">" if filled else "")
    return f"[{arrow:<{width}}] {human_size(current):>8}/{human_size(total)}"


def registry_auth(req: Request):
    """The client's own registry credentials (X-Registry-Auth: base64url JSON
    {username, password[, serveraddress]} or {identitytoken}), as moby's
    DecodeAuthConfig reads them; None without any (the stored login is used then)."""
    encoded = (req.headers.get("X-Registry-Auth") or "").strip()
    if not encoded:
        return None
    try:
        # base64url as the API says; standard base64 and missing padding as clients send them
        raw = base64.b64decode(encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4),
                               validate=True)
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise TypeError("not a JSON object")
        username, password = config.get("username") or "", config.get("password") or ""
        if not (username or password) and config.get("auth"):     # base64 of user:password, as in config.json
            username, _, password = base64.b64decode(config["auth"]).decode().partition(":")
        token = config.get("identitytoken") or ""
        if not all(isinstance(v, str) for v in (username, password, token)):
            raise TypeError("username, password and identitytoken must be strings")
    except (binascii.Error, ValueError, TypeError) as e:
        raise InvalidArgument(f"invalid X-Registry-Auth header: {e}") from None
    from berth.registry.auth import Credentials
    credentials = Credentials(username=username, password=password, identity_token=token)
    return None if credentials.empty else credentials


def _reference(name: str, tag: str | None) -> str:
    """fromImage/repo plus the separate tag parameter (which may hold a digest)."""
    if not tag:
        return name
    return f"{name}@{tag}" if _DIGEST.fullmatch(tag) else f"{name}:{tag}"


class ImagesRouter:
    def __init__(self, images: ImageBackend, registry: RegistryBackend | None = None,
                 commits: CommitBackend | None = None):
        self.images = images
        self.registry = registry
        self.commits = commits

    def routes(self) -> list[Route]:
        routes = [
            Route("GET", "/images/json", self.list),
            Route("POST", "/images/create", self.create),
            Route("POST", "/images/load", self.load),
            Route("POST", "/images/prune", self.prune),
            Route("GET", "/images/get", self.save_many),
            Route("GET", "/images/search", self.search),
            Route("GET", "/images/{name:.*}/json", self.inspect),
            Route("GET", "/images/{name:.*}/history", self.history),
            Route("GET", "/images/{name:.*}/get", self.save_one),
            Route("POST", "/images/{name:.*}/tag", self.tag),
            Route("POST", "/images/{name:.*}/push", self.push),
            Route("DELETE", "/images/{name:.*}", self.remove),
        ]
        if self.commits is not None:
            routes.append(Route("POST", "/commit", self.commit))
        return routes

    # -- reading ---------------------------------------------------------------------------

    def list(self, req: Request):
        filters = req.query.filters()
        if req.query.get("filter"):  # API < 1.41's single reference filter
            filters.setdefault("reference", []).append(req.query.get("filter"))
        summaries = self.images.list(all=req.query.bool("all"), filters=filters)
        legacy = not req.version_at_least(1, 44)
        return json_response([image_summary(s, legacy_virtual_size=legacy) for s in summaries])

    def inspect(self, req: Request):
        return json_response(self.images.inspect(req.params["name"]))

    def history(self, req: Request):
        return json_response([{"Id": e.id, "Created": int(e.created), "CreatedBy": e.created_by,
                               "Tags": e.tags or None, "Size": e.size, "Comment": e.comment}
                              for e in self.images.history(req.params["name"])])

    def search(self, req: Request):
        if self.registry is None:
            raise InvalidArgument("this daemon has no registry support")
        term = req.query.get("term") or ""
        if not term:
            raise InvalidArgument("term is required")
        outcome = self.registry.search(term, limit=req.query.int("limit", 25), filters=req.query.filters(),
                                       credentials=registry_auth(req))
        return json_response([{"name": r.name, "description": r.description, "star_count": r.star_count,
                               "is_official": r.is_official, "is_automated": r.is_automated}
                              for r in outcome.results])

    # -- names -----------------------------------------------------------------------------

    def tag(self, req: Request):
        repo = req.query.get("repo")
        if not repo:
            raise InvalidArgument("repository name (repo) is required")
        self.images.tag(req.params["name"], _reference(repo, req.query.get("tag")))
        return Response(201, b"", content_type=None)

    def remove(self, req: Request):
        return json_response(self.images.remove(req.params["name"], force=req.query.bool("force"),
                                                 prune=not req.query.bool("noprune")))

    def prune(self, req: Request):
        filters = req.query.filters()
        dangling = filters.pop("dangling", ["true"])
        prune_all = dangling[0].strip().lower() in ("false", "0")
        report = self.images.prune(all=prune_all, filters=filters)
        return json_response({"ImagesDeleted": report.deleted or None, "SpaceReclaimed": report.space_reclaimed})

    # -- archives --------------------------------------------------------------------------

    def save_one(self, req: Request):
        return self._save([req.params["name"]])

    def save_many(self, req: Request):
        names = req.query.all("names")
        if not names:
            raise InvalidArgument("no images to save: names is required")
        return self._save(names)

    def _save(self, names: list[str]):
        return StreamResponse(written(lambda out: self.images.save(names, out)), content_type=TAR, prime=True)

    def load(self, req: Request):
        # `quiet` hides progress bars only; berth shows none, and the
        # "Loaded image" lines come either way, as from dockerd.
        def work(emit):
            for line in self.images.load(req.body):
                emit({"stream": line + "\n"})
        return StreamResponse(json_messages(work), prime=True)

    # -- create: pull or import ------------------------------------------------------------

    def create(self, req: Request):
        q = req.query
        if q.get("fromImage"):
            return self._pull(req)
        source = q.get("fromSrc")
        if not source:
            raise InvalidArgument("fromImage or fromSrc is required")
        repo = q.get("repo") or None
        repository = _reference(repo, q.get("tag")) if repo else None

        def work(emit):
            image = self.images.import_image(source, stdin=req.body, repository=repository,
                                             changes=q.all("changes"), message=q.get("message") or "")
            emit({"status": image.id})
        return StreamResponse(json_messages(work), prime=True)

    def _pull(self, req: Request):
        if self.registry is None:
            raise InvalidArgument("this daemon has no registry support")
        q = req.query
        name, tag = q.get("fromImage"), q.get("tag") or ""
        ref = parse(name)
        all_tags = not tag and not ref.tag and not ref.digest
        target = _reference(name, tag)
        platform = q.get("platform") or None
        credentials = registry_auth(req)

        def work(emit):
            self.registry.pull(target, platform=platform, all_tags=all_tags, credentials=credentials,
                               progress=lambda event: emit(_progress_message(event)))
        return StreamResponse(json_messages(work), prime=True)

    def push(self, req: Request):
        if self.registry is None:
            raise InvalidArgument("this daemon has no registry support")
        tag = req.query.get("tag") or ""
        name = req.params["name"]
        all_tags = not tag and ":" not in name.rsplit("/", 1)[-1]
        target = _reference(name, tag)
        credentials = registry_auth(req)

        def work(emit):
            results = self.registry.push(target, all_tags=all_tags, credentials=credentials,
                                         progress=lambda event: emit(_progress_message(event)))
            for r in results:
                emit({"progressDetail": {}, "aux": {"Tag": r.reference.tag or "", "Digest": r.digest,
                                                    "Size": r.size}})
        return StreamResponse(json_messages(work), prime=True)

    # -- commit ------------------------------------------------------------------------------

    def commit(self, req: Request):
        q = req.query
        container = q.get("container")
        if not container:
            raise InvalidArgument("container is required")
        req.json()  # validated; Config overrides come through `changes`, as the CLI sends them
        repo = q.get("repo") or None
        image = self.commits.commit(container, repository=_reference(repo, q.get("tag")) if repo else None,
                                    changes=q.all("changes"), message=q.get("comment") or "",
                                    author=q.get("author") or "", pause=q.bool("pause", True))
        return json_response({"Id": image.id}, status=201)
