"""Column output the way the docker CLI prints it.

The docker CLI's formatter (cli/command/formatter) runs every list command's
`--format` through one path: a format starting with "table" prints a header
row rendered from the same template, then one line per row, all aligned by
its tabwriter created as `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`;
"json" means `{{json .}}` per row; anything else is a template printed once
per row with a newline after it.  `\\t` and `\\n` typed literally in the
format become a tab and a newline, and surrounding spaces are trimmed.

The tabwriter is docker/cli's fork of Go's text/tabwriter, which measures
cells in terminal columns (go-runewidth) rather than runes, so wide CJK and
emoji names line up.
"""

from __future__ import annotations

import inspect
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from berth.cli.gotemplate import Func, Struct, TemplateError, compile, marshal_json

__all__ = [
    "TabWriter",
    "display_width",
    "format_rows",
    "header_label",
    "render_table",
    "tabwrite",
]

# docker/cli formatter.go: tabwriter.NewWriter(c.Output, 10, 1, 3, ' ', 0)
MIN_WIDTH = 10
TAB_WIDTH = 1
PADDING = 3


def _rune_width(c: str) -> int:
    o = ord(c)
    if o == 0:
        return 0
    if o < 0x20 or 0x7F <= o < 0xA0:
        return 0
    if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
        return 0
    if 0x1160 <= o <= 0x11FF:  # Hangul jamo medial vowels and finals join the syllable
        return 0
    if unicodedata.east_asian_width(c) in ("W", "F"):
        return 2
    return 1


def display_width(s: str) -> int:
    """Terminal columns `s` occupies, as go-runewidth counts them."""
    return sum(_rune_width(c) for c in s)


@dataclass
class _Cell:
    text: str
    width: int
    htab: bool  # terminated by '\t' (hard) rather than '\v' (soft)


class TabWriter:
    """Go's elastic-tabstop tabwriter: tab-terminated cells in adjacent lines form a column.

    Only padding with a character and the AlignRight / DiscardEmptyColumns
    behaviours are implemented; the docker CLI uses none of the others.
    Text after a line's last tab is not part of any column and is not padded.
    """

    def __init__(self, minwidth: int = MIN_WIDTH, tabwidth: int = TAB_WIDTH, padding: int = PADDING,
                 padchar: str = " ", *, align_right: bool = False, discard_empty_columns: bool = False) -> None:
        if minwidth < 0 or tabwidth < 0 or padding < 0:
            raise ValueError("negative minwidth, tabwidth, or padding")
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar
        self.align_right = align_right and padchar != "\t"
        self.discard_empty = discard_empty_columns
        self._pending = ""
        self._out: list[str] = []

    def write(self, text: str) -> None:
        self._pending += text

    def flush(self) -> str:
        """Format everything written so far and return it."""
        # A form feed ends every column, exactly as a flush would.
        for n, section in enumerate(self._pending.split("\f")):
            last = n == self._pending.count("\f")
            self._format_section(section if last else section + "\n")
        self._pending = ""
        out, self._out = "".join(self._out), []
        return out

    def _format_section(self, text: str) -> None:
        lines: list[list[_Cell]] = []
        raw_lines = text.split("\n")
        for n, raw in enumerate(raw_lines):
            cells = []
            start = 0
            for i, ch in enumerate(raw):
                if ch in "\t\v":
                    part = raw[start:i]
                    cells.append(_Cell(part, display_width(part), ch == "\t"))
                    start = i + 1
            tail = raw[start:]
            # A newline always ends a cell, even an empty one; the unfinished
            # last line only has one if there is text in it.
            if tail or n + 1 < len(raw_lines):
                cells.append(_Cell(tail, display_width(tail), False))
            lines.append(cells)
        self._lines = lines
        self._widths: list[int] = []
        self._format(0, len(lines))

    def _format(self, line0: int, line1: int) -> None:
        column = len(self._widths)
        this = line0
        while this < line1:
            if column >= len(self._lines[this]) - 1:
                this += 1
                continue
            # This line starts a block of lines that all have a cell in `column`.
            self._write_lines(line0, this)
            line0 = this
            width = self.minwidth
            discardable = True
            while this < line1:
                line = self._lines[this]
                if column >= len(line) - 1:
                    break
                c = line[column]
                width = max(width, c.width + self.padding)
                if c.width > 0 or c.htab:
                    discardable = False
                this += 1
            if discardable and self.discard_empty:
                width = 0
            self._widths.append(width)
            self._format(line0, this)
            self._widths.pop()
            line0 = this
        self._write_lines(line0, line1)

    def _pad(self, textw: int, cellw: int) -> str:
        if self.padchar == "\t":
            if self.tabwidth == 0:
                return ""
            cellw = (cellw + self.tabwidth - 1) // self.tabwidth * self.tabwidth
            return "\t" * ((cellw - textw + self.tabwidth - 1) // self.tabwidth)
        return self.padchar * (cellw - textw)

    def _write_lines(self, line0: int, line1: int) -> None:
        out = self._out
        for i in range(line0, line1):
            for j, c in enumerate(self._lines[i]):
                in_column = j < len(self._widths)
                if not c.text:
                    if in_column:
                        out.append(self._pad(c.width, self._widths[j]))
                elif self.align_right:
                    if in_column:
                        out.append(self._pad(c.width, self._widths[j]))
                    out.append(c.text)
                else:
                    out.append(c.text)
                    if in_column:
                        out.append(self._pad(c.width, self._widths[j]))
            if i + 1 < len(self._lines):
                out.append("\n")


def tabwrite(text: str, minwidth: int = MIN_WIDTH, tabwidth: int = TAB_WIDTH, padding: int = PADDING,
             padchar: str = " ") -> str:
    """Align tab-separated `text` with a TabWriter configured like the docker CLI's."""
    w = TabWriter(minwidth, tabwidth, padding, padchar)
    w.write(text)
    return w.flush()


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A header line and one line per row, aligned like `docker ps` output.

    Cells are converted with str(); the last column is not padded.  The
    result ends with a newline.
    """
    lines = ["\t".join(headers)]
    lines.extend("\t".join(str(c) for c in row) for row in rows)
    return tabwrite("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# --format


def header_label(name: str) -> str:
    """The header of a `{{.Label "com.example.key"}}` column: the key's last dotted part."""
    return name.split(".")[-1].replace("-", " ").replace("_", " ")


def _ident(v, *_):
    return v


# cli/templates HeaderFunctions: the header row shows column names, so the
# string-shaping functions pass their first argument through.  pad is not
# overridden, so padded columns stay aligned with their headers.
_HEADER_FUNCS = {
    "json": Func(_ident, ("string",), None),
    "split": Func(_ident, ("string", "string"), None),
    "join": Func(_ident, ("string", "string"), None),
    "title": Func(_ident, ("string",), None),
    "lower": Func(_ident, ("string",), None),
    "upper": Func(_ident, ("string",), None),
    "truncate": Func(_ident, ("string", "int"), None),
}


def _json_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """What Go's formatter.MarshalJSON serialises: every niladic method's result."""
    out = {}
    for k in sorted(row):
        v = row[k]
        if callable(v):
            try:
                sig = inspect.signature(v)
            except (TypeError, ValueError):
                continue
            if any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                   for p in sig.parameters.values()):
                continue  # needs arguments, like Label(name): not a JSON field
            v = v()
        out[k] = v
    return out


