"""Dockerfile variable substitution and word splitting, as BuildKit does it.

This is not a shell: there is no command substitution, globbing or
arithmetic.  It is the small POSIX-flavoured lexer that Docker runs over the
arguments of ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME,
WORKDIR and ARG: quotes are removed, the escape character (``\\`` or the
backtick chosen by ``# escape=``) escapes, and ``$VAR`` / ``${VAR...}`` are
replaced from the build environment.  Quirks are kept on purpose, because a
Dockerfile must mean the same thing under berth as under Docker.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from berth.errors import InvalidArgument

__all__ = [
    "Lex",
    "ProcessResult",
    "build_envs",
    "go_quote",
    "is_go_space",
    "process_word",
    "process_words",
]

_EOF = None
# Special shell parameters: always unset in a Dockerfile, but they parse as names.
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Go's unicode.IsSpace; str.isspace() also accepts U+001C..U+001F, which Go does not.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def is_go_space(ch: str) -> bool:
    """Go's unicode.IsSpace, which every Dockerfile tokenizer in Docker uses."""
    return ch in _GO_SPACES


def _is_go_print(ch: str) -> bool:
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """Go's strconv.Quote: Docker's messages and parse dumps quote this way."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif _is_go_print(ch):
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def build_envs(env: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
    """An env given as a mapping or as ``KEY=VALUE`` strings, as a dict.

    Like BuildKit, a later duplicate wins and a bare ``KEY`` means empty.
    """
    if env is None:
        return {}
    if isinstance(env, Mapping):
        return dict(env)
    out: dict[str, str] = {}
    for entry in env:
        key, sep, value = entry.partition("=")
        out[key] = value if sep else ""
    return out


@dataclass
class ProcessResult:
    """The outcome of processing one word."""

    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


class _SyntaxError(Exception):
    pass


class _Words:
    """Collects the words of ProcessWords: unquoted whitespace separates."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_go_space(ch):
            # A pending empty word (from "" quotes) neither ends nor is emitted.
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class Lex:
    """BuildKit's shell lexer with its knobs.

    raw_quotes keeps the quote characters in the output, raw_escapes keeps
    escape characters, skip_unset_env leaves references to unset variables
    as they were written, skip_process_quotes treats quotes as ordinary
    characters.  windows makes variable names case-insensitive.
    """

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset_env: bool = False, skip_process_quotes: bool = False,
                 windows: bool = False) -> None:
        if escape not in ("\\", "`"):
            raise InvalidArgument(f"invalid escape token '{escape}' does not match ` or \\")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.skip_process_quotes = skip_process_quotes
        self.windows = windows

    def process(self, word: str, env: Mapping[str, str] | Iterable[str] | None = None) -> ProcessResult:
        """Substitute and split `word`; raises InvalidArgument on bad syntax."""
        state = _State(self, word, build_envs(env))
        try:
            result, words = state.process_stop_on(_EOF, self.raw_escapes)
        except _SyntaxError as e:
            raise InvalidArgument(f"failed to process {go_quote(word)}: {e}") from None
        return ProcessResult(result, words, state.matched, state.unmatched)

    def process_word(self, word: str, env: Mapping[str, str] | Iterable[str] | None = None) -> str:
        return self.process(word, env).result

    def process_words(self, word: str, env: Mapping[str, str] | Iterable[str] | None = None) -> list[str]:
        return self.process(word, env).words


