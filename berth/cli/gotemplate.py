"""Go text/template, as the docker CLI runs it for `--format` / `-f`.

Users paste format strings from Docker's documentation and from years of shell
history, so this follows Go's text/template (lexer, parser and executor) and
Go's fmt closely enough that the same template prints the same bytes, and a
broken one fails with Go's message.  Behaviour was checked against the docker
28.2 CLI (Go 1.24) rather than recalled.

Data model: the CLI hands templates the engine's JSON-shaped data, so values
are Python dicts (Go maps), lists, str, int (Go int), float (Go float64),
bool and None.  Two additions cover what the docker CLI does with Go types:

* `Struct` is a dict that behaves like a Go struct: a missing field is an
  error instead of `<no value>`, `%v` prints `{a b}`, and its fields keep
  their order in `json`.
* A callable value is a Go method: `{{.Label "com.example"}}` calls it with
  the arguments, `{{.Size}}` calls it with none.

Public API: `compile(text) -> Template`, `Template.execute(data) -> str`,
`render(text, data)`, plus the Go helpers the CLI needs elsewhere:
`marshal_json` (encoding/json), `sprint`, `sprintf`, `sprintln` (fmt).
"""

from __future__ import annotations

import codecs
import dataclasses
import inspect
import json
import math
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from berth.errors import BerthError, InvalidArgument

__all__ = [
    "Func",
    "Struct",
    "Template",
    "TemplateError",
    "compile",
    "marshal_json",
    "render",
    "sprint",
    "sprintf",
    "sprintln",
]


class TemplateError(InvalidArgument):
    """A template failed to parse or to execute; the message is Go's.

    `output` holds what an execution wrote before it failed (Go leaves it in
    the writer; the docker CLI prints a table header's partial output).
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class _NoArg:
    """Go's missingVal: "no pipeline value to pass on", unlike MISSING, which is a value."""

    def __repr__(self) -> str:
        return "NOARG"


_NOARG = _NoArg()
_OVERFLOW = object()  # an integer constant beyond Go's int


class _NilPointer:
    """A struct field holding None: Go's typed nil pointer, printed `<nil>`, not `<no value>`."""

    def __repr__(self) -> str:
        return "NIL"


_NIL = _NilPointer()


class Struct(dict):
    """A dict that templates treat as a Go struct named `go_type`.

    Docker formats typed structs; a field the struct lacks is an execution
    error there (`can't evaluate field X in type T`), where a map would
    print `<no value>`.
    """

    __slots__ = ("go_type",)

    def __init__(self, fields: Mapping[str, Any] | Iterable = (), /, go_type: str = "struct", **kw):
        super().__init__(fields, **kw)
        self.go_type = go_type

    def __repr__(self) -> str:
        return f"Struct({dict.__repr__(self)}, go_type={self.go_type!r})"


# ---------------------------------------------------------------------------
# Go type names and value helpers


def _is_struct(v: Any) -> bool:
    return isinstance(v, Struct) or (dataclasses.is_dataclass(v) and not isinstance(v, type))


def _struct_fields(v: Any) -> list[tuple[str, Any]]:
    """The data fields of a struct, in order; methods are not fields."""
    if isinstance(v, Struct):
        return [(k, x) for k, x in v.items() if not callable(x)]
    return [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]


def _type_name(v: Any) -> str:
    if v is None:
        return "interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Struct):
        return v.go_type
    if dataclasses.is_dataclass(v):
        return type(v).__name__
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if callable(v):
        return "func"
    return type(v).__name__


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def _is_map(v: Any) -> bool:
    return isinstance(v, Mapping) and not isinstance(v, Struct)


def _sorted_items(m: Mapping) -> list[tuple[Any, Any]]:
    """Go prints and ranges over maps in key order."""
    try:
        return sorted(m.items(), key=lambda kv: kv[0])
    except TypeError:
        return sorted(m.items(), key=lambda kv: str(kv[0]))


def _truth(v: Any) -> bool:
    """Go's template truth: the zero value of the type is false."""
    if v is MISSING or v is None or v is _NIL:
        return False
    if _is_struct(v):
        return True
    if isinstance(v, (str, list, tuple, Mapping)):
        return len(v) > 0
    if isinstance(v, (bool, int, float, complex)):
        return v != 0
    return True


# ---------------------------------------------------------------------------
# Go fmt


def _go_quote(s: str, ascii_only: bool = False, quote: str = '"') -> str:
    """strconv.Quote / QuoteRune."""
    out = [quote]
    for ch in s:
        o = ord(ch)
        if ch == quote or ch == "\\":
            out.append("\\" + ch)
        elif (o < 0x80 or not ascii_only) and ch.isprintable():
            out.append(ch)
        elif ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append(quote)
    return "".join(out)


_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _shortest_digits(f: float) -> tuple[str, int]:
    """The shortest digit string that round-trips, and the decimal point position.

    Python's repr and Go's strconv both pick the shortest round-tripping
    decimal, so the digits agree.
    """
    if f == 0:
        return "", 0
    _, digits, exp = Decimal(repr(abs(f))).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0")
    trailing = len(digits) - len(ds)
    exp += trailing
    return ds, len(ds) + exp


def _exp_str(e: int) -> str:
    return ("-" if e < 0 else "+") + f"{abs(e):02d}"


def _format_float(f: float, verb: str, prec: int, sharp: bool = False) -> str:
    """strconv.FormatFloat(f, verb, prec, 64), with '-' for negatives."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = math.copysign(1.0, f) < 0
    a = abs(f)
    if verb in "xX":
        body = _hex_float(a, prec)
        body = body.upper() if verb == "X" else body
    elif verb == "b":
        if a == 0:
            body = "0p-1074"
        else:
            m, e = math.frexp(a)
            mant, exp = int(m * (1 << 53)), e - 53
            if exp < -1074:  # denormal: Go keeps the exponent at -1074
                mant >>= -1074 - exp
                exp = -1074
            body = f"{mant}p{'+' if exp >= 0 else '-'}{abs(exp)}"
    elif prec >= 0 or sharp:
        if sharp and prec < 0:
            prec = 6
        if verb in "gG" and prec == 0:
            prec = 1
        body = ("%" + ("#" if sharp else "") + "." + str(prec) + verb) % a
    else:
        digits, dp = _shortest_digits(a)
        if verb in "eE":
            body = _fmt_e(digits, dp, len(digits) - 1 if digits else 0, verb)
        elif verb == "f":
            body = _fmt_f(digits, dp, max(len(digits) - dp, 0))
        else:  # g, G shortest: %e when the exponent is < -4 or >= 6 (eprec for shortest)
            exp = dp - 1 if digits else 0
            if digits and (exp < -4 or exp >= 6):
                body = _fmt_e(digits, dp, len(digits) - 1, "e" if verb == "g" else "E")
            else:
                body = _fmt_f(digits, dp, max(len(digits) - dp, 0))
    return ("-" if neg else "") + body


def _fmt_e(digits: str, dp: int, prec: int, verb: str) -> str:
    if not digits:
        return "0" + ("." + "0" * prec if prec > 0 else "") + verb + "+00"
    d = digits.ljust(prec + 1, "0")
    mant = d[0] + ("." + d[1 : prec + 1] if prec > 0 else "")
    return mant + verb + _exp_str(dp - 1)


def _fmt_f(digits: str, dp: int, prec: int) -> str:
    if not digits:
        return "0" + ("." + "0" * prec if prec > 0 else "")
    if dp <= 0:
        ip, fp = "0", "0" * (-dp) + digits
    elif dp >= len(digits):
        ip, fp = digits + "0" * (dp - len(digits)), ""
    else:
        ip, fp = digits[:dp], digits[dp:]
    fp = fp.ljust(prec, "0")[:prec]
    return ip + ("." + fp if prec > 0 else "")


def _hex_float(a: float, prec: int) -> str:
    """Go's %x for floats: 0x1.8p+01 with a two-digit decimal exponent."""
    if a == 0:
        mant, exp = "0", 0
        frac = ""
    else:
        h = a.hex()  # 0x1.8000000000000p+1 (or 0x0.… for denormals)
        m = re.fullmatch(r"0x([01])\.([0-9a-f]+)p([+-]\d+)", h)
        lead, frac, exp = m.group(1), m.group(2), int(m.group(3))
        if lead == "0":  # normalise denormals the way Go does
            bits = int(frac, 16)
            shift = 52 - bits.bit_length() + 1
            bits <<= shift
            exp -= shift
            bits &= (1 << 52) - 1
            frac = f"{bits:013x}"
        mant = "1"
    if prec >= 0:
        bits = int(frac or "0", 16) if frac else 0
        nbits = 4 * len(frac)
        if prec < len(frac):
            drop = nbits - 4 * prec
            full = (1 << nbits) | bits
            q, r = divmod(full, 1 << drop)
            half = 1 << (drop - 1)
            if r > half or (r == half and q & 1):
                q += 1
            if q >> (4 * prec) >= 2:
                q >>= 1
                exp += 1
            frac = f"{q & ((1 << 4 * prec) - 1):0{prec}x}" if prec else ""
        else:
            frac = frac.ljust(prec, "0")
    else:
        frac = frac.rstrip("0")
    return "0x" + mant + ("." + frac if frac else "") + "p" + _exp_str(exp)


