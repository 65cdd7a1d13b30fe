"""The Dockerfile parser: text to a list of instruction nodes, as BuildKit parses.

The result mirrors BuildKit's parse tree so that `dump` reproduces BuildKit's
own test tables byte for byte: arguments keep their quotes and escapes
(they are removed later, by variable expansion), ENV and LABEL arguments come
as (key, value, separator) triples, and JSON-form arguments are decoded only
when the text is a JSON array of strings.  Typed instructions and their
validation live in berth.build.instructions.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from berth.build.shell import Lex, go_quote, is_go_space
from berth.errors import InvalidArgument

__all__ = [
    "COMMANDS",
    "Dockerfile",
    "Heredoc",
    "Node",
    "chomp_heredoc_content",
    "dump",
    "parse",
    "parse_heredoc",
    "unknown_instruction_message",
    "with_suggestion",
]

# Every instruction Docker knows; anything else is rejected with a suggestion.
COMMANDS = (
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
)
_VALID_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})

_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z")
_RE_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)\Z")
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_BOM = "\ufeff"


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN, COPY or ADD (or an ONBUILD of them).

    content is the text exactly as written, line endings included; with
    chomp (``<<-``) the leading tabs are still there, see
    chomp_heredoc_content.  expand is false when any part of the delimiter
    was quoted, which turns variable expansion of the content off.
    """

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0


@dataclass(frozen=True)
class Node:
    """One instruction as BuildKit's parser sees it.

    args are the parser's arguments: for ENV and LABEL (key, value, sep)
    triples where sep is "=" or "" (legacy ``ENV k v`` form); for
    HEALTHCHECK the type then the command; for ONBUILD none, the trigger is
    `sub`.  json is true when the arguments came from a JSON array.
    """

    instruction: str
    keyword: str
    args: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    json: bool = False
    original: str = ""
    start_line: int = 0
    end_line: int = 0
    heredocs: tuple[Heredoc, ...] = ()
    comments: tuple[str, ...] = ()
    sub: Node | None = None


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: its parser directives and instruction nodes."""

    nodes: tuple[Node, ...]
    directives: dict[str, str] = field(default_factory=dict)
    escape: str = "\\"
    warnings: tuple[str, ...] = ()


class _ParseError(Exception):
    pass


def _lstrip_go(s: str) -> str:
    i = 0
    while i < len(s) and is_go_space(s[i]):
        i += 1
    return s[i:]


def _strip_go(s: str) -> str:
    s = _lstrip_go(s)
    j = len(s)
    while j > 0 and is_go_space(s[j - 1]):
        j -= 1
    return s[:j]


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(raw: str) -> bool:
    return _lstrip_go(_trim_newline(raw)).startswith("#")


class _Directives:
    """Parser directives: only honoured in the comment lines at the very top."""

    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self.escape = "\\"
        self._set_continuation()

    def _set_continuation(self) -> None:
        e = re.escape(self.escape)
        # The escape character continues a line when it is the last
        # non-blank character, unless it is itself escaped.
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def feed(self, line: str) -> None:
        if self.done:
            return
        if not line.startswith("#"):
            self.done = True
            return
        m = _RE_DIRECTIVE.match(_lstrip_go(line[1:]))
        if m is None or m.group(1).lower() not in _VALID_DIRECTIVES:
            self.done = True
            return
        key, value = m.group(1).lower(), m.group(2)
        if key in self.seen:
            raise _ParseError(f"only one {key} parser directive can be used")
        self.seen[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise _ParseError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self._set_continuation()


def _raw_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _error(line: int, message: str) -> InvalidArgument:
    return InvalidArgument(f"Dockerfile parse error line {line}: {message}")


def parse(text: str, *, strict: bool = True) -> Dockerfile:
    """Parse Dockerfile text.

    Raises InvalidArgument with Docker's message and line number.  With
    strict (the default) an unknown instruction is an error here; BuildKit's
    parser itself lets it through and leaves the rejection to a later stage,
    which is what strict=False gives.
    """
    d = _Directives()
    lines = _raw_lines(text)
    nodes: list[Node] = []
    warnings: list[str] = []
    comments: list[str] = []
    current = 0
    i = 0

    def process(raw: str, strip_left: bool) -> str:
        token = _trim_newline(raw)
        if strip_left:
            token = _lstrip_go(token)
        try:
            d.feed(token)
        except _ParseError as e:
            raise _error(current + 1, str(e)) from None
        return "" if token.startswith("#") else token

    def trim_continuation(line: str) -> tuple[str, bool]:
        new, n = d.continuation.subn(lambda m: m.group(1) or "", line, count=1)
        return (new, False) if n else (line, True)

    while i < len(lines):
        raw = lines[i]
        i += 1
        if current == 0 and raw.startswith(_BOM):
            raw = raw[1:]
        if _is_comment(raw):
            # Like BuildKit, drop the first character of the raw line, which
            # is the "#" unless the comment is indented.
            comment = _strip_go(raw[1:])
            if comment:
                comments.append(comment)
            else:
                comments = []
        token = process(raw, True)
        current += 1
        start = current
        line, end_of_line = trim_continuation(token)
        if end_of_line and line == "":
            continue

        empty_continuation = False
        while not end_of_line and i < len(lines):
            raw = lines[i]
            i += 1
            token = process(raw, False)
            current += 1
            if _is_comment(raw):
                continue
            if not _lstrip_go(token):
                empty_continuation = True
                continue
            cont, end_of_line = trim_continuation(token)
            line += cont
        if empty_continuation:
            warnings.append("[WARNING]: Empty continuation line found in:\n    " + line)

        try:
            node = _node_from_line(line, d.escape, tuple(comments))
        except _ParseError as e:
            raise _error(start, str(e)) from None

        heredocs: list[Heredoc] = []
        if _can_contain_heredoc(node):
            try:
                pending = _heredocs_from_line(line)
            except _ParseError as e:
                raise _error(start, str(e)) from None
            for doc in pending:
                content: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise _error(start, "unterminated heredoc")
                heredocs.append(Heredoc(doc.name, "".join(content), doc.expand, doc.chomp, doc.fd))

        node = dataclasses.replace(node, start_line=start, end_line=current, heredocs=tuple(heredocs))
        if strict and node.instruction not in COMMANDS:
            raise _error(start, unknown_instruction_message(node.keyword))
        nodes.append(node)
        comments = []

    if warnings:
        warnings.append("[WARNING]: Empty continuation lines will become errors in a future release.")
    if not nodes:
        raise InvalidArgument("file with no instructions")
    return Dockerfile(tuple(nodes), dict(d.seen), d.escape, tuple(warnings))


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def with_suggestion(message: str, value: str, options: Iterable[str], *, case_sensitive: bool = False) -> str:
    """BuildKit's "(did you mean X?)" for a value close to a known one."""
    val = value if case_sensitive else value.lower()
    match, best = "", 3
    for opt in options:
        if not case_sensitive:
            opt = opt.lower()
        if val == opt:
            return message
        dist = _levenshtein(val, opt)
        if dist < best:
            match, best = opt, dist
    if not match:
        return message
    if not case_sensitive and value != value.lower() and value == value.upper():
        match = match.upper()
    return f"{message} (did you mean {match}?)"


