""".dockerignore: which files of a build context the build sees.

Docker's semantics, exactly: the file is read as the CLI reads it (comments
only at the start of a line, whitespace trimmed, paths cleaned with Go's
filepath.Clean and made relative), each pattern is compiled as moby's
patternmatcher compiles it (`*` and `?` never cross `/`, `**` crosses any
number of directories, so `*.log` matches only at the top), a path is
excluded when it or one of its parent directories matches, later patterns
override earlier ones, and `!` re-includes.  The walk is the CLI's: an
excluded directory is skipped whole unless an exception pattern reaches
inside it, in which case its content is walked but the directory itself is
not sent.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from berth.build.gopath import BadPattern, clean, match as go_match
from berth.errors import InvalidArgument

__all__ = ["MatchInfo", "PatternMatcher", "read_patterns", "walk"]

_UTF8_BOM = "\ufeff"
# Regexp metacharacters that mean nothing to filepath.Match, escaped when compiling.
_ESCAPE = frozenset(".+()|{}$")


def read_patterns(text: str) -> list[str]:
    """The exclude patterns of a .dockerignore file's text."""
    out: list[str] = []
    for number, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix(_UTF8_BOM)
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


@dataclass
class _Pattern:
    cleaned: str
    exclusion: bool
    kind: str = ""                  # exact, prefix, suffix or regexp
    regexp: re.Pattern[str] | None = None

    def compile(self) -> None:
        regex = ["^"]
        kind = "exact"
        pattern = self.cleaned
        i = 0
        while i < len(pattern):
            start = i
            ch = pattern[i]
            i += 1
            if ch == "*":
                if i < len(pattern) and pattern[i] == "*":
                    i += 1
                    if i < len(pattern) and pattern[i] == "/":
                        i += 1  # "**/" is "**"
                    if i == len(pattern):
                        # A trailing ** matches everything, as in .gitignore.
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex.append(".*")
                            kind = "regexp"
                    else:
                        regex.append("(.*/)?")
                        kind = "regexp"
                    if start == 0:
                        kind = "suffix"
                else:
                    regex.append("[^/]*")
                    kind = "regexp"
            elif ch == "?":
                regex.append("[^/]")
                kind = "regexp"
            elif ch in _ESCAPE:
                regex.append("\\" + ch)
            elif ch == "\\":
                if i < len(pattern):
                    regex.append(re.escape(pattern[i]))
                    i += 1
                    kind = "regexp"
                else:
                    regex.append("\\\\")
            else:
                if ch in "[]":
                    kind = "regexp"
                regex.append(ch)
        if kind == "regexp":
            try:
                # \Z: Python's $ would also match before a final newline.
                self.regexp = re.compile("".join(regex) + r"\Z")
            except re.error:
                raise BadPattern() from None
        self.kind = kind

    def match(self, path: str) -> bool:
        if not self.kind:
            self.compile()
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self.regexp.match(path) is not None


@dataclass
class MatchInfo:
    """Per-pattern results for a directory, passed down to its content."""

    parent_matched: list[bool] = field(default_factory=list)


class PatternMatcher:
    """moby/patternmatcher: exclude patterns, `!` exceptions, last match wins."""

    def __init__(self, patterns: Sequence[str]):
        self.patterns: list[_Pattern] = []
        self.exclusions = False
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise InvalidArgument('illegal exclusion pattern: "!"')
                p = p[1:]
                self.exclusions = True
            go_match(p, ".")  # only for its syntax check, as Docker does
            self.patterns.append(_Pattern(p, exclusion))

    def matches(self, path: str) -> bool:
        """Whether `path` (slash-separated, relative) is excluded.

        A pattern matching any parent directory matches the path too.
        """
        return self.matches_using_parent(path, MatchInfo())[0]

    def matches_using_parent(self, path: str, parent: MatchInfo) -> tuple[bool, MatchInfo]:
        """`matches` for a path whose parent directory gave `parent`."""
        info = MatchInfo([False] * len(self.patterns))
        matched = False
        for i, pattern in enumerate(self.patterns):
            hit = parent.parent_matched[i] if parent.parent_matched else False
            if not hit:
                # Only a pattern that can change the outcome is evaluated.
                if pattern.exclusion != matched:
                    continue
                hit = pattern.match(path)
                if not hit and not parent.parent_matched:
                    head = path.rpartition("/")[0]
                    if head:
                        parts = head.split("/")
                        hit = any(pattern.match("/".join(parts[:n])) for n in range(1, len(parts) + 1))
            info.parent_matched[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, info

    def reaches_inside(self, directory: str) -> bool:
        """Whether an exception pattern may re-include something below `directory`."""
        prefix = directory + "/"
        return any((p.cleaned + "/").startswith(prefix) for p in self.patterns if p.exclusion)


def walk(root: str | os.PathLike, matcher: PatternMatcher | None) -> Iterator[tuple[str, os.stat_result]]:
    """The entries below `root` that a build context holds: (relative path, lstat).

    Depth first, names in byte order, a directory before its content (the
    CLI's WalkDir); symlinks are entries, never followed.
    """
    root = os.fspath(root)

    def entries(rel: str, parent: MatchInfo) -> Iterator[tuple[str, os.stat_result]]:
        directory = os.path.join(root, rel) if rel else root
        with os.scandir(directory) as it:
            names = sorted((e.name for e in it), key=os.fsencode)
        for name in names:
            path = f"{rel}/{name}" if rel else name
            try:
                st = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue  # removed while we walk
            is_dir = stat.S_ISDIR(st.st_mode)
            skip, info = (matcher.matches_using_parent(path, parent) if matcher is not None
                          else (False, parent))
            if skip:
                if not is_dir or not matcher.exclusions or not matcher.reaches_inside(path):
                    continue
                # Excluded, but an exception may re-include something inside.
                yield from entries(path, info)
                continue
            yield path, st
            if is_dir:
                yield from entries(path, info)

    yield from entries("", MatchInfo())