@dataclass
class _Flags:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    plus_v: bool = False
    sharp_v: bool = False
    wid: int = 0
    prec: int = 0
    wid_present: bool = False
    prec_present: bool = False


class _Printer:
    """One fmt call's state: the output buffer and the current verb's flags."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.f = _Flags()

    # -- padding ---------------------------------------------------------

    def _padding(self, n: int) -> str:
        if n <= 0:
            return ""
        return ("0" if self.f.zero and not self.f.minus else " ") * n

    def pad(self, s: str) -> None:
        f = self.f
        if not f.wid_present or f.wid == 0:
            self.buf.append(s)
            return
        n = f.wid - len(s)
        if f.minus:
            self.buf.append(s + " " * max(n, 0))
        else:
            self.buf.append(self._padding(n) + s)

    # -- per-type formatting ------------------------------------------------

    def bad_verb(self, verb: str, arg: Any) -> None:
        self.buf.append("%!" + verb + "(")
        if arg is None or arg is MISSING:
            self.buf.append("<nil>")
        else:
            self.buf.append(_type_name(arg) + "=")
            self.print_arg(arg, "v")
        self.buf.append(")")

    def print_arg(self, arg: Any, verb: str) -> None:
        if arg is MISSING:
            arg = None
        if arg is None:
            if verb in "Tv":
                self.pad("<nil>")
            else:
                self.bad_verb(verb, arg)
            return
        if verb == "T":
            self.pad(_type_name(arg))
            return
        if isinstance(arg, bool):
            if verb in "tv":
                self.pad("true" if arg else "false")
            else:
                self.bad_verb(verb, arg)
        elif isinstance(arg, int):
            self.fmt_int(arg, verb)
        elif isinstance(arg, float):
            self.fmt_float(arg, verb)
        elif isinstance(arg, complex):
            self.fmt_complex(arg, verb)
        elif isinstance(arg, str):
            self.fmt_str(arg, verb)
        else:
            self.print_value(arg, verb, 0)

    def print_value(self, v: Any, verb: str, depth: int) -> None:
        """Composite values: Go formats each element with the same verb."""
        if depth > 0 and (v is None or v is MISSING):
            self.pad("<nil>")
            return
        if depth > 0 and not _is_list(v) and not isinstance(v, Mapping) and not _is_struct(v):
            self.print_arg(v, verb)
            return
        if _is_struct(v):
            self.buf.append("{")
            for i, (name, x) in enumerate(_struct_fields(v)):
                if i:
                    self.buf.append(", " if self.f.sharp_v else " ")
                if self.f.plus_v or self.f.sharp_v:
                    self.buf.append(name + ":")
                self.print_value(x, verb, depth + 1)
            self.buf.append("}")
        elif _is_list(v):
            if self.f.sharp_v:
                self.buf.append("[]interface {}{")
                for i, x in enumerate(v):
                    if i:
                        self.buf.append(", ")
                    self.print_value(x, verb, depth + 1)
                self.buf.append("}")
                return
            self.buf.append("[")
            for i, x in enumerate(v):
                if i:
                    self.buf.append(" ")
                self.print_value(x, verb, depth + 1)
            self.buf.append("]")
        elif isinstance(v, Mapping):
            items = _sorted_items(v)
            if self.f.sharp_v:
                self.buf.append("map[string]interface {}{")
                for i, (k, x) in enumerate(items):
                    if i:
                        self.buf.append(", ")
                    self.print_value(k, verb, depth + 1)
                    self.buf.append(":")
                    self.print_value(x, verb, depth + 1)
                self.buf.append("}")
                return
            self.buf.append("map[")
            for i, (k, x) in enumerate(items):
                if i:
                    self.buf.append(" ")
                self.print_value(k, verb, depth + 1)
                self.buf.append(":")
                self.print_value(x, verb, depth + 1)
            self.buf.append("]")
        elif callable(v):
            self.pad("0x0")  # Go prints a func's address; there is none to show
        else:
            self.fmt_str(str(v), verb)

    def fmt_int(self, v: int, verb: str) -> None:
        if verb in "vd":
            self._integer(v, 10, verb, "0123456789abcdef")
        elif verb == "b":
            self._integer(v, 2, verb, "01")
        elif verb in "oO":
            self._integer(v, 8, verb, "01234567")
        elif verb == "x":
            self._integer(v, 16, verb, "0123456789abcdef")
        elif verb == "X":
            self._integer(v, 16, verb, "0123456789ABCDEF")
        elif verb == "c":
            self.pad(_rune(v))
        elif verb == "q":
            r = _rune(v)
            if self.f.sharp and r.isprintable() and r != "`":
                self.pad("'" + r + "'")
            else:
                self.pad(_go_quote(r, self.f.plus, "'"))
        elif verb == "U":
            s = f"U+{v:04X}" if v >= 0 else f"U+{v & 0xFFFFFFFFFFFFFFFF:X}"
            if self.f.prec_present and self.f.prec > 4:
                s = f"U+{v:0{self.f.prec}X}"
            if self.f.sharp and 0 <= v <= 0x10FFFF and chr(v).isprintable():
                s += " '" + chr(v) + "'"
            old, self.f.zero = self.f.zero, False
            self.pad(s)
            self.f.zero = old
        elif verb in "eEfFgGxX":
            self.fmt_float(float(v), verb)
        else:
            self.bad_verb(verb, v)

    def _integer(self, v: int, base: int, verb: str, digits: str) -> None:
        f = self.f
        neg = v < 0
        u = -v if neg else v
        if f.prec_present:
            prec = f.prec
            if prec == 0 and u == 0:
                old, f.zero = f.zero, False
                self.buf.append(self._padding(f.wid) if f.wid_present else "")
                f.zero = old
                return
        elif f.zero and not f.minus and f.wid_present:
            prec = f.wid - (1 if (neg or f.plus or f.space) else 0)
        else:
            prec = 0
        s = ""
        while True:
            u, r = divmod(u, base)
            s = digits[r] + s
            if u == 0:
                break
        s = s.rjust(prec, "0")
        if f.sharp:
            if base == 2:
                s = "0b" + s
            elif base == 8 and s[0] != "0":
                s = "0" + s
            elif base == 16:
                s = ("0x" if verb == "x" else "0X") + s
        if verb == "O":
            s = "0o" + s
        sign = "-" if neg else "+" if f.plus else " " if f.space else ""
        old, f.zero = f.zero, False
        self.pad(sign + s)
        f.zero = old

    def fmt_float(self, v: float, verb: str) -> None:
        f = self.f
        if verb == "v":
            num = _format_float(v, "g", f.prec if f.prec_present else -1, False)
        elif verb in "bgGxX":
            num = _format_float(v, verb, f.prec if f.prec_present else -1, f.sharp and verb in "gG")
        elif verb in "fFeE":
            num = _format_float(v, "f" if verb == "F" else verb, f.prec if f.prec_present else 6, f.sharp)
        else:
            self.bad_verb(verb, v)
            return
        if num[0] not in "+-":
            num = "+" + num
        if f.space and num[0] == "+" and not f.plus:
            num = " " + num[1:]
        if num[1] in "IN":  # infinities and NaN are never zero padded
            old, f.zero = f.zero, False
            if num[1] == "N" and not f.space and not f.plus:
                num = num[1:]
            self.pad(num)
            f.zero = old
            return
        if f.plus or num[0] != "+":
            if f.zero and not f.minus and f.wid_present and f.wid > len(num):
                self.buf.append(num[0] + "0" * (f.wid - len(num)) + num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    def fmt_complex(self, v: complex, verb: str) -> None:
        if verb not in "vbgGxXfFeE":
            self.bad_verb(verb, v)
            return
        old_plus = self.f.plus
        self.buf.append("(")
        self.fmt_float(v.real, verb)
        self.f.plus = True
        self.fmt_float(v.imag, verb)
        self.buf.append("i)")
        self.f.plus = old_plus

    def fmt_str(self, s: str, verb: str) -> None:
        f = self.f
        if verb == "v" and f.sharp_v:
            self.pad(_go_quote(s))
        elif verb in "vs":
            self.pad(s[: f.prec] if f.prec_present else s)
        elif verb in "xX":
            self._hex_bytes(s.encode("utf-8", "surrogatepass"), verb)
        elif verb == "q":
            if f.prec_present:
                s = s[: f.prec]
            if f.sharp and "`" not in s and all(c == "\t" or c.isprintable() for c in s):
                self.pad("`" + s + "`")
            else:
                self.pad(_go_quote(s, f.plus))
        else:
            self.bad_verb(verb, s)

    def _hex_bytes(self, b: bytes, verb: str) -> None:
        f = self.f
        if f.prec_present:
            b = b[: f.prec]
        digits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
        prefix = "0x" if verb == "x" else "0X"
        parts = []
        for i, c in enumerate(b):
            if f.space and i > 0:
                parts.append(" ")
            if f.sharp and (f.space or i == 0):
                parts.append(prefix)
            parts.append(digits[c >> 4] + digits[c & 15])
        self.pad("".join(parts))


def _rune(v: int) -> str:
    if 0 <= v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF:
        return chr(v)
    return "\ufffd"


def _parse_num(s: str, i: int) -> tuple[int, bool, int]:
    start = i
    n = 0
    while i < len(s) and s[i].isdigit() and s[i] in "0123456789":
        n = n * 10 + int(s[i])
        if n > 1_000_000:
            return 0, False, len(s)
        i += 1
    return n, i > start, i


def sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf."""
    p = _Printer()
    argn = 0
    reordered = False
    after_index = False
    i, end = 0, len(fmt)
    nargs = len(args)

    def arg_number(argn: int, i: int) -> tuple[int, int, bool, bool]:
        nonlocal reordered
        if i >= end or fmt[i] != "[":
            return argn, i, False, True
        reordered = True
        close = fmt.find("]", i + 1)
        if close < 0 or close - i < 2:
            return argn, i + 1 if close < 0 else close + 1, False, False
        num, ok, ni = _parse_num(fmt, i + 1)
        if not ok or ni != close:
            return argn, close + 1, False, False
        if 0 <= num - 1 < nargs:
            return num - 1, close + 1, True, True
        return argn, close + 1, True, False

    def int_from_arg(argn: int) -> tuple[int, bool, int]:
        if argn < nargs:
            a = args[argn]
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) <= 1_000_000:
                return a, True, argn + 1
            return 0, False, argn + 1
        return 0, False, argn

    while i < end:
        good = True
        j = fmt.find("%", i)
        if j < 0:
            p.buf.append(fmt[i:])
            break
        p.buf.append(fmt[i:j])
        i = j + 1
        f = p.f = _Flags()
        while i < end and fmt[i] in "#0+- ":
            c = fmt[i]
            if c == "#":
                f.sharp = True
            elif c == "0":
                f.zero = True
            elif c == "+":
                f.plus = True
            elif c == "-":
                f.minus = True
            else:
                f.space = True
            i += 1
        argn, i, after_index, ok = arg_number(argn, i)
        good = good and ok
        if i < end and fmt[i] == "*":
            i += 1
            f.wid, f.wid_present, argn = int_from_arg(argn)
            if not f.wid_present:
                p.buf.append("%!(BADWIDTH)")
            if f.wid < 0:
                f.wid, f.minus, f.zero = -f.wid, True, False
            after_index = False
        else:
            f.wid, f.wid_present, i = _parse_num(fmt, i)
            if after_index and f.wid_present:
                good = False
        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                good = False
            argn, i, after_index, ok = arg_number(argn, i)
            good = good and ok
            if i < end and fmt[i] == "*":
                i += 1
                f.prec, f.prec_present, argn = int_from_arg(argn)
                if f.prec < 0:
                    f.prec, f.prec_present = 0, False
                if not f.prec_present:
                    p.buf.append("%!(BADPREC)")
                after_index = False
            else:
                f.prec, f.prec_present, i = _parse_num(fmt, i)
                if not f.prec_present:
                    f.prec, f.prec_present = 0, True
        if not after_index:
            argn, i, after_index, ok = arg_number(argn, i)
            good = good and ok
        if i >= end:
            p.buf.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            p.buf.append("%")
        elif not good:
            p.buf.append(f"%!{verb}(BADINDEX)")
        elif argn >= nargs:
            p.buf.append(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                f.sharp_v, f.sharp = f.sharp, False
                f.plus_v, f.plus = f.plus, False
            p.print_arg(args[argn], verb)
            argn += 1
    if not reordered and argn < nargs:
        p.f = _Flags()
        p.buf.append("%!(EXTRA ")
        for k, a in enumerate(args[argn:]):
            if k:
                p.buf.append(", ")
            if a is None or a is MISSING:
                p.buf.append("<nil>")
            else:
                p.buf.append(_type_name(a) + "=")
                p.print_arg(a, "v")
        p.buf.append(")")
    return "".join(p.buf)


def sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    p = _Printer()
    prev_string = False
    for n, a in enumerate(args):
        is_string = isinstance(a, str)
        if n > 0 and not is_string and not prev_string:
            p.buf.append(" ")
        p.print_arg(a, "v")
        prev_string = is_string
    return "".join(p.buf)


def sprintln(*args: Any) -> str:
    """fmt.Sprintln: operands always separated by spaces, then a newline."""
    p = _Printer()
    for n, a in enumerate(args):
        if n:
            p.buf.append(" ")
        p.print_arg(a, "v")
    p.buf.append("\n")
    return "".join(p.buf)


# ---------------------------------------------------------------------------
# encoding/json


_JSON_ESCAPE = re.compile("[\x00-\x1f\"\\\\\u2028\u2029\ud800-\udfff]")
_JSON_ESCAPE_HTML = re.compile("[\x00-\x1f\"\\\\\u2028\u2029\ud800-\udfff<>&]")
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _json_char(m: re.Match) -> str:
    c = m.group()
    if c in _JSON_SHORT:
        return _JSON_SHORT[c]
    o = ord(c)
    if 0xD800 <= o <= 0xDFFF:
        return "\\ufffd"
    return f"\\u{o:04x}"


def _json_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {_format_float(f, 'g', -1)}")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = _format_float(f, "e", -1)
        # encoding/json writes 1e-7 where strconv writes 1e-07
        s = re.sub(r"e-0(\d)$", r"e-\1", s)
        return s
    return _format_float(f, "f", -1)


def marshal_json(value: Any, *, escape_html: bool = True, indent: str | None = None, prefix: str = "") -> str:
    """Go's encoding/json: json.Marshal, or json.MarshalIndent when `indent` is given.

    Compact output, keys in the order given (Go sorts map keys; callers that
    need that pass sorted data), floats written the way Go writes them,
    `<`, `>` and `&` escaped unless `escape_html` is off (the docker CLI's
    `json` template function turns it off).  Values that define
    `__go_json__()` supply their own JSON text, as a Go json.Marshaler does.
    """
    esc = _JSON_ESCAPE_HTML if escape_html else _JSON_ESCAPE
    out: list[str] = []

    def string(s: str) -> None:
        out.append('"' + esc.sub(_json_char, s) + '"')

    def newline(depth: int) -> None:
        out.append("\n" + prefix + indent * depth)

    def enc(v: Any, depth: int) -> None:
        hook = getattr(type(v), "__go_json__", None)
        if hook is not None:
            raw = hook(v)
            if indent is None:
                out.append(raw)
            else:
                enc(json.loads(raw), depth)  # re-indent, as json.MarshalIndent does
            return
        if v is None or v is MISSING:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            out.append(_json_float(v))
        elif isinstance(v, str):
            string(v)
        elif _is_struct(v) or isinstance(v, Mapping):
            items = _struct_fields(v) if _is_struct(v) else list(v.items())
            items = [(k, x) for k, x in items if not callable(x)]
            if not items:
                out.append("{}")
                return
            out.append("{")
            for n, (k, x) in enumerate(items):
                if n:
                    out.append(",")
                if indent is not None:
                    newline(depth + 1)
                string(k if isinstance(k, str) else str(k))
                out.append(": " if indent is not None else ":")
                enc(x, depth + 1)
            if indent is not None:
                newline(depth)
            out.append("}")
        elif _is_list(v):
            if not v:
                out.append("[]")
                return
            out.append("[")
            for n, x in enumerate(v):
                if n:
                    out.append(",")
                if indent is not None:
                    newline(depth + 1)
                enc(x, depth + 1)
            if indent is not None:
                newline(depth)
            out.append("]")
        else:
            raise TypeError(f"json: unsupported type: {_type_name(v)}")

    enc(value, 0)
    return "".join(out)


# ---------------------------------------------------------------------------
# Lexer


_EOF, _ERROR, _TEXT, _LDELIM, _RDELIM, _SPACE = "EOF", "error", "text", "{{", "}}", "space"
_IDENT, _FIELD, _VAR, _STRING, _RAWSTRING, _CHARCONST = "ident", "field", "var", "string", "rawstring", "charconst"
_NUMBER, _COMPLEX, _BOOL, _PIPE, _LPAREN, _RPAREN = "number", "complex", "bool", "|", "(", ")"
_DECLARE, _ASSIGN, _CHAR, _COMMENT = ":=", "=", "char", "comment"
_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "nil", "range", "template", "with"}
_DOT = "."  # keyword-class token, printed as <.>