class _Row(Struct):
    """A row as the docker formatter sees it: a struct whose JSON has sorted, HTML-escaped keys."""

    __slots__ = ()

    def __go_json__(self) -> str:
        return marshal_json(_json_fields(self), escape_html=True)


def _prepare(fmt: str) -> tuple[bool, str]:
    if fmt.startswith("table"):
        is_table, text = True, fmt[len("table"):]
    elif fmt == "json":
        is_table, text = False, "{{json .}}"
    else:
        is_table, text = False, fmt
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return is_table, text


def format_rows(fmt: str, rows: Iterable[Mapping[str, Any]], headers: Mapping[str, Any] | None = None, *,
                default_table: str | None = None, type_name: str = "*formatter.Context") -> str:
    """Render `rows` with a docker `--format` value; returns the full output.

    `fmt` is "table <template>" (header row plus aligned rows), "json" (one
    JSON object per row, keys sorted), or a plain template (one line per row).
    A bare "table" means `default_table`, the command's own table format,
    when one is given.

    Each row maps field names to values; a callable value is a method and is
    called with the template's arguments (`{{.Label "k"}}`) or with none
    (`{{.Size}}`, and in JSON output).  `headers` maps field names to column
    headings, for instance {"ID": "CONTAINER ID"}; the header row is the
    template executed against it, so a field without a heading shows
    `<no value>` as in docker.  `type_name` names the row type in errors
    about fields a row lacks.

    Raises TemplateError, prefixed "template parsing error: " as docker
    prints it, for a bad template.
    """
    if fmt == "table" and default_table is not None:
        fmt = default_table
    is_table, text = _prepare(fmt)
    try:
        tmpl = compile(text)
        body = []
        for row in rows:
            data = row if isinstance(row, _Row) else _Row(row, go_type=type_name)
            body.append(tmpl.execute(data) + "\n")
        if not is_table:
            return "".join(body)
    except TemplateError as e:
        raise TemplateError(f"template parsing error: {e}") from None
    header_data = {"Label": header_label, **(headers or {})}
    try:
        header = tmpl.execute(header_data, funcs=_HEADER_FUNCS)
    except TemplateError as e:
        # docker ignores a failing header and prints what it rendered so far.
        header = e.output
    return tabwrite(header + "\n" + "".join(body))
