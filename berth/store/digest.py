"""Content digests (`sha256:<hex>`), the names of everything in the store."""

import hashlib
import re

from berth.errors import InvalidArgument

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()


def validate(digest: str) -> str:
    """Return `digest` if it is a well-formed sha256 digest, else raise."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid digest: {digest!r}")
    return digest


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    return validate(digest).split(":", 1)[1]


def is_digest(s: str) -> bool:
    return bool(_DIGEST.match(s))