@dataclass
class _Token:
    typ: str
    val: str
    pos: int
    line: int

    def __str__(self) -> str:
        if self.typ == _EOF:
            return "EOF"
        if self.typ == _ERROR:
            return self.val
        if self.typ in _KEYWORDS or self.typ == _DOT:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _is_space(c: str) -> bool:
    return c != "" and c in " \t\r\n"


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or (c.isdigit() and unicodedata.category(c) == "Nd")


class _Lexer:
    """Go's text/template lexer, run to completion up to the first error."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self.start = 0
        self.line = 1
        self.start_line = 1
        self.paren = 0
        self.tokens: list[_Token] = []

    def run(self) -> list[_Token]:
        state = self.lex_text
        while state is not None:
            state = state()
        return self.tokens

    # -- primitives --------------------------------------------------------

    def next(self) -> str:
        if self.pos >= len(self.s):
            self.pos += 1  # so backup() after EOF is symmetric
            return ""
        c = self.s[self.pos]
        self.pos += 1
        if c == "\n":
            self.line += 1
        return c

    def backup(self) -> None:
        self.pos -= 1
        if self.pos < len(self.s) and self.s[self.pos] == "\n":
            self.line -= 1

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < len(self.s) else ""

    def emit(self, typ: str) -> None:
        self.tokens.append(_Token(typ, self.s[self.start : self.pos], self.start, self.start_line))
        self.start = self.pos
        self.start_line = self.line

    def ignore(self) -> None:
        self.line += self.s.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def errorf(self, msg: str) -> None:
        self.tokens.append(_Token(_ERROR, msg, self.start, self.start_line))
        return None

    def accept(self, valid: str) -> bool:
        c = self.next()
        if c and c in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            c = self.next()
            if not c or c not in valid:
                break
        self.backup()

    def at_right_delim(self) -> tuple[bool, bool]:
        rest = self.s[self.pos :]
        if len(rest) >= 2 and _is_space(rest[0]) and rest[1] == "-" and rest[2:].startswith("}}"):
            return True, True
        if rest.startswith("}}"):
            return True, False
        return False, False

    def at_terminator(self) -> bool:
        c = self.peek()
        if c == "" or _is_space(c) or c in ".,|:)(":
            return True
        return self.s.startswith("}}", self.pos)

    # -- states ------------------------------------------------------------

    def lex_text(self):
        x = self.s.find("{{", self.pos)
        if x < 0:
            self.pos = len(self.s)
            if self.pos > self.start:
                self.line += self.s.count("\n", self.start, self.pos)
                self.emit(_TEXT)
            self.emit(_EOF)
            return None
        self.pos = x
        trim = 0
        after = self.s[x + 2 : x + 4]
        if len(after) == 2 and after[0] == "-" and _is_space(after[1]):
            trim = len(self.s[self.start : x]) - len(self.s[self.start : x].rstrip(" \t\r\n"))
        self.pos = x - trim
        if self.pos > self.start:
            self.line += self.s.count("\n", self.start, self.pos)
            self.emit(_TEXT)
        self.pos = x
        self.ignore()
        return self.lex_left_delim

    def lex_left_delim(self):
        self.pos += 2
        rest = self.s[self.pos : self.pos + 2]
        trim = len(rest) == 2 and rest[0] == "-" and _is_space(rest[1])
        after = 2 if trim else 0
        if self.s.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        self.emit(_LDELIM)
        self.pos += after
        self.ignore()
        self.paren = 0
        return self.lex_inside_action

    def lex_comment(self):
        self.pos += 2
        x = self.s.find("*/", self.pos)
        if x < 0:
            return self.errorf("unclosed comment")
        self.pos = x + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.errorf("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += 2
        if trim:
            self.pos += len(self.s[self.pos :]) - len(self.s[self.pos :].lstrip(" \t\r\n"))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):
        _, trim = self.at_right_delim()
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += 2
        self.emit(_RDELIM)
        if trim:
            self.pos += len(self.s[self.pos :]) - len(self.s[self.pos :].lstrip(" \t\r\n"))
            self.ignore()
        return self.lex_text

    def lex_inside_action(self):
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren == 0:
                return self.lex_right_delim
            return self.errorf("unclosed left paren")
        c = self.next()
        if c == "":
            return self.errorf("unclosed action")
        if _is_space(c):
            self.backup()
            return self.lex_space
        if c == "=":
            self.emit(_ASSIGN)
        elif c == ":":
            if self.next() != "=":
                return self.errorf("expected :=")
            self.emit(_DECLARE)
        elif c == "|":
            self.emit(_PIPE)
        elif c == '"':
            return self.lex_quote
        elif c == "`":
            return self.lex_raw_quote
        elif c == "$":
            return lambda: self.lex_field_or_variable(_VAR)
        elif c == "'":
            return self.lex_char
        elif c == "." and not ("0" <= self.peek() <= "9" and self.peek() != ""):
            return lambda: self.lex_field_or_variable(_FIELD)
        elif c in "+-." or "0" <= c <= "9":
            self.backup()
            return self.lex_number
        elif _is_alnum(c):
            self.backup()
            return self.lex_identifier
        elif c == "(":
            self.emit(_LPAREN)
            self.paren += 1
        elif c == ")":
            self.paren -= 1
            if self.paren < 0:
                return self.errorf("unexpected right paren")
            self.emit(_RPAREN)
        elif ord(c) < 0x80 and c.isprintable():
            self.emit(_CHAR)
        else:
            return self.errorf(f"unrecognized character in action: {_sharp_u(c)}")
        return self.lex_inside_action

    def lex_space(self):
        n = 0
        while _is_space(self.peek()):
            self.next()
            n += 1
        rest = self.s[self.pos - 1 :]
        if len(rest) >= 2 and _is_space(rest[0]) and rest[1] == "-" and rest[2:].startswith("}}"):
            self.backup()
            if n == 1:
                return self.lex_inside_action
        self.emit(_SPACE)
        return self.lex_inside_action

    def lex_identifier(self):
        while True:
            c = self.next()
            if not (c and _is_alnum(c)):
                self.backup()
                break
        word = self.s[self.start : self.pos]
        if not self.at_terminator():
            return self.errorf(f"bad character {_sharp_u(self.peek())}")
        if word in _KEYWORDS:
            self.emit(word)
        elif word in ("true", "false"):
            self.emit(_BOOL)
        else:
            self.emit(_IDENT)
        return self.lex_inside_action

    def lex_field_or_variable(self, typ: str):
        if self.at_terminator():
            self.emit(_VAR if typ == _VAR else _DOT)
            return self.lex_inside_action
        while True:
            c = self.next()
            if not (c and _is_alnum(c)):
                self.backup()
                break
        if not self.at_terminator():
            return self.errorf(f"bad character {_sharp_u(self.peek())}")
        self.emit(typ)
        return self.lex_inside_action

    def lex_char(self):
        while True:
            c = self.next()
            if c == "\\":
                c = self.next()
                if c and c != "\n":
                    continue
                return self.errorf("unterminated character constant")
            if c in ("", "\n"):
                return self.errorf("unterminated character constant")
            if c == "'":
                break
        self.emit(_CHARCONST)
        return self.lex_inside_action

    def lex_quote(self):
        while True:
            c = self.next()
            if c == "\\":
                c = self.next()
                if c and c != "\n":
                    continue
                return self.errorf("unterminated quoted string")
            if c in ("", "\n"):
                return self.errorf("unterminated quoted string")
            if c == '"':
                break
        self.emit(_STRING)
        return self.lex_inside_action

    def lex_raw_quote(self):
        x = self.s.find("`", self.pos)
        if x < 0:
            return self.errorf("unterminated raw quoted string")
        self.line += self.s.count("\n", self.pos, x + 1)
        self.pos = x + 1
        self.emit(_RAWSTRING)
        return self.lex_inside_action

    def lex_number(self):
        if not self.scan_number():
            return self.errorf(f"bad number syntax: {_go_quote(self.s[self.start:self.pos])}")
        if self.peek() in ("+", "-") and self.peek():
            if not self.scan_number() or self.s[self.pos - 1] != "i":
                return self.errorf(f"bad number syntax: {_go_quote(self.s[self.start:self.pos])}")
            self.emit(_COMPLEX)
        else:
            self.emit(_NUMBER)
        return self.lex_inside_action

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        c = self.peek()
        if c and _is_alnum(c):
            self.next()
            return False
        return True


def _sharp_u(c: str) -> str:
    """fmt's %#U: U+007D '}'."""
    if not c:
        return "U+FFFFFFFFFFFFFFFF"  # Go's eof rune (-1); never printed in practice
    s = f"U+{ord(c):04X}"
    return s + f" '{c}'" if c.isprintable() else s