def unknown_instruction_message(keyword: str) -> str:
    """BuildKit's message for an unknown instruction, with its suggestion."""
    return with_suggestion(f"unknown instruction: {keyword}", keyword, COMMANDS)


# --- one logical line to a node ------------------------------------------


def _node_from_line(line: str, escape: str, comments: tuple[str, ...]) -> Node:
    keyword, flags, rest = _split_command(line)
    instruction = keyword.lower()
    parse_args = _DISPATCH.get(instruction, _parse_ignore)
    args, is_json, sub = parse_args(rest, escape)
    return Node(instruction=instruction, keyword=keyword, args=tuple(args), flags=tuple(flags),
                json=is_json, original=line, comments=comments, sub=sub)


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _RE_WHITESPACE.split(_strip_go(line), maxsplit=1)
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_builder_flags(parts[1])
    return parts[0], flags, _strip_go(rest)


def _extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words; the rest of the line is returned as is.

    Flags use their own little quoting: quotes group and are dropped,
    backslash (whatever the escape directive says) escapes.  ``--`` ends
    the flags.
    """
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if is_go_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == in_word:
            if is_go_space(ch):
                phase = in_spaces
                w = "".join(word)
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


_Parsed = tuple[list[str], bool, "Node | None"]


def _parse_ignore(rest: str, escape: str) -> _Parsed:
    return [], False, None


def _parse_sub_command(rest: str, escape: str) -> _Parsed:
    if rest == "":
        return [], False, None
    return [], False, _node_from_line(rest, escape, ())


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split at unquoted whitespace, keeping quotes and escapes in the words."""
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    quote = ""
    blank_ok = False
    buf: list[str] = []
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if is_go_space(ch):
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            if is_go_space(ch):
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            buf.append(ch)
            pos += 1
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    return words


