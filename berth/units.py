"""go-units as the docker CLI and daemon use it: sizes, durations, timestamps.

Shared by every layer (the daemon reports "Up 5 minutes" too), so it lives
at the top of the package beside berth.errors.

Docker's numbers come from github.com/docker/go-units (sizes, "5 minutes"),
Go's time package (durations like "1h2m3.5s", RFC 3339 timestamps) and
moby's api/types/time (the --since/--until values).  Each function here
follows the Go code it is named after, including its rounding and its error
wording, because users compare berth's output with docker's.
"""

from __future__ import annotations

import math
import re
import time as _time
from datetime import datetime, timedelta, timezone

from berth.errors import InvalidArgument

__all__ = [
    "bytes_size",
    "created_ago",
    "created_at",
    "format_duration",
    "format_go_time",
    "format_rfc3339_nano",
    "get_timestamp",
    "human_duration",
    "human_size",
    "parse_duration",
    "parse_duration_ns",
    "parse_human_size",
    "parse_rfc3339_nano",
    "parse_size",
    "parse_timestamp",
    "parse_timestamp_ns",
    "parse_timestamps",
]

_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DECIMAL_MAP = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_BINARY_MAP = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# strconv.ParseFloat's syntax (no spaces; underscores only after a base prefix)
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|0[xX](?:_?[0-9a-fA-F])*(?:\.(?:[0-9a-fA-F]_?)*)?[pP][+-]?[0-9]+"
    r"|inf(?:inity)?|nan)", re.IGNORECASE | re.ASCII)


