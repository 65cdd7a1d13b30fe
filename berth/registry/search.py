"""`search TERM`: the v1 search API where a registry offers it (Docker Hub's
index does), else the distribution catalog filtered by the term."""

from __future__ import annotations

from dataclasses import dataclass

from berth.errors import BerthError, NotFound
from berth.image.reference import DEFAULT_DOMAIN
from berth.registry.client import RegistryClient
from berth.registry.hosts import DOCKER_HUB_INDEX, canonical_domain

CATALOG_SCOPE = "registry:catalog:*"


@dataclass(frozen=True)
class SearchResult:
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


@dataclass
class SearchOutcome:
    registry: str
    results: list[SearchResult]
    from_catalog: bool     # the registry has no search API; names come from its catalog


def split_term(term: str) -> tuple[str, str]:
    """`host[:port]/words` searches that registry; anything else Docker Hub."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return canonical_domain(first), rest
    return DEFAULT_DOMAIN, term


def search(client: RegistryClient, domain: str, query: str, limit: int) -> SearchOutcome:
    hub = canonical_domain(domain) == DEFAULT_DOMAIN
    base = f"https://{DOCKER_HUB_INDEX}" if hub else client.base
    body = client.search_v1(base, query, limit)
    if body is not None:
        results = []
        for r in body.get("results") or []:
            if not isinstance(r, dict) or not r.get("name"):
                continue
            name = str(r["name"])
            results.append(SearchResult(
                name=name if hub or name.startswith(domain + "/") else f"{domain}/{name}",
                description=str(r.get("description") or ""), star_count=int(r.get("star_count") or 0),
                is_official=bool(r.get("is_official")), is_automated=bool(r.get("is_automated"))))
        return SearchOutcome(domain, results[:limit], from_catalog=False)
    try:
        names = [n for n in client.catalog() if query.lower() in n.lower()]
    except NotFound:
        raise NotFound(f"{domain} offers neither the search API nor a repository catalog") from None
    except BerthError as e:
        raise type(e)(f"{domain} has no search API, and listing its catalog failed: {e}") from None
    return SearchOutcome(domain, [SearchResult(f"{domain}/{n}") for n in sorted(names)[:limit]],
                         from_catalog=True)