def _parse_name_val(rest: str, escape: str, key: str) -> list[str]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        # The legacy form, `ENV name value with spaces`: one pair, raw value.
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _ParseError(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise _ParseError(f"Syntax error - can't find = in {go_quote(word)}. "
                              "Must be of the form: name=value")
        name, _, value = word.partition("=")
        out += [name, value, "="]
    return out


def _parse_env(rest: str, escape: str) -> _Parsed:
    return _parse_name_val(rest, escape, "ENV"), False, None


def _parse_label(rest: str, escape: str) -> _Parsed:
    return _parse_name_val(rest, escape, "LABEL"), False, None


def _parse_name_or_name_val(rest: str, escape: str) -> _Parsed:
    return _parse_words(rest, escape), False, None


def _parse_whitespace_delimited(rest: str, escape: str = "\\") -> _Parsed:
    if rest == "":
        return [], False, None
    return _RE_WHITESPACE.split(rest), False, None


def _parse_string(rest: str, escape: str) -> _Parsed:
    if rest == "":
        return [], False, None
    return [rest], False, None


class _NotJSON(Exception):
    pass


class _NotStringArray(_ParseError):
    def __init__(self) -> None:
        super().__init__("when using JSON array syntax, arrays must be comprised of strings only")


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity; Go's, like the JSON spec, does not.
    raise ValueError(name)


def _parse_json(rest: str) -> list[str]:
    rest = _lstrip_go(rest)
    if not rest.startswith("["):
        raise _NotJSON()
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        raise _NotJSON() from None
    if not isinstance(value, list):
        raise _NotJSON()
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray()
    # Go decodes a lone surrogate escape to U+FFFD; keep strings encodable.
    return [v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            if any(0xD800 <= ord(c) <= 0xDFFF for c in v) else v for v in value]


def _parse_maybe_json(rest: str, escape: str = "\\") -> _Parsed:
    if rest == "":
        return [], False, None
    try:
        return _parse_json(rest), True, None
    except _NotJSON:
        return [rest], False, None


def _parse_maybe_json_to_list(rest: str, escape: str) -> _Parsed:
    try:
        return _parse_json(rest), True, None
    except _NotJSON:
        return _parse_whitespace_delimited(rest)


def _parse_health_config(rest: str, escape: str) -> _Parsed:
    sep = 0
    while sep < len(rest) and not is_go_space(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < len(rest) and is_go_space(rest[nxt]):
        nxt += 1
    if sep == 0:
        return [], False, None
    cmd, is_json, _ = _parse_maybe_json(rest[nxt:])
    return [rest[:sep], *cmd], is_json, None


_DISPATCH = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}


# --- heredocs ---------------------------------------------------------------


def _can_contain_heredoc(node: Node) -> bool:
    if node.instruction == "onbuild" and node.sub is not None:
        node = node.sub
    return node.instruction in _HEREDOC_INSTRUCTIONS and not node.json


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word like ``<<EOF``, ``<<-'EOF'`` or ``3<<EOF`` opens, if any.

    Raises InvalidArgument when the delimiter does not lex (``<<"EOF``).
    """
    m = _RE_HEREDOC.match(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    words = Lex(skip_unset_env=True).process_words(rest)
    if len(words) != 1:
        return None
    raw = Lex(skip_unset_env=True, raw_quotes=True).process_words(rest)
    if len(raw) != len(words):
        raise InvalidArgument(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    # Quotes anywhere in the delimiter (<<'EOF', <<E"O"F) turn expansion off.
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=name, expand=quotes == raw_quotes, chomp=m.group(2) == "-",
                   fd=int(m.group(1)) if m.group(1) else 0)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = Lex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line)
    except InvalidArgument:
        words = []
    docs = []
    for word in words:
        try:
            doc = parse_heredoc(word)
        except InvalidArgument as e:
            raise _ParseError(str(e)) from None
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc_content(content: str) -> str:
    """Heredoc content with the leading tabs of every line removed (``<<-``)."""
    return _RE_LEADING_TABS.sub("", content)


# --- dump -------------------------------------------------------------------


def _dump_node(node: Node) -> str:
    out = node.instruction
    if node.flags:
        out += " [" + " ".join(go_quote(f) for f in node.flags) + "]"
    for arg in node.args:
        out += " " + go_quote(arg)
    if node.sub is not None:
        out += " (" + _dump_node(node.sub) + ")"
    return out.strip()


def dump(node: Node | Dockerfile) -> str:
    """BuildKit's s-expression dump of a node or of a whole Dockerfile."""
    if isinstance(node, Dockerfile):
        return "".join("(" + _dump_node(n) + ")\n" for n in node.nodes)
    return "(" + _dump_node(node) + ")"