class _State:
    """One pass over one word (BuildKit's shellWord)."""

    def __init__(self, lex: Lex, source: str, envs: dict[str, str]) -> None:
        self.lex = lex
        self.src = source
        self.pos = 0
        self.envs = envs
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def peek(self) -> str | None:
        return self.src[self.pos] if self.pos < len(self.src) else _EOF

    def next(self) -> str | None:
        if self.pos >= len(self.src):
            return _EOF
        ch = self.src[self.pos]
        self.pos += 1
        return ch

    def process_stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._process_stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _process_stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        special = {"$": self.process_dollar}
        if not self.lex.skip_process_quotes:
            special["'"] = self.process_single_quote
            special['"'] = self.process_double_quote
        esc = self.lex.escape
        while (ch := self.peek()) is not _EOF:
            if stop is not _EOF and ch == stop:
                self.next()
                return "".join(result), words.get_words()
            fn = special.get(ch)
            if fn is not None:
                tmp = fn()
                result.append(tmp)
                if ch == "$":
                    words.add_string(tmp)
                else:
                    words.add_raw_string(tmp)
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = self.next()
                if ch is _EOF:
                    # A trailing escape character is dropped.
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop is not _EOF:
            raise _SyntaxError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        # Nothing escapes inside single quotes, not even a single quote.
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        while True:
            ch = self.next()
            if ch is _EOF:
                raise _SyntaxError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def process_double_quote(self) -> str:
        # Inside double quotes the escape character only escapes ", $ and itself.
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        esc = self.lex.escape
        while True:
            nxt = self.peek()
            if nxt is _EOF:
                raise _SyntaxError("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if nxt == "$":
                result.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    result.append(ch)
                after = self.peek()
                if after is _EOF:
                    continue
                if after in ('"', "$", esc):
                    ch = self.next()
            result.append(ch)

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value

        self.next()
        first = self.peek()
        if first is _EOF:
            raise _SyntaxError("syntax error: missing '}'")
        if first in "{}:":
            raise _SyntaxError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch if ch is not _EOF else "\ufffd"
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._substitute(name)
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch if ch is not _EOF else "\ufffd"
        elif ch not in ("+", "-", "?", "#", "%"):
            raise _SyntaxError(f"unsupported modifier ({chs}) in substitution")

        try:
            word, _ = self.process_stop_on("}", ch in ("#", "%"))
        except _SyntaxError:
            if self.peek() is _EOF:
                raise _SyntaxError("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lex.skip_unset_env and not is_set:
            return "${" + name + chs + word + "}"

        unset = not is_set or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not is_set:
                raise _SyntaxError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _SyntaxError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            # One # or % removes the shortest match, a doubled one the longest.
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _SyntaxError(f"unsupported modifier ({chs}) in substitution")

    def _substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except _SyntaxError:
            if self.peek() is _EOF:
                raise _SyntaxError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except _SyntaxError:
            if self.peek() is _EOF:
                raise _SyntaxError("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lex.skip_unset_env and not is_set:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        m = regex.search(value)
        if m is None:
            return value
        return value[:m.start()] + replacement + value[m.end():]

    def process_name(self) -> str:
        name: list[str] = []
        while (ch := self.peek()) is not _EOF:
            if not name and ch.isdecimal():
                # Positional parameters: all the digits, never letters.
                while (d := self.peek()) is not _EOF and d.isdecimal():
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def get_env(self, name: str) -> tuple[str, bool]:
        if self.lex.windows:
            folded = name.casefold()
            for key, value in self.envs.items():
                if key.casefold() == folded:
                    self.matched.add(name)
                    return value, True
        elif name in self.envs:
            self.matched.add(name)
            return self.envs[name], True
        self.unmatched.add(name)
        return "", False


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (* and ?, no brackets) as a regular expression."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            nxt = pattern[i] if i < len(pattern) else None
            if nxt in ("}", "/"):
                # Escaped only to get past the ${...} syntax; a literal next.
                continue
            if nxt not in ("*", "?", "\\"):
                shown = nxt if nxt is not None else ""
                raise _SyntaxError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append(re.escape(nxt))
            i += 1
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern reversed, keeping each escape in front of what it escapes."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        at = last - i
        if tok == "\\" and i != last:
            out[at - 1] = tok
            out[at] = pattern[i + 1]
            i += 2
        else:
            out[at] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex cannot find the shortest rightmost match, so search the reversed
    # value with the reversed pattern for the leftmost one instead.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def process_word(word: str, env: Mapping[str, str] | Iterable[str] | None = None, *,
                 escape: str = "\\") -> str:
    """Quote removal and variable expansion of one word, keeping its spaces."""
    return Lex(escape).process_word(word, env)


def process_words(word: str, env: Mapping[str, str] | Iterable[str] | None = None, *,
                  escape: str = "\\") -> list[str]:
    """Like process_word, then split at unquoted whitespace (after expansion)."""
    return Lex(escape).process_words(word, env)
