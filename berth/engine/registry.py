"""Registry operations for the CLI and the API: pull, push, login, logout,
search, and the pull that `run` and `build` do when an image is missing."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from berth.errors import InvalidArgument, NotFound
from berth.image import mediatypes as mt
from berth.image.reference import Reference, parse
from berth.image.store import Image, ImageStore
from berth.layer.ingest import compress_layer
from berth.layer.snapshots import LayerCache
from berth.registry import search as searchmod
from berth.registry.auth import Credentials, RegistryAuth, TokenCache, scope
from berth.registry.client import RegistryClient, TransportFactory, default_transport
from berth.registry.credentials import CredentialStore, domain_of_server, server_address
from berth.registry.hosts import DEFAULT_CERTS_DIRS, DEFAULT_INSECURE, RegistrySettings, endpoints
from berth.registry.manifests import Platform, config_platform, platform_matches
from berth.registry.progress import Progress, ProgressSink, discard
from berth.registry.pull import Puller, PullResult
from berth.registry.push import Pusher, PushResult
from berth.registry.search import SearchOutcome

PULL_POLICIES = ("missing", "always", "never")


def settings_from_environment(environ: Mapping[str, str] = os.environ) -> RegistrySettings:
    """Registry settings from the environment.

    DOCKER_CONFIG locates config.json as for the docker CLI.
    BERTH_INSECURE_REGISTRIES (comma-separated names and CIDRs) replaces the
    default insecure set, 127.0.0.0/8; set it empty to verify TLS everywhere.
    BERTH_CERTS_D (colon-separated) replaces /etc/berth/certs.d:/etc/docker/certs.d.
    """
    config_dir = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    insecure = DEFAULT_INSECURE
    if "BERTH_INSECURE_REGISTRIES" in environ:
        insecure = tuple(x.strip() for x in environ["BERTH_INSECURE_REGISTRIES"].split(",") if x.strip())
    certs = DEFAULT_CERTS_DIRS
    if "BERTH_CERTS_D" in environ:
        certs = tuple(Path(p) for p in environ["BERTH_CERTS_D"].split(":") if p)
    return RegistrySettings(insecure_registries=insecure, certs_dirs=certs, config_dir=config_dir)


@dataclass
class LoginOutcome:
    server: str            # the key the credentials are filed under
    stored_in: str         # config.json's path, or the credential helper
    helper: bool           # whether a credential helper holds them (no plaintext warning)


class RegistryService:
    def __init__(self, store: ImageStore, settings: RegistrySettings | None = None,
                 transport_factory: TransportFactory = default_transport):
        self.store = store
        self.settings = settings or settings_from_environment()
        self.credentials = CredentialStore(self.settings.config_dir)
        self.tokens = TokenCache()
        self._transport = transport_factory

    def _client(self, domain: str, scopes: list[str], credentials: Credentials | None = None) -> RegistryClient:
        creds = credentials if credentials is not None else self.credentials.get(domain)
        # A client's own credentials get tokens of their own: one cached for
        # another password of the same account must not serve them.
        auth = RegistryAuth(creds, scopes, self.tokens if credentials is None else TokenCache())
        return RegistryClient(domain, endpoints(domain, self.settings), auth, self._transport).open()

    # -- pull ------------------------------------------------------------------

    def pull(self, name: str, *, platform: str | None = None, all_tags: bool = False,
             progress: ProgressSink = discard, credentials: Credentials | None = None) -> list[PullResult]:
        """``credentials``: a client's own (the API's X-Registry-Auth), else the stored login."""
        ref = parse(name)
        if all_tags and (ref.tag or ref.digest):
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        wanted = Platform.parse(platform) if platform else None
        with self._client(ref.domain, [scope(ref.path, "pull")], credentials) as client:
            puller = Puller(self.store, client, platform=wanted, progress=progress,
                            concurrency=self.settings.max_concurrent_downloads,
                            layers=LayerCache(self.store.state.root) if self.store is not None else None)
            refs = [ref.with_tag(t) for t in sorted(client.tags(ref.path))] if all_tags \
                else [ref.tagged_or_latest()]
            if not refs:
                raise NotFound(f"repository {ref.familiar_name} has no tags")
            return [puller.pull(r) for r in refs]

    def ensure_image(self, name: str, *, policy: str = "missing", platform: str | None = None,
                     progress: ProgressSink = discard,
                     announce: Callable[[str], None] | None = None) -> Image:
        """The image `run`/`create`/`build` use, pulled first as Docker's --pull says."""
        if policy not in PULL_POLICIES:
            raise InvalidArgument(f'invalid pull option: "{policy}": must be one of "missing", '
                                  '"always" or "never"')
        if policy != "always":
            image = self.store.find(name)
            if image is not None and (platform is None or self._platform_ok(image, platform)):
                return image
            if policy == "never":
                return self.store.resolve(name)
        ref = parse(name)
        if announce is not None and policy == "missing":
            announce(f"Unable to find image '{ref.tagged_or_latest().familiar()}' locally")
        return self.pull(name, platform=platform, progress=progress)[0].image

    def _platform_ok(self, image: Image, platform: str) -> bool:
        return platform_matches(Platform.parse(platform), config_platform(self.store.config(image)))

    # -- push ------------------------------------------------------------------

    def push(self, name: str, *, all_tags: bool = False, progress: ProgressSink = discard,
             credentials: Credentials | None = None) -> list[PushResult]:
        """``credentials``: a client's own (the API's X-Registry-Auth), else the stored login."""
        ref = parse(name)
        if ref.digest:
            raise InvalidArgument("cannot push a digest reference")
        if all_tags:
            if ref.tag:
                raise InvalidArgument("tag can't be used with --all-tags/-a")
            targets = sorted(((parse(t), image) for image in self.store.list() for t in image.tags
                              if parse(t).name == ref.name), key=lambda x: str(x[0]))
            if not targets:
                raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        else:
            ref = ref.tagged_or_latest()
            image = self.store.find(str(ref))
            if image is None:
                raise NotFound(f"tag does not exist: {ref.familiar()}")
            targets = [(ref, image)]
        progress(Progress(f"The push refers to repository [{ref.name}]"))
        targets = [(target, self._distributable(image)) for target, image in targets]
        sources = self._mount_sources(ref, [image for _, image in targets])
        scopes = [scope(ref.path, "pull", "push")]
        scopes += sorted({scope(s, "pull") for repos in sources.values() for s in repos})
        results = []
        with self._client(ref.domain, scopes, credentials) as client:
            pusher = Pusher(self.store, client, progress=progress,
                            concurrency=self.settings.max_concurrent_uploads,
                            chunk_size=self.settings.upload_chunk_size, mount_sources=sources)
            for target, image in targets:
                result = pusher.push(target, image)
                self._record_push(image, target, result.digest)
                results.append(result)
        return results

    def _distributable(self, image: Image) -> Image:
        """The image with every layer gzip-compressed, as registries get them.

        Layers built, committed, imported or loaded are stored plain; they are
        compressed here, once (Docker compresses on each push), and the image
        keeps the compressed blobs and the manifest naming them, so the digest
        the registry reports is the image's own and the next push is quick.
        """
        layers = self.store.layers(image)
        plain = [layer for layer in layers if layer.media_type in mt.UNCOMPRESSED_LAYERS]
        if not plain:
            return image
        with self.store.ingestion() as added:
            with ThreadPoolExecutor(max_workers=min(len(plain), os.cpu_count() or 1)) as pool:
                compressed = dict(zip((layer.digest for layer in plain),
                                      pool.map(lambda layer: compress_layer(layer, self.store.blobs, added),
                                               plain)))
            image, dropped = self.store.relayer(image, [compressed.get(layer.digest, layer) for layer in layers])
        self.store.remove_unreferenced(dropped)
        return image

    def _mount_sources(self, ref: Reference, images: list[Image]) -> dict[str, list[str]]:
        """Other repositories of the same registry known to hold each layer: those
        the layer's images were pulled from or pushed to (their RepoDigests)."""
        wanted = {layer.digest for image in images for layer in self.store.layers(image)}
        sources: dict[str, list[str]] = {}
        for image in self.store.list():
            repos = []
            for rd in image.repo_digests:
                r = parse(rd)
                if r.domain == ref.domain and r.path != ref.path and r.path not in repos:
                    repos.append(r.path)
            if not repos:
                continue
            for layer in self.store.layers(image):
                if layer.digest in wanted:
                    known = sources.setdefault(layer.digest, [])
                    known += [r for r in repos if r not in known]
        return sources

    def _record_push(self, image: Image, ref: Reference, digest: str) -> None:
        """Docker lists a pushed image's registry digest in RepoDigests; so do we."""
        with self.store.ingestion():
            self.store.add(self.store.config_bytes(image), self.store.layers(image),
                           manifest=self.store.blobs.read(image.manifest_digest),
                           manifest_media_type=image.manifest_media_type,
                           repo_digest=Reference(ref.domain, ref.path).with_digest(digest))

    # -- login -----------------------------------------------------------------

    def stored_credentials(self, server: str | None) -> Credentials | None:
        return self.credentials.get(domain_of_server(server or ""))

    def check_login(self, server: str | None, credentials: Credentials) -> str:
        """Check credentials against the registry without keeping them (the
        daemon's POST /auth: its clients keep their own); the server's address."""
        domain = domain_of_server(server or "")
        with self._client(domain, [], credentials) as client:
            client.authenticate()
        return server_address(domain)

    def login(self, server: str | None, credentials: Credentials) -> LoginOutcome:
        """Check the credentials against the registry, then store them."""
        self.check_login(server, credentials)
        domain = domain_of_server(server or "")
        helper = self.credentials.helper_for(domain)
        stored_in = self.credentials.store(domain, credentials)
        return LoginOutcome(server_address(domain), stored_in, helper is not None)

    def logout(self, server: str | None) -> tuple[str, bool]:
        """Forget a registry's credentials: (the server's address, whether any were stored)."""
        domain = domain_of_server(server or "")
        return server_address(domain), self.credentials.erase(domain)

    # -- search ----------------------------------------------------------------

    def search(self, term: str, *, limit: int = 25, filters: Mapping[str, list[str]] | None = None,
               credentials: Credentials | None = None) -> SearchOutcome:
        """``credentials``: a client's own (the API's X-Registry-Auth), else the stored login."""
        if not 1 <= limit <= 100:
            raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]")
        filters = dict(filters or {})
        for key in filters:
            if key not in ("stars", "is-official", "is-automated"):
                raise InvalidArgument(f"invalid filter '{key}'")
        domain, query = searchmod.split_term(term)
        with self._client(domain, [searchmod.CATALOG_SCOPE], credentials) as client:
            outcome = searchmod.search(client, domain, query, limit)
        outcome.results = [r for r in outcome.results if _search_match(r, filters)]
        return outcome


def _search_match(r: searchmod.SearchResult, filters: Mapping[str, list[str]]) -> bool:
    for value in filters.get("stars", []):
        try:
            if r.star_count < int(value):
                return False
        except ValueError:
            raise InvalidArgument(f"invalid filter 'stars={value}'") from None
    for key, attr in (("is-official", "is_official"), ("is-automated", "is_automated")):
        for value in filters.get(key, []):
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter '{key}={value}'")
            if getattr(r, attr) != (value.lower() in ("true", "1")):
                return False
    return True