# ---------------------------------------------------------------------------
# Parse tree


@dataclass
class _Node:
    pos: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _List(_Node):
    nodes: list = field(default_factory=list)


@dataclass
class _Field(_Node):
    ident: list

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass
class _Variable(_Node):
    ident: list

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass
class _Chain(_Node):
    node: Any
    fields: list

    def __str__(self) -> str:
        s = str(self.node)
        if isinstance(self.node, _Pipe):
            s = "(" + s + ")"
        return s + "".join("." + f for f in self.fields)


@dataclass
class _Identifier(_Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class _Dot(_Node):
    def __str__(self) -> str:
        return "."


@dataclass
class _Nil(_Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class _Bool(_Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass
class _Number(_Node):
    text: str
    is_int: bool = False
    is_float: bool = False
    int_val: int = 0
    float_val: float = 0.0
    is_char: bool = False
    is_uint: bool = False
    is_complex: bool = False
    complex_val: complex = 0j

    def __str__(self) -> str:
        return self.text

    def ideal(self) -> Any:
        """The untyped constant's default type, as Go's idealConstant picks it.

        Returns _OVERFLOW for an integer that fits only Go's uint64.
        """
        t = self.text
        if self.is_complex:
            return self.complex_val
        is_hex_int = len(t) > 2 and t[0] == "0" and t[1] in "xX" and not any(c in t for c in "pP")
        if self.is_float and not is_hex_int and not self.is_char and any(c in t for c in ".eEpP"):
            return self.float_val
        if self.is_int:
            return self.int_val
        return _OVERFLOW


@dataclass
class _String(_Node):
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass
class _Command(_Node):
    args: list

    def __str__(self) -> str:
        return " ".join("(" + str(a) + ")" if isinstance(a, _Pipe) else str(a) for a in self.args)


@dataclass
class _Pipe(_Node):
    line: int
    decl: list = field(default_factory=list)
    is_assign: bool = False
    cmds: list = field(default_factory=list)

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(d) for d in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


@dataclass
class _Action(_Node):
    line: int
    pipe: _Pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass
class _Branch(_Node):
    kind: str  # "if", "range", "with"
    line: int
    pipe: _Pipe
    body: _List
    else_body: _List | None


@dataclass
class _TemplateCall(_Node):
    line: int
    name: str
    pipe: _Pipe | None

    def __str__(self) -> str:
        if self.pipe is None:
            return "{{template " + _go_quote(self.name) + "}}"
        return "{{template " + _go_quote(self.name) + " " + str(self.pipe) + "}}"


@dataclass
class _BreakNode(_Node):
    line: int


@dataclass
class _ContinueNode(_Node):
    line: int


@dataclass
class _End(_Node):
    def __str__(self) -> str:
        return "{{end}}"


@dataclass
class _Else(_Node):
    line: int

    def __str__(self) -> str:
        return "{{else}}"


class _ParseError(Exception):
    pass


def _unquote(s: str) -> str:
    """strconv.Unquote for "..." and `...` literals."""
    if s[0] == "`":
        if s[-1] != "`" or len(s) < 2:
            raise _ParseError("invalid syntax")
        return s[1:-1].replace("\r", "")
    return _unquote_body(s[1:-1], '"')


def _unquote_char(s: str, quote: str) -> tuple[int, str]:
    """strconv.UnquoteChar: the first character of `s` and the rest."""
    if not s:
        raise _ParseError("invalid syntax")
    c = s[0]
    if c == quote and quote in "'\"":
        raise _ParseError("invalid syntax")
    if c != "\\":
        return ord(c), s[1:]
    if len(s) < 2:
        raise _ParseError("invalid syntax")
    c = s[1]
    rest = s[2:]
    if c in _SIMPLE_ESC:
        return ord(_SIMPLE_ESC[c]), rest
    if c == quote:
        return ord(c), rest
    if c in "xuU":
        n = {"x": 2, "u": 4, "U": 8}[c]
        h = rest[:n]
        if len(h) != n or not all(x in "0123456789abcdefABCDEF" for x in h):
            raise _ParseError("invalid syntax")
        v = int(h, 16)
        if c != "x" and (v > 0x10FFFF or 0xD800 <= v <= 0xDFFF):
            raise _ParseError("invalid syntax")
        return v, rest[n:]
    if c in "01234567":
        o = s[1:4]
        if len(o) != 3 or not all(x in "01234567" for x in o) or int(o, 8) > 255:
            raise _ParseError("invalid syntax")
        return int(o, 8), s[4:]
    raise _ParseError("invalid syntax")


_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unquote_body(body: str, quote: str) -> str:
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == quote or c == "\n":
            raise _ParseError("invalid syntax")
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise _ParseError("invalid syntax")
        c = body[i]
        i += 1
        if c in _SIMPLE_ESC:
            out += _SIMPLE_ESC[c].encode()
        elif c == quote:
            out += c.encode()
        elif c in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[c]
            h = body[i : i + n]
            if len(h) != n or not all(x in "0123456789abcdefABCDEF" for x in h):
                raise _ParseError("invalid syntax")
            i += n
            v = int(h, 16)
            if c == "x":
                out.append(v)
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise _ParseError("invalid syntax")
                out += chr(v).encode()
        elif c in "01234567":
            o = body[i - 1 : i + 2]
            if len(o) != 3 or not all(x in "01234567" for x in o) or int(o, 8) > 255:
                raise _ParseError("invalid syntax")
            i += 2
            out.append(int(o, 8))
        else:
            raise _ParseError("invalid syntax")
    return out.decode("utf-8", "replace")


_OCTAL_LEGACY = re.compile(r"[+-]?0[0-7_]+")


def _parse_go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), or None when it is not an integer."""
    t = text
    try:
        if _OCTAL_LEGACY.fullmatch(t):
            sign = -1 if t[0] == "-" else 1
            v = sign * int(t.lstrip("+-")[1:].replace("_", "") or "0", 8)
        else:
            v = int(t, 0)
    except ValueError:
        return None
    return v


def _parse_go_float(text: str) -> float | None:
    t = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xX].*", t):
            return float.fromhex(t)
        return float(t)
    except (ValueError, OverflowError):
        return None


class _Parser:
    """Go's text/template/parse, minus the lexer."""

    def __init__(self, text: str, name: str, funcs: Mapping[str, Any], trees: dict) -> None:
        self.text = text
        self.name = name
        self.funcs = funcs
        self.trees = trees
        self.tokens = _Lexer(text).run()
        self.i = 0
        self.last: _Token | None = None
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0

    # -- token access --------------------------------------------------------

    def next(self) -> _Token:
        t = self.tokens[min(self.i, len(self.tokens) - 1)]
        self.i += 1
        self.last = t
        return t

    def backup(self, n: int = 1) -> None:
        self.i -= n

    def peek(self) -> _Token:
        return self.tokens[min(self.i, len(self.tokens) - 1)]

    def next_non_space(self) -> _Token:
        while True:
            t = self.next()
            if t.typ != _SPACE:
                return t

    def peek_non_space(self) -> _Token:
        t = self.next_non_space()
        self.backup()
        return t

    def errorf(self, msg: str) -> None:
        line = self.last.line if self.last else 1
        raise _ParseError(f"template: {self.name}:{line}: {msg}")

    def expect(self, typ: str, context: str) -> _Token:
        t = self.next_non_space()
        if t.typ != typ:
            self.unexpected(t, context)
        return t

    def unexpected(self, t: _Token, context: str) -> None:
        if t.typ == _ERROR:
            extra = ""
            if self.action_line and self.action_line != t.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if t.val.endswith(" action"):
                    extra = extra[len(" in action"):]  # Go avoids "action in action"
            self.errorf(f"{t}{extra}")
        self.errorf(f"unexpected {t} in {context}")

    # -- grammar ----------------------------------------------------------------

    def parse(self) -> _List:
        root = _List(self.peek().pos)
        while self.peek().typ != _EOF:
            if self.peek().typ == _LDELIM:
                start = self.i
                self.next()
                if self.next_non_space().typ == "define":
                    self.parse_definition()
                    continue
                self.i = start
            n = self.text_or_action()
            if isinstance(n, (_End, _Else)):
                self.errorf(f"unexpected {n}")
            if n is not None:
                root.nodes.append(n)
        return root

    def parse_definition(self) -> None:
        context = "define clause"
        t = self.next_non_space()
        if t.typ not in (_STRING, _RAWSTRING):
            self.unexpected(t, context)
        try:
            name = _unquote(t.val)
        except _ParseError as e:
            self.errorf(str(e))
        self.expect(_RDELIM, context)
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        self.vars, self.range_depth = saved
        if not isinstance(end, _End):
            self.errorf(f"unexpected {end} in {context}")
        self.add_tree(name, body)

    def add_tree(self, name: str, body: _List) -> None:
        old = self.trees.get(name)
        if old is not None and not _is_empty(old) and not _is_empty(body):
            self.errorf(f"template: multiple definition of template {_go_quote(name)}")
        if old is None or _is_empty(old):
            self.trees[name] = body

    def item_list(self) -> tuple[_List, Any]:
        lst = _List(self.peek_non_space().pos)
        while self.peek_non_space().typ != _EOF:
            n = self.text_or_action()
            if isinstance(n, (_End, _Else)):
                return lst, n
            if n is not None:
                lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        t = self.next_non_space()
        if t.typ == _TEXT:
            return _Text(t.pos, t.val)
        if t.typ == _LDELIM:
            self.action_line = t.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if t.typ == _COMMENT:
            return None
        self.unexpected(t, "input")

    def action(self):
        t = self.next_non_space()
        kind = t.typ
        if kind == "block":
            return self.block_control()
        if kind == "break":
            return self.break_control(t, "break")
        if kind == "continue":
            return self.break_control(t, "continue")
        if kind == "else":
            return self.else_control()
        if kind == "end":
            return _End(self.expect(_RDELIM, "end").pos)
        if kind in ("if", "range", "with"):
            return self.parse_control(kind, t)
        if kind == "template":
            return self.template_control(t)
        self.backup()
        t = self.peek()
        return _Action(t.pos, t.line, self.pipeline("command", _RDELIM))

    def break_control(self, tok: _Token, word: str):
        t = self.next_non_space()
        if t.typ != _RDELIM:
            self.unexpected(t, "{{" + word + "}}")
        if self.range_depth == 0:
            self.errorf("{{" + word + "}} outside {{range}}")
        return (_BreakNode if word == "break" else _ContinueNode)(tok.pos, tok.line)

    def else_control(self):
        p = self.peek_non_space()
        if p.typ in ("if", "with"):
            return _Else(p.pos, p.line)
        t = self.expect(_RDELIM, "else")
        return _Else(t.pos, t.line)

    def parse_control(self, context: str, tok: _Token) -> _Branch:
        nvars = len(self.vars)
        try:
            pipe = self.pipeline(context, _RDELIM)
            if context == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_body = None
            if isinstance(nxt, _Else):
                if (context == "if" and self.peek().typ == "if") or (context == "with" and self.peek().typ == "with"):
                    kw = self.next()
                    else_body = _List(nxt.pos, [self.parse_control(context, kw)])
                else:
                    else_body, nxt = self.item_list()
                    if not isinstance(nxt, _End):
                        self.errorf(f"expected end; found {nxt}")
            return _Branch(pipe.pos, context, pipe.line, pipe, body, else_body)
        finally:
            del self.vars[nvars:]

    def template_control(self, tok: _Token) -> _TemplateCall:
        context = "template clause"
        t = self.next_non_space()
        name = self.template_name(t, context)
        pipe = None
        if self.next_non_space().typ != _RDELIM:
            self.backup()
            pipe = self.pipeline(context, _RDELIM)
        return _TemplateCall(t.pos, t.line, name, pipe)

    def template_name(self, t: _Token, context: str) -> str:
        if t.typ not in (_STRING, _RAWSTRING):
            self.unexpected(t, context)
        try:
            return _unquote(t.val)
        except _ParseError as e:
            self.errorf(str(e))

    def block_control(self) -> _TemplateCall:
        context = "block clause"
        t = self.next_non_space()
        name = self.template_name(t, context)
        pipe = self.pipeline(context, _RDELIM)
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        self.vars, self.range_depth = saved
        if not isinstance(end, _End):
            self.errorf(f"unexpected {end} in {context}")
        self.add_tree(name, body)
        return _TemplateCall(t.pos, t.line, name, pipe)

    def pipeline(self, context: str, end: str) -> _Pipe:
        t = self.peek_non_space()
        pipe = _Pipe(t.pos, t.line)
        while True:  # declarations: "$x :=", "$x =", "$i, $e :="
            v = self.peek_non_space()
            if v.typ != _VAR:
                break
            self.next_non_space()
            var_index = self.i - 1
            nxt = self.peek_non_space()
            if nxt.typ in (_ASSIGN, _DECLARE):
                pipe.is_assign = nxt.typ == _ASSIGN
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, [v.val]))
                self.vars.append(v.val)
                break
            if nxt.typ == _CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (_VAR, _RDELIM, _RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            # "$x" is an operand, not a declaration: push it back.
            self.i = var_index
            break
        while True:
            t = self.next_non_space()
            if t.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if t.typ in (_BOOL, _CHARCONST, _COMPLEX, _DOT, _FIELD, _IDENT, _NUMBER, "nil", _RAWSTRING,
                         _STRING, _VAR, _LPAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(t, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for n, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (_Bool, _Dot, _Nil, _Number, _String)):
                self.errorf(f"non executable command in pipeline stage {n + 2}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos, [])
        while True:
            self.peek_non_space()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            t = self.next()
            if t.typ == _SPACE:
                continue
            if t.typ in (_RDELIM, _RPAREN):
                self.backup()
            elif t.typ == _PIPE:
                pass
            else:
                self.unexpected(t, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == _FIELD:
            chain_pos = self.peek().pos
            fields = []
            while self.peek().typ == _FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, _Field):
                return _Field(chain_pos, node.ident + fields)
            if isinstance(node, _Variable):
                return _Variable(chain_pos, node.ident + fields)
            if isinstance(node, (_Bool, _String, _Number, _Nil, _Dot)):
                self.errorf(f"unexpected . after term {_go_quote(str(node))}")
            return _Chain(chain_pos, node, fields)
        return node

    def term(self):
        t = self.next_non_space()
        typ = t.typ
        if typ == _IDENT:
            if t.val not in self.funcs:
                self.errorf(f"function {_go_quote(t.val)} not defined")
            return _Identifier(t.pos, t.val)
        if typ == _DOT:
            return _Dot(t.pos)
        if typ == "nil":
            return _Nil(t.pos)
        if typ == _VAR:
            if t.val not in self.vars:
                self.errorf(f"undefined variable {_go_quote(t.val)}")
            return _Variable(t.pos, [t.val])
        if typ == _FIELD:
            return _Field(t.pos, [t.val[1:]])
        if typ == _BOOL:
            return _Bool(t.pos, t.val == "true")
        if typ in (_CHARCONST, _COMPLEX, _NUMBER):
            return self.number(t)
        if typ == _LPAREN:
            return self.pipeline("parenthesized pipeline", _RPAREN)
        if typ in (_STRING, _RAWSTRING):
            try:
                return _String(t.pos, t.val, _unquote(t.val))
            except _ParseError as e:
                self.errorf(str(e))
        self.backup()
        return None

    def number(self, t: _Token) -> _Number:
        text = t.val
        n = _Number(t.pos, text)
        if t.typ == _CHARCONST:
            try:
                r, tail = _unquote_char(text[1:], "'")
            except _ParseError as e:
                self.errorf(str(e))
            if tail != "'":
                self.errorf(f"malformed character constant: {text}")
            n.is_int = n.is_float = n.is_char = True
            n.int_val = r
            n.float_val = float(r)
            return n
        if t.typ == _COMPLEX:
            try:
                n.complex_val = complex(text.replace("_", "")[:-1] + "j")
            except ValueError:
                self.errorf(f"illegal number syntax: {_go_quote(text)}")
            n.is_complex = True
            return n
        iv = _parse_go_int(text)
        if iv is not None and -(1 << 63) <= iv < (1 << 64):
            n.is_int = iv < (1 << 63)
            n.is_uint = iv >= 0
            n.int_val = iv
            n.is_float, n.float_val = True, float(iv)
            return n
        fv = _parse_go_float(text)
        if fv is not None and not math.isinf(fv):
            if not any(c in text for c in ".eEpP"):
                self.errorf(f"integer overflow: {_go_quote(text)}")
            n.is_float, n.float_val = True, fv
            if fv == int(fv) and -(1 << 63) <= fv < (1 << 64):
                n.is_int, n.is_uint, n.int_val = fv < (1 << 63), fv >= 0, int(fv)
            return n
        self.errorf(f"illegal number syntax: {_go_quote(text)}")


def _is_empty(n: _List) -> bool:
    return all(isinstance(x, _Text) and not x.text.strip() for x in n.nodes)


# ---------------------------------------------------------------------------
# Functions


@dataclass(frozen=True)
class Func:
    """A template function with Go's parameter types, for argument checking.

    `params` and `variadic` name Go types: "string", "int", "bool",
    "[]string", "any" (interface{}: anything, missing becomes nil) or "value"
    (reflect.Value: the raw value, missing included; Go's builtins take these).
    A plain callable registered as a function takes "any" for each of its
    required parameters.
    """

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = "any"


class _CallError(Exception):
    """A function's error, reported as `error calling NAME: msg`."""


def _fn_len(item):
    if item is MISSING:
        raise _CallError("reflect: call of reflect.Value.Type on zero Value")
    if item is None:
        raise _CallError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))
    if _is_list(item) or _is_map(item):
        return len(item)
    raise _CallError(f"len of type {_type_name(item)}")


def _index_one(item, idx):
    if item is None or item is MISSING:
        raise _CallError("index of untyped nil")
    if _is_map(item):
        if not isinstance(idx, str):
            if idx is None or idx is MISSING:
                return None
            raise _CallError(f"value has type {_type_name(idx)}; should be string")
        return item.get(idx)
    if _is_list(item) or isinstance(item, str):
        if isinstance(idx, bool) or not isinstance(idx, int):
            if idx is None or idx is MISSING:
                raise _CallError("cannot index slice/array with nil")
            raise _CallError(f"cannot index slice/array with type {_type_name(idx)}")
        seq = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
        if not 0 <= idx < len(seq):
            raise _CallError(f"index out of range: {idx}")
        return seq[idx]
    raise _CallError(f"can't index item of type {_type_name(item)}")


def _fn_index(item, *indexes):
    for idx in indexes:
        item = _index_one(item, idx)
    return item


def _fn_slice(item, *indexes):
    if item is None or item is MISSING:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _CallError("cannot 3-index slice a string")
        seq = item.encode("utf-8", "surrogatepass")
    elif _is_list(item):
        seq = item
    else:
        raise _CallError(f"can't slice item of type {_type_name(item)}")
    bounds = [0, len(seq)]
    for n, idx in enumerate(indexes):
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise _CallError(f"cannot index slice/array with type {_type_name(idx)}")
        if not 0 <= idx <= len(seq):
            raise _CallError(f"index out of range: {idx}")
        if n < 2:
            bounds[n] = idx
    if bounds[0] > bounds[1]:
        raise _CallError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    out = seq[bounds[0] : bounds[1]]
    if isinstance(item, str):
        return out.decode("utf-8", "replace")
    return list(out)


def _basic_kind(v):
    if v is None or v is MISSING:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    return "other"


def _fn_eq(arg1, *args):
    if not args:
        raise _CallError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in args:
        k2 = _basic_kind(arg)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise _CallError("incompatible types for comparison")
            truth = False
        elif k1 in ("bool", "int", "float", "complex", "string"):
            truth = arg1 == arg
        elif k1 == "invalid":
            truth = True
        else:
            for v in (arg1, arg):
                if _is_list(v) or _is_map(v) or callable(v):
                    raise _CallError(f"non-comparable type {sprintf('%s', v)}: {_type_name(v)}")
            truth = arg1 == arg
        if truth:
            return True
    return False


def _fn_ne(a, b):
    return not _fn_eq(a, b)


def _fn_lt(a, b):
    ka, kb = _basic_kind(a), _basic_kind(b)
    if {ka, kb} & {"invalid", "other", "bool", "complex"}:
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
    return a < b


def _fn_le(a, b):
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a, b):
    return not _fn_le(a, b)