def _size_and_unit(size: float, base: float, abbrs: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(abbrs) - 1:
        size /= base
        i += 1
    return size, abbrs[i]


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision with decimal units: 2150000 -> "2.15MB".

    The docker CLI prints image and container sizes with precision 3;
    go-units' own HumanSize uses 4.
    """
    value, unit = _size_and_unit(float(size), 1000.0, _DECIMAL_ABBRS)
    return "%.*g%s" % (precision, value, unit)


def bytes_size(size: float) -> str:
    """go-units BytesSize, binary units: 2097152000 -> "1.953GiB"."""
    value, unit = _size_and_unit(float(size), 1024.0, _BINARY_ABBRS)
    return "%.4g%s" % (value, unit)


def _go_parse_float(text: str) -> float:
    if not _GO_FLOAT.fullmatch(text):
        raise InvalidArgument(f"strconv.ParseFloat: parsing {_quote(text)}: invalid syntax")
    t = text.replace("_", "")
    v = float.fromhex(t) if "x" in t.lower() and not t.lower().lstrip("+-").startswith("inf") else float(t)
    if math.isinf(v) and "inf" not in t.lower():
        raise InvalidArgument(f"strconv.ParseFloat: parsing {_quote(text)}: value out of range")
    return v


def _go_int64(f: float) -> int:
    # Go's float-to-int64 conversion on amd64 yields MinInt64 when out of range.
    if math.isnan(f) or not -(2.0**63) <= f < 2.0**63:
        return -(1 << 63)
    return int(f)


def _parse_size(text: str, units: dict[str, int]) -> int:
    """go-units parseSize (v0.5): a number, an optional space, an optional unit suffix."""
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise InvalidArgument(f"invalid size: '{text}'")
    if text[sep] != " ":
        num, sfx = text[: sep + 1], text[sep + 1:]
    else:
        num, sfx = text[:sep], text[sep + 1:]
    size = _go_parse_float(num)
    if size < 0:
        raise InvalidArgument(f"invalid size: '{text}'")
    if not sfx:
        return _go_int64(size)
    low = sfx.lower()
    bad = InvalidArgument(f"invalid suffix: '{low if len(sfx) <= 3 else sfx}'")
    if len(sfx) > 3:
        raise bad
    if low[0] == "b":
        if len(low) > 1:
            raise bad
        return _go_int64(size)
    if low[0] not in units:
        raise bad
    size *= units[low[0]]
    if (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise bad
    return _go_int64(size)


def parse_size(text: str) -> int:
    """go-units RAMInBytes, as `--memory` and `--shm-size` take sizes.

    Binary multipliers for k, m, g, t, p (any case) with an optional "b" or
    "ib": "32m", "32MB" and "32MiB" are all 33554432; "32.3 mb" allows one
    space; a fraction of a byte is truncated.  Errors read like go-units':
    "invalid size: 'hello'", "invalid suffix: 'bm'".
    """
    return _parse_size(text, _BINARY_MAP)


def parse_human_size(text: str) -> int:
    """go-units FromHumanSize: the same syntax with decimal multipliers ("32k" is 32000)."""
    return _parse_size(text, _DECIMAL_MAP)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"."""
    s = int(seconds)  # Go converts with truncation toward zero
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _epoch_seconds(ts: float | int | datetime | str) -> float:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.timestamp()
    if isinstance(ts, str):
        return parse_rfc3339_nano(ts) / 1e9
    return float(ts)


def created_ago(ts: float | int | datetime | str, now: float | None = None) -> str:
    """The CREATED column of `docker ps` / `docker images`: "5 minutes ago".

    `ts` is Unix seconds (the API's Created field), a datetime, or an
    RFC 3339 string; `now` defaults to the current time.
    """
    if now is None:
        now = _time.time()
    return human_duration(now - _epoch_seconds(ts)) + " ago"


# ---------------------------------------------------------------------------
# Go durations

_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
       "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX_INT64 = (1 << 63) - 1


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_duration_ns(text: str) -> int:
    """time.ParseDuration, in nanoseconds: "1h2m3.5s", "300ms", "-1.5h", "0"."""
    orig = text
    invalid = InvalidArgument(f"time: invalid duration {_quote(orig)}")
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        m = re.match(r"[0-9]*", s)
        int_digits = m.group()
        s = s[len(int_digits):]
        v = int(int_digits) if int_digits else 0
        if v > _MAX_INT64 + 1:
            raise invalid
        frac, scale, post = 0, 1.0, False
        if s.startswith("."):
            s = s[1:]
            fm = re.match(r"[0-9]*", s)
            fdigits = fm.group()
            s = s[len(fdigits):]
            post = bool(fdigits)
            overflow = False
            for d in fdigits:  # Go stops accumulating once the value would overflow
                if overflow:
                    continue
                if frac > _MAX_INT64 // 10:
                    overflow = True
                    continue
                frac = frac * 10 + int(d)
                scale *= 10
        if not int_digits and not post:
            raise invalid
        um = re.match(r"[^0-9.]*", s)
        unit = um.group()
        if not unit:
            raise InvalidArgument(f"time: missing unit in duration {_quote(orig)}")
        s = s[len(unit):]
        if unit not in _NS:
            raise InvalidArgument(f"time: unknown unit {_quote(unit)} in duration {_quote(orig)}")
        mult = _NS[unit]
        if v > (1 << 63) // mult:
            raise invalid
        v *= mult
        if frac > 0:
            v += int(float(frac) * (float(mult) / scale))
            if v > 1 << 63:
                raise invalid
        total += v
        if total > 1 << 63:
            raise invalid
    if neg:
        return -total
    if total > _MAX_INT64:
        raise invalid
    return total


def parse_duration(text: str) -> float:
    """time.ParseDuration, in seconds."""
    return parse_duration_ns(text) / 1e9


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of v / 10**prec without trailing zeros, and the integer part."""
    digits = []
    printed = False
    for _ in range(prec):
        d = v % 10
        printed = printed or d != 0
        if printed:
            digits.append(str(d))
        v //= 10
    frac = ("." + "".join(reversed(digits))) if printed else ""
    return frac, v


def format_duration(ns: int) -> str:
    """time.Duration.String: 3723500000000 -> "1h2m3.5s", 0 -> "0s"."""
    neg = ns < 0
    u = -ns if neg else ns
    if u < 1_000_000_000:
        if u == 0:
            return "0s"
        if u < 1_000:
            unit, prec = "ns", 0
        elif u < 1_000_000:
            unit, prec = "\u00b5s", 3
        else:
            unit, prec = "ms", 6
        frac, whole = _fmt_frac(u, prec)
        out = f"{whole}{frac}{unit}"
    else:
        frac, secs = _fmt_frac(u, 9)
        out = f"{secs % 60}{frac}s"
        minutes = secs // 60
        if minutes > 0:
            out = f"{minutes % 60}m" + out
            hours = minutes // 60
            if hours > 0:
                out = f"{hours}h" + out
    return "-" + out if neg else out


# ---------------------------------------------------------------------------
# Go time parsing, for the layouts docker uses

_STD_TOKENS = ("2006", "01", "02", "15", "04", "05", ".999999999", "Z07:00")


class _GoParseError(Exception):
    pass


def _parse_error(layout: str, value: str, layout_elem: str, value_elem: str, message: str = "") -> _GoParseError:
    if message:
        return _GoParseError(f"parsing time {_quote(value)}{message}")
    return _GoParseError(f"parsing time {_quote(value)} as {_quote(layout)}: cannot parse "
                         f"{_quote(value_elem)} as {_quote(layout_elem)}")


def _next_chunk(layout: str) -> tuple[str, str, str]:
    for i in range(len(layout)):
        for tok in _STD_TOKENS:
            if layout.startswith(tok, i):
                return layout[:i], tok, layout[i + len(tok):]
    return layout, "", ""


def _getnum(s: str, fixed: bool) -> tuple[int, str]:
    if not s or not s[0].isascii() or not s[0].isdigit():
        raise ValueError
    if len(s) < 2 or not s[1].isascii() or not s[1].isdigit():
        if fixed:
            raise ValueError
        return int(s[0]), s[1:]
    return int(s[:2]), s[2:]


def _parse_nanoseconds(value: str, nbytes: int) -> int:
    if nbytes > 10:
        value, nbytes = value[:10], 10
    return int(value[1:nbytes]) * 10 ** (10 - nbytes)


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _go_parse(layout: str, value: str, default_offset: int = 0) -> int:
    """time.Parse / ParseInLocation for docker's layouts; returns ns since the epoch."""
    alayout, avalue = layout, value
    year, month, day, hour, minute, sec, nsec = 1, 1, 1, 0, 0, 0, 0
    offset: int | None = None
    while True:
        prefix, std, suffix = _next_chunk(layout)
        # literal text must match exactly
        if not value.startswith(prefix):
            k = 0
            while k < len(prefix) and k < len(value) and value[k] == prefix[k]:
                k += 1
            raise _parse_error(alayout, avalue, prefix, value[k:])
        value = value[len(prefix):]
        if not std:
            if value:
                raise _parse_error(alayout, avalue, "", value, f": extra text: {_quote(value)}")
            break
        layout = suffix
        hold = value
        range_err = ""
        try:
            if std == "2006":
                if len(value) < 4 or not value[:4].isascii() or not value[:4].isdigit():
                    raise ValueError
                year, value = int(value[:4]), value[4:]
            elif std == "01":
                month, value = _getnum(value, True)
                if not 1 <= month <= 12:
                    range_err = "month"
            elif std == "02":
                day, value = _getnum(value, True)
            elif std == "15":
                hour, value = _getnum(value, False)
                if not 0 <= hour < 24:
                    range_err = "hour"
            elif std == "04":
                minute, value = _getnum(value, True)
                if not 0 <= minute < 60:
                    range_err = "minute"
            elif std == "05":
                sec, value = _getnum(value, True)
                if not 0 <= sec < 60:
                    range_err = "second"
                elif len(value) >= 2 and value[0] in ".," and value[1].isdigit() and \
                        _next_chunk(layout)[1] != ".999999999":
                    # Go accepts a fraction after seconds even when the layout has none.
                    n = 2
                    while n < len(value) and value[n].isascii() and value[n].isdigit():
                        n += 1
                    nsec = _parse_nanoseconds(value, n)
                    value = value[n:]
            elif std == ".999999999":
                if len(value) >= 2 and value[0] in ".," and "0" <= value[1] <= "9":
                    i = 0
                    while i + 1 < len(value) and "0" <= value[i + 1] <= "9":
                        i += 1
                    nsec = _parse_nanoseconds(value, 1 + i)
                    value = value[1 + i:]
            elif std == "Z07:00":
                if value.startswith("Z"):
                    value, offset = value[1:], 0
                else:
                    if len(value) < 6 or value[3] != ":":
                        raise ValueError
                    sign, hh, mm, value = value[0], value[1:3], value[4:6], value[6:]
                    hr, _ = _getnum(hh, True)
                    mi, _ = _getnum(mm, True)
                    if hr > 24:
                        range_err = "time zone offset hour"
                    if mi > 60:
                        range_err = "time zone offset minute"
                    if sign not in "+-":
                        raise ValueError
                    offset = (hr * 60 + mi) * 60 * (1 if sign == "+" else -1)
        except ValueError:
            raise _parse_error(alayout, avalue, std, hold) from None
        if range_err:
            raise _parse_error(alayout, avalue, std, value, f": {range_err} out of range")
    if day < 1 or day > _days_in(month, year):
        raise _parse_error(alayout, avalue, "", value, ": day out of range")
    if offset is None:
        offset = default_offset
    try:
        base = datetime(year, month, day, hour, minute, sec, tzinfo=timezone.utc)
    except ValueError:
        raise _parse_error(alayout, avalue, "", "", ": year out of range") from None
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    d = base - epoch
    seconds = d.days * 86400 + d.seconds - offset
    return seconds * 1_000_000_000 + nsec


_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"


def parse_rfc3339_nano(text: str) -> int:
    """time.Parse(time.RFC3339Nano, text), as nanoseconds since the epoch."""
    try:
        return _go_parse(_RFC3339_NANO, text)
    except _GoParseError as e:
        raise InvalidArgument(str(e)) from None


def _reference(reference: datetime | None) -> datetime:
    if reference is None:
        return datetime.now().astimezone()
    if reference.tzinfo is None:
        return reference.astimezone()
    return reference


def get_timestamp(value: str, reference: datetime | None = None) -> str:
    """moby's GetTimestamp: what the docker client sends for --since / --until.

    A Go duration ("10m", "1h30m") means that long before `reference` (now
    by default) and becomes whole Unix seconds; RFC 3339 and its shorter
    forms ("2006-01-02", "2006-01-02T15:04") become "seconds.nanoseconds",
    in the reference's time zone when the value names none; a Unix
    timestamp ("1136073600", "1136073600.5") passes through unchanged.
    """
    ref = _reference(reference)
    if value != "0":
        try:
            d = parse_duration_ns(value)
        except InvalidArgument:
            pass
        else:
            ref_ns = _datetime_ns(ref)
            return str((ref_ns - d) // 1_000_000_000)

    parse_in_location = not any(c in value for c in "zZ+") and value.count("-") != 3
    if "." in value:
        layout = "2006-01-02T15:04:05.999999999" if parse_in_location else _RFC3339_NANO
    elif "T" in value:
        tcolons = value.count(":")
        if not parse_in_location and not any(c in value for c in "zZ") and tcolons > 0:
            tcolons -= 1  # the zone offset's colon
        if parse_in_location:
            layout = ["2006-01-02T15", "2006-01-02T15:04"][tcolons] if tcolons < 2 else "2006-01-02T15:04:05"
        else:
            layout = ["2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00"][tcolons] if tcolons < 2 else _RFC3339
    elif parse_in_location:
        layout = "2006-01-02"
    else:
        layout = "2006-01-02Z07:00"

    # Go's FixedZone(reference.Zone()): the reference's offset now, not the
    # offset in force at the parsed date.
    local_offset = int(ref.utcoffset().total_seconds()) if parse_in_location else 0
    try:
        ns = _go_parse(layout, value, local_offset)
    except _GoParseError as e:
        if "-" in value:
            raise InvalidArgument(str(e)) from None
        try:
            parse_timestamps(value, 0)
        except InvalidArgument:
            raise InvalidArgument(f"failed to parse value as time or duration: {_quote(value)}") from None
        return value
    sec, nsec = divmod(ns, 1_000_000_000)
    return f"{sec}.{nsec:09d}"


def parse_timestamps(value: str, default_seconds: int) -> tuple[int, int]:
    """moby's ParseTimestamps: "seconds[.fraction]" into (seconds, nanoseconds).

    An empty value gives (default_seconds, 0); digits beyond nanoseconds are
    dropped.
    """
    if value == "":
        return default_seconds, 0
    s, dot, n = value.partition(".")
    try:
        sec = _go_int(s)
        if not dot:
            return sec, 0
        nsec = _go_int(n)
    except ValueError:
        raise InvalidArgument(f"failed to parse value as time or duration: {_quote(value)}") from None
    nsec = int(float(nsec) * math.pow(10, 9 - len(n)))
    return sec, nsec


def _go_int(s: str) -> int:
    """strconv.ParseInt(s, 10, 64): optional sign, ASCII digits, int64 range."""
    if not re.fullmatch(r"[+-]?[0-9]+", s, re.ASCII):
        raise ValueError(s)
    v = int(s)
    if not -(1 << 63) <= v <= _MAX_INT64:
        raise ValueError(s)
    return v


def parse_timestamp_ns(value: str, reference: datetime | None = None) -> int:
    """A --since / --until value as nanoseconds since the epoch (get_timestamp, then parse_timestamps)."""
    sec, nsec = parse_timestamps(get_timestamp(value, reference), 0)
    return sec * 1_000_000_000 + nsec


def parse_timestamp(value: str, reference: datetime | None = None) -> float:
    """A --since / --until value as Unix seconds: "10m", "2024-01-02T15:04:05Z", "1700000000.5"."""
    return parse_timestamp_ns(value, reference) / 1e9


# ---------------------------------------------------------------------------
# Formatting times


def _datetime_ns(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    d = t - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000


def _split_ns(t: datetime | int) -> tuple[datetime, int]:
    """A wall-clock datetime (second precision) in its zone, and the nanoseconds."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.replace(microsecond=0), t.microsecond * 1000
    sec, nsec = divmod(int(t), 1_000_000_000)
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=sec), nsec


def _zone(offset: timedelta, colon: bool) -> str:
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hh, mm = total // 3600, total % 3600 // 60
    return f"{sign}{hh:02d}:{mm:02d}" if colon else f"{sign}{hh:02d}{mm:02d}"


def format_rfc3339_nano(t: datetime | int) -> str:
    """Go's RFC3339Nano as Docker writes timestamps: "2024-01-02T03:04:05.123456789Z".

    `t` is a datetime (naive means UTC) or nanoseconds since the epoch (UTC).
    Trailing zeros of the fraction are dropped, and the dot with them.
    """
    wall, nsec = _split_ns(t)
    frac = f".{nsec:09d}".rstrip("0").rstrip(".")
    off = wall.utcoffset() or timedelta(0)
    zone = "Z" if off == timedelta(0) else _zone(off, True)
    return f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d}T{wall.hour:02d}:{wall.minute:02d}:{wall.second:02d}{frac}{zone}"


def format_go_time(t: datetime | int) -> str:
    """Go's Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST".

    `t` is an aware datetime or nanoseconds since the epoch (shown in the
    local zone, as Go's time.Unix gives).
    """
    if not isinstance(t, datetime):
        sec, nsec = divmod(int(t), 1_000_000_000)
        wall = datetime.fromtimestamp(sec).astimezone()
    else:
        wall, nsec = _split_ns(t)
    frac = f".{nsec:09d}".rstrip("0").rstrip(".")
    off = wall.utcoffset() or timedelta(0)
    name = wall.tzname() or ""
    if not name or name.startswith(("UTC+", "UTC-")):
        name = _zone(off, False)  # Go shows the offset when the zone has no abbreviation
    return (f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d} {wall.hour:02d}:{wall.minute:02d}:"
            f"{wall.second:02d}{frac} {_zone(off, False)} {name}")


def created_at(unix_seconds: int) -> str:
    """The CREATED AT column of `docker ps`: time.Unix(created, 0).String() in local time."""
    return format_go_time(int(unix_seconds) * 1_000_000_000)
