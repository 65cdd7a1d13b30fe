"""Image references with Docker's grammar and normalisation.

`ubuntu` is `docker.io/library/ubuntu:latest`; `host:5000/a/b:tag` names a
registry because its first component has a dot, a colon or is `localhost`;
`name@sha256:...` pins a manifest digest.  Rules from
distribution/reference (grammar) and docker/cli (familiar names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_ANCHORED_TAG = re.compile(rf"^{_TAG}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name: docker.io/library/ubuntu."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ubuntu, user/app, localhost:5000/app."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_PREFIX) and "/" not in self.path[len(OFFICIAL_PREFIX):]:
                return self.path[len(OFFICIAL_PREFIX):]
            return self.path
        return self.name

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        s = self.familiar_name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.domain, self.path, None, digest)

    def tagged_or_latest(self) -> "Reference":
        """Docker's TagNameOnly: a bare name means :latest; digests stay."""
        if self.tag is None and self.digest is None:
            return self.with_tag(DEFAULT_TAG)
        return self


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str) -> Reference:
    """Parse and normalise a reference; raise InvalidArgument in Docker's words."""
    if not text:
        raise InvalidArgument("invalid reference format")
    if _HEX64.match(text):
        raise InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    m = _REFERENCE.match(text)
    if not m:
        lowered = _REFERENCE.match(text.lower())
        if lowered:
            name = text[: len(lowered.group("name"))]
            raise InvalidArgument(
                f"invalid reference format: repository name ({_split_domain(name)[1]}) must be lowercase")
        raise InvalidArgument("invalid reference format")
    name, tag, digest = m.group("name"), m.group("tag"), m.group("digest")
    if len(name) > NAME_TOTAL_MAX:
        raise InvalidArgument(f"invalid reference format: repository name must not be more than {NAME_TOTAL_MAX} characters")
    domain, path = _split_domain(name)
    if path.lower() != path:
        raise InvalidArgument(f"invalid reference format: repository name ({path}) must be lowercase")
    if digest is not None and not digest.startswith("sha256:"):
        raise InvalidArgument(f"unsupported digest algorithm: {digest}")
    if digest is not None and len(digest) != len("sha256:") + 64:
        raise InvalidArgument("invalid checksum digest length")
    return Reference(domain, path, tag, digest)


def parse_normalized_named(text: str) -> Reference:
    """A reference with the implied :latest when neither tag nor digest is given."""
    return parse(text).tagged_or_latest()


def parse_repository(text: str) -> Reference:
    """A repository name without tag or digest (for `images REPO` filters)."""
    ref = parse(text)
    return Reference(ref.domain, ref.path)


def validate_tag(tag: str) -> str:
    if not _ANCHORED_TAG.match(tag):
        raise InvalidArgument(f"invalid tag format: {tag}")
    return tag