def _fn_ge(a, b):
    return not _fn_lt(a, b)


def _fn_not(a):
    return not _truth(a)


def _eval_args_text(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*args)


def _fn_html(*args):
    s = _eval_args_text(args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\x00", "\ufffd"))


def _fn_js(*args):
    out = []
    for c in _eval_args_text(args):
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=":
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) < 0x20 or (ord(c) >= 0x80 and not c.isprintable()):
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _fn_urlquery(*args):
    return urllib.parse.quote_plus(_eval_args_text(args), safe="-_.~")


def _fn_call(name, fn, *args):
    if fn is None or fn is MISSING:
        raise _CallError("call of nil")
    if not callable(fn):
        raise _CallError(f"non-function {name} of type {_type_name(fn)}")
    return fn(*args)


def _fn_json(v):
    try:
        return marshal_json(v, escape_html=False)
    except (TypeError, ValueError):
        return ""  # the docker CLI drops the encoder's error


def _go_title(s: str) -> str:
    """strings.Title: upper-case the first letter of each word."""
    out = []
    prev = " "
    for c in s:
        if _title_separator(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _title_separator(c: str) -> bool:
    if ord(c) < 0x80:
        return not (c.isalnum() or c == "_")
    if c.isalpha() or unicodedata.category(c) == "Nd":
        return False
    return c.isspace()


def _per_rune(s: str, conv: Callable[[str], str]) -> str:
    # Go maps each rune to one rune; Python's full case mapping may expand (ß → SS).
    out = []
    for c in s:
        m = conv(c)
        out.append(m if len(m) == 1 else c)
    return "".join(out)


def _go_split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _truncate(s: str, n: int) -> str:
    # Go slices bytes.  Each stray byte of a cut character is one invalid
    # rune to Go (and to the tabwriter measuring it), so it becomes one U+FFFD.
    b = s.encode("utf-8", "surrogatepass")
    if len(b) < n:
        return s
    return b[: max(n, 0)].decode("utf-8", "_berth_go_runes")


def _go_rune_errors(e: UnicodeDecodeError) -> tuple[str, int]:
    return "\ufffd" * (e.end - e.start), e.end


codecs.register_error("_berth_go_runes", _go_rune_errors)


def _pad(s: str, prefix: int, suffix: int) -> str:
    if s == "":
        return s
    return " " * prefix + s + " " * suffix


_BUILTINS: dict[str, Func] = {
    "and": Func(None, ("value",), "value"),  # short-circuit: handled by the executor
    "or": Func(None, ("value",), "value"),
    "not": Func(_fn_not, ("value",), None),
    "len": Func(_fn_len, ("value",), None),
    "index": Func(_fn_index, ("value",), "value"),
    "slice": Func(_fn_slice, ("value",), "value"),
    "call": Func(_fn_call, ("value",), "value"),
    "print": Func(sprint, (), "any"),
    "printf": Func(sprintf, ("string",), "any"),
    "println": Func(sprintln, (), "any"),
    "html": Func(_fn_html, (), "any"),
    "js": Func(_fn_js, (), "any"),
    "urlquery": Func(_fn_urlquery, (), "any"),
    "eq": Func(_fn_eq, ("value",), "value"),
    "ne": Func(_fn_ne, ("value", "value"), None),
    "lt": Func(_fn_lt, ("value", "value"), None),
    "le": Func(_fn_le, ("value", "value"), None),
    "gt": Func(_fn_gt, ("value", "value"), None),
    "ge": Func(_fn_ge, ("value", "value"), None),
    # The docker CLI's additions (cli/templates).
    "json": Func(_fn_json, ("any",), None),
    "split": Func(_go_split, ("string", "string"), None),
    "join": Func(lambda elems, sep: sep.join(elems or ()), ("[]string", "string"), None),
    "title": Func(_go_title, ("string",), None),
    "lower": Func(lambda s: _per_rune(s, str.lower), ("string",), None),
    "upper": Func(lambda s: _per_rune(s, str.upper), ("string",), None),
    "pad": Func(_pad, ("string", "int", "int"), None),
    "truncate": Func(_truncate, ("string", "int"), None),
}


def _as_func(f: Any) -> Func:
    """A plain callable as a template function: its required parameters set the arity."""
    if isinstance(f, Func):
        return f
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return Func(f, (), "any")
    required, variadic = 0, None
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.default is p.empty:
                required += 1
            else:
                variadic = "any"
        elif p.kind == p.VAR_POSITIONAL:
            variadic = "any"
    return Func(f, ("any",) * required, variadic)


# ---------------------------------------------------------------------------
# Executor


class _ExecError(Exception):
    pass


class _BreakSignal(Exception):
    """{{break}}: unwinds to the enclosing range."""


class _ContinueSignal(Exception):
    """{{continue}}: unwinds to the next iteration."""


_MAX_DEPTH = 100


class _State:
    def __init__(self, tmpl: "Template", funcs: Mapping[str, Func]) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.out: list[str] = []
        self.node: Any = None
        self.vars: list[list] = []
        self.depth = 0

    # -- errors --------------------------------------------------------------

    def at(self, node: Any) -> None:
        self.node = node

    def errorf(self, msg: str) -> None:
        name = self.tmpl.name
        if self.node is None:
            raise _ExecError(f"template: {name}: {msg}")
        text = self.tmpl.text
        pos = self.node.pos
        before = text[:pos]
        line = before.count("\n") + 1
        col = len(before[before.rfind("\n") + 1 :].encode("utf-8", "surrogatepass"))
        raise _ExecError(f"template: {name}:{line}:{col}: executing {_go_quote(name)} at <{self.node}>: {msg}")

    # -- variables -------------------------------------------------------------

    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Any) -> None:
        self.vars[len(self.vars) - n][1] = value

    def var_value(self, name: str) -> Any:
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        self.errorf(f"undefined variable: {name}")

    # -- walking -----------------------------------------------------------------

    def walk(self, dot: Any, node: Any) -> None:
        self.at(node)
        if isinstance(node, _List):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, _Branch):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, _TemplateCall):
            self.walk_template(dot, node)
        elif isinstance(node, _BreakNode):
            raise _BreakSignal
        elif isinstance(node, _ContinueNode):
            raise _ContinueSignal
        else:
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot: Any, node: _Branch) -> None:
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                self.walk(val if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: _Branch) -> None:
        self.at(node)
        outer = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            mark = self.mark()
            decl = node.pipe.decl

            def one(index: Any, elem: Any) -> bool:
                if decl:
                    if node.pipe.is_assign:
                        self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    else:
                        self.set_top_var(1, elem)
                if len(decl) > 1:
                    if node.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.set_top_var(2, index)
                try:
                    self.walk(elem, node.body)
                except _ContinueSignal:
                    pass
                finally:
                    self.pop(mark)
                return True

            if _is_list(val):
                items = list(enumerate(val))
            elif _is_map(val):
                items = _sorted_items(val)
            elif isinstance(val, int) and not isinstance(val, bool):
                if len(decl) > 1:
                    self.errorf(f"can't use {val} to iterate over more than one variable")
                items = [(i, i) for i in range(val)]
            elif val is MISSING or val is None or val is _NIL:
                items = []
            else:
                self.errorf(f"range can't iterate over {sprint(val)}")
            if items:
                try:
                    for k, v in items:
                        one(k, v)
                except _BreakSignal:
                    pass
                return
            if node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            self.pop(outer)

    def walk_template(self, dot: Any, node: _TemplateCall) -> None:
        self.at(node)
        tree = self.tmpl._trees.get(node.name)
        if tree is None:
            self.errorf(f"template {_go_quote(node.name)} not defined")
        if self.depth >= _MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({_MAX_DEPTH})")
        val = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else None
        saved_vars = self.vars
        self.vars = [["$", val]]
        self.depth += 1
        try:
            self.walk(val, tree)
        finally:
            self.depth -= 1
            self.vars = saved_vars

    def print_value(self, node: Any, val: Any) -> None:
        self.at(node)
        if val is MISSING or val is None:
            self.out.append("<no value>")
        elif val is _NIL:
            self.out.append("<nil>")
        elif callable(val) and not _is_struct(val) and not isinstance(val, Mapping):
            self.errorf(f"can't print {node} of type {_type_name(val)}")
        else:
            self.out.append(sprint(val))

    # -- evaluation -----------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: _Pipe | None) -> Any:
        if pipe is None:
            return MISSING
        self.at(pipe)
        value = _NOARG
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            # A nil interface out of a map is no value at all, as in Go.
            if value is None:
                value = MISSING
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, _Chain):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, _Identifier):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, _Variable):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, _Bool):
            return first.value
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            self.errorf("nil is not a command")
        if isinstance(first, _Number):
            return self.ideal(first)
        if isinstance(first, _String):
            return first.text
        self.errorf(f"can't evaluate command {first}")

    def not_a_function(self, args: list, final: Any) -> None:
        if len(args) > 1 or final is not _NOARG:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_field_node(self, dot: Any, node: _Field, args: list, final: Any) -> Any:
        self.at(node)
        return self.eval_field_chain(dot, dot, node, node.ident, args, final)

    def eval_chain_node(self, dot: Any, chain: _Chain, args: list, final: Any) -> Any:
        self.at(chain)
        if isinstance(chain.node, _Nil):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "value", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable_node(self, dot: Any, var: _Variable, args: list, final: Any) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: Any, ident: list, args: list, final: Any) -> Any:
        for name in ident[:-1]:
            receiver = self.eval_field(dot, name, node, [], _NOARG, receiver)
        return self.eval_field(dot, ident[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: Any, args: list, final: Any, receiver: Any) -> Any:
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if receiver is _NIL:
            self.errorf(f"nil pointer evaluating {node}")
        has_args = len(args) > 1 or final is not _NOARG
        if isinstance(receiver, Struct) or isinstance(receiver, Mapping):
            if name in receiver:
                value = receiver[name]
                if callable(value):
                    value = self.call(dot, _as_func(value), False, node, name, args, final)
                    return _NIL if value is None and isinstance(receiver, Struct) else value
                if has_args:
                    if isinstance(receiver, Struct):
                        self.errorf(f"{name} has arguments but cannot be invoked as function")
                    self.errorf(f"{name} is not a method but has arguments")
                if value is None and isinstance(receiver, Struct):
                    return _NIL
                return value
            if isinstance(receiver, Struct):
                self.errorf(f"can't evaluate field {name} in type {receiver.go_type}")
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            return MISSING
        if _is_struct(receiver) and not name.startswith("_") and hasattr(receiver, name):
            value = getattr(receiver, name)
            if callable(value):
                return self.call(dot, _as_func(value), False, node, name, args, final)
            if has_args:
                self.errorf(f"{name} has arguments but cannot be invoked as function")
            return value
        self.errorf(f"can't evaluate field {name} in type {_type_name(receiver)}")

    def eval_function(self, dot: Any, node: _Identifier, cmd: _Command, args: list, final: Any) -> Any:
        self.at(node)
        name = node.name
        fn = self.funcs.get(name)
        if fn is None:
            self.errorf(f"{_go_quote(name)} is not a defined function")
        return self.call(dot, fn, name in _BUILTINS and fn is _BUILTINS[name], cmd, name, args, final)

    def call(self, dot: Any, fn: Func, builtin: bool, node: Any, name: str, args: list, final: Any) -> Any:
        args = args[1:] if args else []
        nargs = len(args) + (0 if final is _NOARG else 1)
        nparams = len(fn.params)
        if fn.variadic is not None:
            if nargs < nparams:
                self.errorf(f"wrong number of args for {name}: want at least {nparams} got {nargs}")
        elif nargs != nparams:
            self.errorf(f"wrong number of args for {name}: want {nparams} got {nargs}")

        def ptype(i: int) -> str:
            return fn.params[i] if i < nparams else (fn.variadic or "any")

        if builtin and name in ("and", "or"):
            v = _NOARG
            for a in args:
                v = self.eval_arg(dot, "value", a)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _NOARG:
                v = final
            return v

        argv = [self.eval_arg(dot, ptype(i), a) for i, a in enumerate(args)]
        if final is not _NOARG:
            argv.append(self.validate_type(final, ptype(len(args))))
        if builtin and name == "call":
            argv.insert(0, str(args[0]) if args else "")  # Go names the callee in its errors
        try:
            return fn.fn(*argv)
        except _CallError as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")
        except BerthError as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def eval_arg(self, dot: Any, typ: str, n: Any) -> Any:
        self.at(n)
        if isinstance(n, _Dot):
            return self.validate_type(dot, typ)
        if isinstance(n, _Nil):
            if typ in ("any", "value", "[]string"):
                return None
            self.errorf(f"cannot assign nil to {typ}")
        if isinstance(n, _Field):
            return self.validate_type(self.eval_field_node(dot, n, [n], _NOARG), typ)
        if isinstance(n, _Variable):
            return self.validate_type(self.eval_variable_node(dot, n, [], _NOARG), typ)
        if isinstance(n, _Pipe):
            return self.validate_type(self.eval_pipeline(dot, n), typ)
        if isinstance(n, _Identifier):
            return self.validate_type(self.eval_function(dot, n, n, [], _NOARG), typ)
        if isinstance(n, _Chain):
            return self.validate_type(self.eval_chain_node(dot, n, [], _NOARG), typ)
        # Constants take the parameter's type, as Go's untyped constants do.
        if typ == "string":
            if isinstance(n, _String):
                return n.text
            self.errorf(f"expected string; found {n}")
        if typ == "int":
            if isinstance(n, _Number) and n.is_int:
                return n.int_val
            self.errorf(f"expected integer; found {n}")
        if typ == "bool":
            if isinstance(n, _Bool):
                return n.value
            self.errorf(f"expected bool; found {n}")
        if typ == "[]string":
            self.errorf(f"can't handle {n} for arg of type []string")
        if isinstance(n, _Bool):
            return n.value
        if isinstance(n, _Number):
            return self.ideal(n)
        if isinstance(n, _String):
            return n.text
        self.errorf(f"can't handle {n} for arg of type {typ}")

    def ideal(self, n: _Number) -> Any:
        v = n.ideal()
        if v is _OVERFLOW:
            self.errorf(f"{n.text} overflows int")
        return v

    def validate_type(self, value: Any, typ: str) -> Any:
        if value is _NIL:
            value = None  # functions see a nil pointer as nil
        if typ == "value":
            return value
        if value is MISSING:
            if typ in ("any", "[]string"):
                return None
            self.errorf(f"invalid value; expected {typ}")
        if typ == "any":
            return value
        ok = {
            "string": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
            "[]string": lambda v: _is_list(v) and all(isinstance(x, str) for x in v),
        }[typ](value)
        if not ok:
            self.errorf(f"wrong type for value; expected {typ}; got {_type_name(value)}")
        return value


# ---------------------------------------------------------------------------
# Public API


class Template:
    """A parsed template; execute it any number of times."""

    def __init__(self, text: str, name: str, funcs: Mapping[str, Func]) -> None:
        self.text = text
        self.name = name
        self._funcs = dict(funcs)
        self._trees: dict[str, _List] = {}
        try:
            parser = _Parser(text, name, self._funcs, self._trees)
            root = parser.parse()
        except _ParseError as e:
            raise TemplateError(str(e)) from None
        if name not in self._trees or not _is_empty(root):
            self._trees[name] = root
        self._root = self._trees[name]

    def execute(self, data: Any, *, funcs: Mapping[str, Any] | None = None) -> str:
        """Run the template on `data`; `funcs` replaces functions by name (Go's Funcs)."""
        fns = dict(self._funcs)
        if funcs:
            fns.update({k: _as_func(f) for k, f in funcs.items()})
        state = _State(self, fns)
        state.push("$", data)
        try:
            state.walk(data, self._root)
        except _ExecError as e:
            raise TemplateError(str(e), "".join(state.out)) from None
        except (_BreakSignal, _ContinueSignal):  # the parser forbids these outside range
            pass
        return "".join(state.out)


def compile(text: str, *, name: str = "", funcs: Mapping[str, Any] | None = None) -> Template:  # noqa: A001
    """Parse `text` with the docker CLI's function set (plus `funcs`).

    Raises TemplateError (an InvalidArgument) with Go's message, such as
    `template: :1: unexpected "}" in operand`.
    """
    fns = dict(_BUILTINS)
    if funcs:
        fns.update({k: _as_func(f) for k, f in funcs.items()})
    return Template(text, name, fns)


def render(text: str, data: Any) -> str:
    """compile(text).execute(data)."""
    return compile(text).execute(data)
