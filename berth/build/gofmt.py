"""Go's fmt verbs as Docker's classic builder applies them to history lines.

`docker history` shows what the builder wrote with Sprintf: `CMD %q` of a
string slice, `VOLUME %v`, `HEALTHCHECK %q` of a struct pointer.  Matching
those bytes keeps berth's images and cache keys readable the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from berth.build.shell import go_quote

__all__ = ["duration", "healthcheck", "quote_rune", "quoted_list", "plain_list"]

_RUNE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v",
                 39: "\\'", 92: "\\\\"}


def quoted_list(items: Sequence[str] | None) -> str:
    """`%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(go_quote(s) for s in items or ()) + "]"


def plain_list(items: Sequence[str] | None) -> str:
    """`%v` of a []string: `[a b]`."""
    return "[" + " ".join(items or ()) + "]"


def quote_rune(n: int) -> str:
    """`%q` of an int: a Go rune literal (`'\\x03'`, `'A'`)."""
    if n < 0 or n > 0x10FFFF or 0xD800 <= n <= 0xDFFF:
        n = 0xFFFD
    if n in _RUNE_ESCAPES:
        return f"'{_RUNE_ESCAPES[n]}'"
    if n < 0x20 or n == 0x7F:
        return f"'\\x{n:02x}'"
    if chr(n).isprintable():
        return f"'{chr(n)}'"
    return f"'\\u{n:04x}'" if n < 0x10000 else f"'\\U{n:08x}'"


def _fraction(value: int, precision: int) -> tuple[str, int]:
    digits = []
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits.append(str(digit))
        value //= 10
    text = "".join(reversed(digits))
    return ("." + text if text else ""), value


def duration(ns: int) -> str:
    """Go's time.Duration.String: `5m0s`, `1.5s`, `300ms`, `0s`."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns
    if u < 1_000_000_000:
        if u < 1_000:
            out = f"{u}ns"
        elif u < 1_000_000:
            frac, whole = _fraction(u, 3)
            out = f"{whole}{frac}\u00b5s"
        else:
            frac, whole = _fraction(u, 6)
            out = f"{whole}{frac}ms"
    else:
        frac, seconds = _fraction(u, 9)
        out = f"{seconds % 60}{frac}s"
        minutes = seconds // 60
        if minutes:
            out = f"{minutes % 60}m" + out
            hours = minutes // 60
            if hours:
                out = f"{hours}h" + out
    return "-" + out if neg else out


def healthcheck(config: Mapping) -> str:
    """`%q` of Docker's *HealthConfig (Test, Interval, Timeout, StartPeriod, Retries)."""
    return ("&{" + quoted_list(config.get("Test")) + " "
            + " ".join(go_quote(duration(config.get(k) or 0)) for k in ("Interval", "Timeout", "StartPeriod"))
            + " " + quote_rune(config.get("Retries") or 0) + "}")
