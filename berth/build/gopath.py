"""Go's path/filepath Match and Clean, which Docker's builder and CLI use.

COPY/ADD wildcards go through filepath.Match and .dockerignore patterns are
cleaned with filepath.Clean; both differ from Python's fnmatch and normpath
in ways a Dockerfile can notice (`*` never crosses `/`, `[^a]` negates, a
lone `\\` at the end is a syntax error, `//a` cleans to `/a`).
"""

from __future__ import annotations

import posixpath

from berth.errors import InvalidArgument

__all__ = ["BadPattern", "clean", "has_wildcards", "match"]


class BadPattern(InvalidArgument):
    """Go's filepath.ErrBadPattern."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def clean(path: str) -> str:
    """filepath.Clean: the shortest equivalent path ("" is ".")."""
    out = posixpath.normpath(path) if path else "."
    # POSIX lets "//" mean something; Go does not.
    return "/" + out.lstrip("/") if out.startswith("//") else out


def has_wildcards(path: str) -> bool:
    """Whether a COPY/ADD source is a pattern (an unescaped * ? or [)."""
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\":
            i += 1
        elif ch in "*?[":
            return True
        i += 1
    return False


def match(pattern: str, name: str) -> bool:
    """filepath.Match; raises BadPattern for a malformed pattern."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            # A trailing * matches the rest unless it has a separator.
            return "/" not in name
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            # Try the chunk after skipping characters, never a separator.
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest = _match_chunk(chunk, name[i + 1:])
                if rest is not None:
                    if not pattern and rest:
                        i += 1
                        continue
                    name = rest
                    found = True
                    break
                i += 1
            if found:
                continue
        # No match; the rest of the pattern must still be well formed.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> str | None:
    """What is left of `s` after `chunk` matched its start, or None.

    Like Go, the whole chunk is parsed even after a mismatch, so a bad
    pattern is reported whatever the name.
    """
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        ch = chunk[0]
        if ch == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk.startswith("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if not failed and lo <= r <= hi:
                    matched = True
                ranges += 1
            if matched == negated:
                failed = True
        elif ch == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if ch == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern()
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise BadPattern()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern()
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPattern()
    return r, rest
