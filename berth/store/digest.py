"""Content digests (`sha256:<hex>`), the names of everything in the store."""

import re

from berth.errors import InvalidArgument

try:
    # CPython's own SHA-256: the same digests as hashlib's, without loading
    # OpenSSL (milliseconds that every command would pay for a name hash).
    from _sha256 import sha256
except ImportError:  # pragma: no cover - other interpreters and versions
    from hashlib import sha256

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def validate(digest: str) -> str:
    """Return `digest` if it is a well-formed sha256 digest, else raise."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid digest: {digest!r}")
    return digest


def of_bytes(data: bytes) -> str:
    return "sha256:" + sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    return validate(digest).split(":", 1)[1]


def is_digest(s: str) -> bool:
    return bool(_DIGEST.match(s))
