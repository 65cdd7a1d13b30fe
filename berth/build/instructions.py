"""Typed Dockerfile instructions, and how they change an image config.

parse_instruction turns a parser Node into a frozen dataclass, validating
flags and arguments with Docker's messages.  Variables are not expanded
here: the builder expands with the environment in effect at that point of
the build (see expand / expand_instruction).  apply_to_config is the pure
config-mutating half of the classic builder's dispatchers; the builder and
`berth commit/import --change` share it.
"""

from __future__ import annotations

import csv
import dataclasses
import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, TypeVar

from berth.build.parser import (
    Dockerfile,
    Heredoc,
    Node,
    chomp_heredoc_content,
    parse,
    parse_heredoc,
    unknown_instruction_message,
    with_suggestion,
)
from berth.build.shell import Lex, build_envs, go_quote, is_go_space
from berth.units import parse_duration_ns
from berth.errors import InvalidArgument

__all__ = [
    "AddInstr", "ArgInstr", "CmdInstr", "CopyInstr", "EntrypointInstr", "EnvInstr", "ExposeInstr",
    "FromInstr", "HealthcheckInstr", "InlineFile", "Instruction", "LabelInstr", "MaintainerInstr",
    "Mount", "OnbuildInstr", "RunInstr", "ShellInstr", "Stage", "StopsignalInstr", "UserInstr",
    "VolumeInstr", "WorkdirInstr",
    "CHANGE_COMMANDS", "DEFAULT_SHELL", "EXPANDED_FIELDS",
    "apply_changes", "apply_to_config", "expand", "expand_instruction", "parse_change",
    "parse_changes", "parse_duration", "parse_instruction", "parse_instructions", "parse_mount",
    "parse_stages", "run_mounts",
]

DEFAULT_SHELL = ("/bin/sh", "-c")
MINIMUM_DURATION_NS = 1_000_000  # Docker refuses healthcheck intervals under 1ms.

# What `docker commit --change` and `docker import --change` accept.
CHANGE_COMMANDS = frozenset({
    "cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "stopsignal", "user",
    "volume", "workdir",
})


class _Error(InvalidArgument):
    """An instruction-level failure; parse_instruction adds the location."""


# --- the instructions --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Fields every instruction carries: where it came from."""

    keyword: ClassVar[str] = ""
    original: str = ""
    start_line: int = 0
    end_line: int = 0

    @property
    def name(self) -> str:
        return self.keyword.lower()


@dataclass(frozen=True, kw_only=True)
class FromInstr(Instruction):
    keyword: ClassVar[str] = "FROM"
    image: str
    stage_name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunInstr(Instruction):
    """RUN.  cmd is one string in shell form (prepend_shell), the argv in JSON form.

    heredocs are as written (content not chomped; chomp says whether to).
    mounts are the raw --mount specs: parse them with run_mounts once the
    variables they may use are known.
    """

    keyword: ClassVar[str] = "RUN"
    cmd: tuple[str, ...]
    prepend_shell: bool
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[str, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    flags_used: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CmdInstr(Instruction):
    keyword: ClassVar[str] = "CMD"
    cmd: tuple[str, ...]
    prepend_shell: bool


@dataclass(frozen=True, kw_only=True)
class EntrypointInstr(Instruction):
    """ENTRYPOINT; cmd is None for an empty one, which resets the entrypoint."""

    keyword: ClassVar[str] = "ENTRYPOINT"
    cmd: tuple[str, ...] | None
    prepend_shell: bool


@dataclass(frozen=True, kw_only=True)
class EnvInstr(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class ArgInstr(Instruction):
    """ARG; one instruction may declare several, each with an optional default."""

    keyword: ClassVar[str] = "ARG"
    args: tuple[tuple[str, str | None], ...]

    @property
    def arg_name(self) -> str:
        return self.args[0][0]

    @property
    def default(self) -> str | None:
        return self.args[0][1]


@dataclass(frozen=True, kw_only=True)
class LabelInstr(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class ExposeInstr(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@dataclass(frozen=True)
class InlineFile:
    """A heredoc used as an ADD/COPY source: path is the delimiter word."""

    path: str
    data: str
    expand: bool


@dataclass(frozen=True, kw_only=True)
class AddInstr(Instruction):
    keyword: ClassVar[str] = "ADD"
    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[InlineFile, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    keep_git_dir: bool = False
    checksum: str | None = None


@dataclass(frozen=True, kw_only=True)
class CopyInstr(Instruction):
    keyword: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    heredocs: tuple[InlineFile, ...] = ()
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False


@dataclass(frozen=True, kw_only=True)
class UserInstr(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True, kw_only=True)
class VolumeInstr(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    volumes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class WorkdirInstr(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True, kw_only=True)
class OnbuildInstr(Instruction):
    """ONBUILD; expression is the trigger's source text, heredocs appended."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str


@dataclass(frozen=True, kw_only=True)
class StopsignalInstr(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True, kw_only=True)
class HealthcheckInstr(Instruction):
    """HEALTHCHECK; durations in nanoseconds, 0 meaning "inherit the default".

    test is ("NONE",), ("CMD", argv...) or ("CMD-SHELL", command).
    """

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class ShellInstr(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class MaintainerInstr(Instruction):
    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True)
class Stage:
    """A build stage: its FROM and the instructions that follow it."""

    base: FromInstr
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        return self.base.stage_name


# --- flags -------------------------------------------------------------------


class _Flags:
    """BuildKit's BFlags: the --flags an instruction accepts, checked on parse()."""

    _BOOL, _STRING, _STRINGS = range(3)

    def __init__(self, args: Sequence[str]) -> None:
        self.args = args
        self.kinds: dict[str, int] = {}
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.used: list[str] = []

    def add_bool(self, name: str, default: bool = False) -> None:
        self.kinds[name] = self._BOOL
        self.values[name] = "true" if default else "false"

    def add_string(self, name: str, default: str = "") -> None:
        self.kinds[name] = self._STRING
        self.values[name] = default

    def add_strings(self, name: str) -> None:
        self.kinds[name] = self._STRINGS
        self.lists[name] = []

    def parse(self) -> None:
        for arg in self.args:
            if not arg.startswith("--"):
                raise _Error(f"Arg should start with -- : {arg}")
            if arg == "--":
                return
            name, eq, value = arg[2:].partition("=")
            kind = self.kinds.get(name)
            if kind is None:
                raise _Error(f"Unknown flag: {name}")
            if name in self.used and kind != self._STRINGS:
                raise _Error(f"Duplicate flag specified: {name}")
            self.used.append(name)
            if kind == self._BOOL:
                if eq and value == "":
                    raise _Error(f"Missing a value on flag: {name}")
                lower = value.lower()
                if lower == "":
                    self.values[name] = "true"
                elif lower in ("true", "false"):
                    self.values[name] = lower
                else:
                    raise _Error(f"Expecting boolean value for flag {name}, not: {value}")
            elif not eq:
                raise _Error(f"Missing a value on flag: {name}")
            elif kind == self._STRING:
                self.values[name] = value
            else:
                self.lists[name].append(value)

    def string(self, name: str) -> str | None:
        return self.values[name] or None

    def bool(self, name: str) -> bool:
        return self.values[name] == "true"


# --- Go-compatible value parsing ----------------------------------------------

_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX_DURATION = 1 << 63


def parse_duration(s: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1h30m", "1.5s", "300ms", "-2us")."""
    try:
        return parse_duration_ns(s)
    except InvalidArgument as e:
        raise _Error(str(e)) from None


def _parse_int(s: str, bits: int = 64) -> int:
    """Go's strconv.ParseInt(s, 10, bits) with its error messages."""
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        raise _Error(f"strconv.ParseInt: parsing {go_quote(s)}: invalid syntax")
    value = int(s)
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise _Error(f"strconv.ParseInt: parsing {go_quote(s)}: value out of range")
    return value


def _parse_bool(s: str) -> bool:
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(s)


# --- node -> instruction ---------------------------------------------------------


def _handle_json_args(args: Sequence[str], is_json: bool) -> tuple[str, ...]:
    if not args:
        return ()
    if is_json:
        return tuple(args)
    return (" ".join(args),)


def _node_args(node: Node) -> list[str]:
    if node.sub is not None:
        return [node.sub.keyword, *_node_args(node.sub)]
    return list(node.args)


def _at_least_one(cmd: str) -> _Error:
    return _Error(f"{cmd} requires at least one argument")


def _exactly_one(cmd: str) -> _Error:
    return _Error(f"{cmd} requires exactly one argument")


def _kv_pairs(args: Sequence[str], cmd: str) -> tuple[tuple[str, str], ...]:
    if not args:
        raise _at_least_one(cmd)
    if len(args) % 3:
        raise _Error(f"Bad input to {cmd}, too many arguments")
    pairs = []
    for j in range(0, len(args), 3):
        if not args[j]:
            raise _Error(f"{cmd} names can not be blank")
        pairs.append((args[j], args[j + 1]))
    return tuple(pairs)


_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_NETWORKS = ("default", "none", "host")
_SECURITY = ("insecure", "sandbox")


def _sources_and_dest(args: Sequence[str], heredocs: Sequence[Heredoc],
                      cmd: str) -> tuple[tuple[str, ...], str, tuple[InlineFile, ...]]:
    *srcs, dest = args
    if _maybe_heredoc(dest) is not None:
        raise _Error(f"{cmd} cannot accept a heredoc as a destination")
    by_name = {h.name: h for h in heredocs}
    paths: list[str] = []
    inline: list[InlineFile] = []
    for src in srcs:
        doc = _maybe_heredoc(src)
        if doc is None:
            paths.append(src)
            continue
        found = by_name.get(doc.name)
        content = found.content if found else ""
        if doc.chomp:
            content = chomp_heredoc_content(content)
        inline.append(InlineFile(doc.name, content, doc.expand))
    return tuple(paths), dest, tuple(inline)


def _maybe_heredoc(word: str) -> Heredoc | None:
    try:
        return parse_heredoc(word)
    except InvalidArgument:  # as BuildKit's MustParseHeredoc: a broken one is no heredoc
        return None


def _parse_node(node: Node) -> Instruction:
    args = _node_args(node)
    flags = _Flags(node.flags)
    where = {"original": _strip(node.original), "start_line": node.start_line,
             "end_line": node.end_line}
    cmd = node.instruction

    if cmd == "env" or cmd == "label":
        flags.parse()
        pairs = _kv_pairs(args, cmd.upper())
        return (EnvInstr if cmd == "env" else LabelInstr)(pairs=pairs, **where)

    if cmd == "maintainer":
        if len(args) != 1:
            raise _exactly_one("MAINTAINER")
        flags.parse()
        return MaintainerInstr(maintainer=args[0], **where)

    if cmd in ("add", "copy"):
        if len(args) < 2:
            raise _Error(f"{cmd.upper()} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined")
        flags.add_string("chown")
        if cmd == "copy":
            flags.add_string("from")
        flags.add_string("chmod")
        flags.add_bool("link")
        if cmd == "add":
            flags.add_bool("keep-git-dir")
            flags.add_string("checksum")
        flags.parse()
        sources, dest, inline = _sources_and_dest(args, node.heredocs, cmd.upper())
        if cmd == "add":
            return AddInstr(sources=sources, dest=dest, heredocs=inline, chown=flags.string("chown"),
                            chmod=flags.string("chmod"), link=flags.bool("link"),
                            keep_git_dir=flags.bool("keep-git-dir"),
                            checksum=flags.string("checksum"), **where)
        return CopyInstr(sources=sources, dest=dest, heredocs=inline, from_=flags.string("from"),
                         chown=flags.string("chown"), chmod=flags.string("chmod"),
                         link=flags.bool("link"), **where)

    if cmd == "from":
        stage_name = None
        if len(args) == 3 and args[1].lower() == "as":
            stage_name = args[2].lower()
            if not _STAGE_NAME.match(stage_name):
                raise _Error(f"invalid name for build stage: {go_quote(args[2])}, "
                             "name can't start with a number or contain symbols")
        elif len(args) != 1:
            raise _Error("FROM requires either one or three arguments")
        flags.add_string("platform")
        flags.parse()
        return FromInstr(image=args[0], stage_name=stage_name, platform=flags.string("platform"),
                         **where)

    if cmd == "onbuild":
        if not args:
            raise _at_least_one("ONBUILD")
        flags.parse()
        trigger = args[0].strip().upper()
        if trigger == "ONBUILD":
            raise _Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _Error(f"{trigger} isn't allowed as an ONBUILD trigger")
        expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
        for doc in node.heredocs:
            expression += "\n" + doc.content + doc.name
        return OnbuildInstr(expression=expression, **where)

    if cmd == "workdir":
        if len(args) != 1:
            raise _exactly_one("WORKDIR")
        flags.parse()
        return WorkdirInstr(path=args[0], **where)

    if cmd == "run":
        flags.add_strings("mount")
        flags.add_string("network", "default")
        flags.add_string("security", "sandbox")
        flags.parse()
        mounts = tuple(flags.lists["mount"])
        for spec in mounts:
            parse_mount(spec, None)
        network = flags.values["network"]
        if network not in _NETWORKS:
            raise _Error(f"invalid network mode {go_quote(network)}")
        security = flags.values["security"]
        if security not in _SECURITY:
            raise _Error(f"security {go_quote(security)} is not valid")
        return RunInstr(cmd=_handle_json_args(args, node.json), prepend_shell=not node.json,
                        heredocs=node.heredocs, mounts=mounts, network=network, security=security,
                        flags_used=tuple(flags.used), **where)

    if cmd == "cmd":
        flags.parse()
        return CmdInstr(cmd=_handle_json_args(args, node.json), prepend_shell=not node.json, **where)

    if cmd == "entrypoint":
        flags.parse()
        line = _handle_json_args(args, node.json)
        return EntrypointInstr(cmd=line or None, prepend_shell=not node.json, **where)

    if cmd == "healthcheck":
        return _parse_healthcheck(args, node, flags, where)

    if cmd == "expose":
        if not args:
            raise _at_least_one("EXPOSE")
        flags.parse()
        return ExposeInstr(ports=tuple(sorted(args)), **where)

    if cmd == "user":
        if len(args) != 1:
            raise _exactly_one("USER")
        flags.parse()
        return UserInstr(user=args[0], **where)

    if cmd == "volume":
        if not args:
            raise _at_least_one("VOLUME")
        flags.parse()
        volumes = []
        for v in args:
            v = _strip(v)
            if not v:
                raise _Error("VOLUME specified can not be an empty string")
            volumes.append(v)
        return VolumeInstr(volumes=tuple(volumes), **where)

    if cmd == "stopsignal":
        # BuildKit never checks STOPSIGNAL's flags.
        if len(args) != 1:
            raise _exactly_one("STOPSIGNAL")
        return StopsignalInstr(signal=args[0], **where)

    if cmd == "arg":
        # Nor ARG's.
        if not args:
            raise _at_least_one("ARG")
        pairs: list[tuple[str, str | None]] = []
        for arg in args:
            if "=" in arg:
                key, _, value = arg.partition("=")
                if not key:
                    raise _Error("ARG names can not be blank")
                pairs.append((key, value))
            else:
                pairs.append((arg, None))
        return ArgInstr(args=tuple(pairs), **where)

    if cmd == "shell":
        flags.parse()
        shell = _handle_json_args(args, node.json)
        if not shell:
            raise _at_least_one("SHELL")
        if not node.json:
            raise _Error("SHELL requires the arguments to be in JSON form")
        return ShellInstr(shell=shell, **where)

    raise _Error(unknown_instruction_message(node.keyword))


def _parse_opt_interval(flags: _Flags, name: str) -> int:
    value = flags.values[name]
    if value == "":
        return 0
    d = parse_duration(value)
    if d == 0:
        return 0
    if d < MINIMUM_DURATION_NS:
        raise _Error(f"Interval {go_quote(name)} cannot be less than 1ms")
    return d


def _parse_healthcheck(args: list[str], node: Node, flags: _Flags, where: dict) -> HealthcheckInstr:
    if not args:
        raise _at_least_one("HEALTHCHECK")
    typ = args[0].upper()
    rest = args[1:]
    if typ == "NONE":
        # BuildKit does not look at the flags of HEALTHCHECK NONE at all.
        if rest:
            raise _Error("HEALTHCHECK NONE takes no arguments")
        return HealthcheckInstr(test=("NONE",), **where)
    for name in ("interval", "timeout", "start-period", "start-interval", "retries"):
        flags.add_string(name)
    flags.parse()
    if typ != "CMD":
        raise _Error(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    line = _handle_json_args(rest, node.json)
    if not line:
        raise _Error("Missing command after HEALTHCHECK CMD")
    test = ("CMD" if node.json else "CMD-SHELL", *line)
    interval = _parse_opt_interval(flags, "interval")
    timeout = _parse_opt_interval(flags, "timeout")
    start_period = _parse_opt_interval(flags, "start-period")
    start_interval = _parse_opt_interval(flags, "start-interval")
    retries = 0
    if flags.values["retries"] != "":
        retries = _parse_int(flags.values["retries"], 32)
        if retries < 0:
            raise _Error(f"--retries cannot be negative ({retries})")
    return HealthcheckInstr(test=test, interval=interval, timeout=timeout, start_period=start_period,
                            start_interval=start_interval, retries=retries, **where)


def _strip(s: str) -> str:
    i, j = 0, len(s)
    while i < j and is_go_space(s[i]):
        i += 1
    while j > i and is_go_space(s[j - 1]):
        j -= 1
    return s[i:j]


def _located(node: Node, message: str) -> InvalidArgument:
    return InvalidArgument(f"Dockerfile parse error line {node.start_line}: {message}")


def parse_instruction(node: Node) -> Instruction:
    """The typed instruction of a parser node; InvalidArgument with its line if invalid."""
    try:
        return _parse_node(node)
    except _Error as e:
        raise _located(node, str(e)) from None


def parse_instructions(dockerfile: Dockerfile | str) -> list[Instruction]:
    """All instructions of a Dockerfile (text or parsed), in order."""
    if isinstance(dockerfile, str):
        dockerfile = parse(dockerfile)
    return [parse_instruction(node) for node in dockerfile.nodes]


def parse_stages(dockerfile: Dockerfile | str) -> tuple[list[ArgInstr], list[Stage]]:
    """The global ARGs before the first FROM, and the build stages."""
    meta_args: list[ArgInstr] = []
    stages: list[tuple[FromInstr, list[Instruction]]] = []
    if isinstance(dockerfile, str):
        dockerfile = parse(dockerfile)
    for node in dockerfile.nodes:
        instr = parse_instruction(node)
        if isinstance(instr, FromInstr):
            stages.append((instr, []))
        elif not stages:
            if not isinstance(instr, ArgInstr):
                raise _located(node, "no build stage in current context")
            meta_args.append(instr)
        else:
            stages[-1][1].append(instr)
    return meta_args, [Stage(base, tuple(body)) for base, body in stages]


# --- RUN --mount ---------------------------------------------------------------------

_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING_MODES = ("shared", "private", "locked")
_MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "mode",
               "uid", "gid", "src", "dst", "ro", "rw", "readwrite")


@dataclass(frozen=True)
class Mount:
    """One RUN --mount, as BuildKit understands it."""

    type: str = "bind"
    from_: str | None = None
    source: str | None = None
    target: str | None = None
    readonly: bool = False
    cache_id: str | None = None
    sharing: str | None = None
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size_limit: int = 0


_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _ram_in_bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", value)
    if m is None:
        raise ValueError(value)
    return int(float(m.group(1)) * _RAM_UNITS[(m.group(2) or "").lower()])


def parse_mount(spec: str, expand: Callable[[str], str] | None) -> Mount:
    """Parse one --mount spec.  Without `expand` only what cannot hold a
    variable is checked (BuildKit's parse-time pass); with it, values are
    expanded first and everything is validated."""
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as e:
        raise _Error(f"failed to parse csv mounts: {e}") from None
    if not rows:
        raise _Error("failed to parse csv mounts: EOF")
    fields = rows[0]
    m: dict = {"type": "bind"}
    ro_auto = True
    for fld in fields:
        key, eq, value = fld.partition("=")
        key = key.lower()
        if not eq:
            if expand is None:
                continue
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
            elif key == "required":
                if m["type"] not in ("secret", "ssh"):
                    raise _Error(f"unexpected key '{key}' for mount type '{m['type']}'")
                m["required"] = True
            else:
                raise _Error(f"invalid field '{fld}' must be a key=value pair")
            continue
        if expand is not None:
            value = expand(value)
        elif key == "from":
            if re.search(r"\$.", value):
                raise _Error(f"'{key}' doesn't support variable expansion, define alias stage instead")
        else:
            continue
        if key == "type":
            v = value.lower()
            if v not in _MOUNT_TYPES:
                raise _Error(with_suggestion(f"unsupported mount type {go_quote(value)}", value,
                                             _MOUNT_TYPES, case_sensitive=True))
            m["type"] = v
        elif key == "from":
            m["from_"] = value
        elif key in ("source", "src"):
            m["source"] = value
        elif key in ("target", "dst", "destination"):
            m["target"] = value
        elif key in ("readonly", "ro", "readwrite", "rw"):
            try:
                flag = _parse_bool(value)
            except ValueError:
                raise _Error(f"invalid value for {key}: {value}") from None
            m["readonly"] = flag if key in ("readonly", "ro") else not flag
            ro_auto = False
        elif key == "required":
            if m["type"] not in ("secret", "ssh"):
                raise _Error(f"unexpected key '{key}' for mount type '{m['type']}'")
            try:
                m["required"] = _parse_bool(value)
            except ValueError:
                raise _Error(f"invalid value for {key}: {value}") from None
        elif key == "size":
            if m["type"] != "tmpfs":
                raise _Error(f"unexpected key '{key}' for mount type '{m['type']}'")
            try:
                m["size_limit"] = _ram_in_bytes(value)
            except ValueError:
                raise _Error(f"invalid value for {key}: {value}") from None
        elif key == "id":
            m["cache_id"] = value
        elif key == "sharing":
            v = value.lower()
            if v not in _SHARING_MODES:
                raise _Error(with_suggestion(f"unsupported sharing value {go_quote(value)}", value,
                                             _SHARING_MODES, case_sensitive=True))
            m["sharing"] = v
        elif key in ("mode", "uid", "gid"):
            digits = r"[0-7]+" if key == "mode" else r"[0-9]+"
            number = int(value, 8 if key == "mode" else 10) if re.fullmatch(digits, value) else None
            if number is None or number >= 1 << 32:
                raise _Error(f"invalid value {value} for {key}")
            m[key] = number
        else:
            raise _Error(with_suggestion(f"unexpected key '{key}' in '{fld}'", key, _MOUNT_KEYS,
                                         case_sensitive=True))
    mount = Mount(**m)
    return _validate_mount(mount, ro_auto)


def _validate_mount(m: Mount, ro_auto: bool) -> Mount:
    if m.type not in ("secret", "ssh", "cache"):
        for attr in ("mode", "uid", "gid"):
            if getattr(m, attr) is not None:
                raise _Error(f"{attr} not allowed for {go_quote(m.type)} type mounts")
    if ro_auto:
        m = dataclasses.replace(m, readonly=m.type not in ("cache", "tmpfs"))
    if m.type == "secret":
        if m.from_:
            raise _Error("secret mount should not have a from")
        if m.sharing:
            raise _Error("secret mount should not define sharing")
        if not m.source and not m.target and not m.cache_id:
            raise _Error("invalid secret mount. one of source, target required")
        if m.source and m.cache_id:
            raise _Error("both source and id can't be set")
    if m.sharing and m.type != "cache":
        raise _Error(f"invalid cache sharing set for {m.type} mount")
    return m


def run_mounts(instr: RunInstr, expand: Callable[[str], str]) -> list[Mount]:
    """The RUN's mounts, with variables expanded by `expand`."""
    try:
        return [parse_mount(spec, expand) for spec in instr.mounts]
    except _Error as e:
        raise InvalidArgument(f"Dockerfile parse error line {instr.start_line}: {e}") from None


# --- variable expansion ------------------------------------------------------------

# Which fields of which instructions the builder expands, as BuildKit does.
# EXPOSE expands each port into possibly several words; RUN expands only
# inside --mount values (see run_mounts); heredoc contents of ADD/COPY are
# expanded raw (quotes kept) when their delimiter was unquoted.  CMD,
# ENTRYPOINT, HEALTHCHECK, SHELL, ONBUILD and MAINTAINER are never expanded;
# FROM is expanded with the global (meta) ARGs only.
EXPANDED_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "add": ("sources", "dest", "chown", "checksum", "heredocs"),
    "arg": ("args",),
    "copy": ("sources", "dest", "chown", "heredocs"),
    "env": ("pairs",),
    "expose": ("ports",),
    "from": ("image", "platform"),
    "label": ("pairs",),
    "run": ("mounts",),
    "stopsignal": ("signal",),
    "user": ("user",),
    "volume": ("volumes",),
    "workdir": ("path",),
})

_I = TypeVar("_I", bound=Instruction)


def expand(instr: _I, word: Callable[[str], str], words: Callable[[str], list[str]] | None = None,
           raw: Callable[[str], str] | None = None) -> _I:
    """A copy of `instr` with the fields in EXPANDED_FIELDS expanded.

    word expands one word (shell.Lex.process_word with the build env), words
    expands and splits (for EXPOSE), raw expands heredoc content without
    removing quotes.
    """
    def opt(v: str | None) -> str | None:
        return None if v is None else word(v)

    def inline(files: tuple[InlineFile, ...]) -> tuple[InlineFile, ...]:
        if raw is None:
            return files
        return tuple(dataclasses.replace(f, data=raw(f.data)) if f.expand else f for f in files)

    match instr:
        case EnvInstr() | LabelInstr():
            return dataclasses.replace(instr, pairs=tuple((word(k), word(v)) for k, v in instr.pairs))
        case AddInstr():
            return dataclasses.replace(instr, sources=tuple(map(word, instr.sources)),
                                       dest=word(instr.dest), chown=opt(instr.chown),
                                       checksum=opt(instr.checksum), heredocs=inline(instr.heredocs))
        case CopyInstr():
            return dataclasses.replace(instr, sources=tuple(map(word, instr.sources)),
                                       dest=word(instr.dest), chown=opt(instr.chown),
                                       heredocs=inline(instr.heredocs))
        case ArgInstr():
            return dataclasses.replace(instr, args=tuple((word(k), opt(v)) for k, v in instr.args))
        case ExposeInstr():
            split = words or (lambda p: [word(p)])
            return dataclasses.replace(instr, ports=tuple(p for port in instr.ports for p in split(port)))
        case FromInstr():
            return dataclasses.replace(instr, image=word(instr.image), platform=opt(instr.platform))
        case StopsignalInstr():
            return dataclasses.replace(instr, signal=word(instr.signal))
        case UserInstr():
            return dataclasses.replace(instr, user=word(instr.user))
        case VolumeInstr():
            return dataclasses.replace(instr, volumes=tuple(map(word, instr.volumes)))
        case WorkdirInstr():
            return dataclasses.replace(instr, path=word(instr.path))
    return instr


def expand_instruction(instr: _I, env: Mapping[str, str] | Iterable[str] | None, *,
                       escape: str = "\\") -> _I:
    """expand() with BuildKit's lexers over `env` (a mapping or "K=V" list)."""
    envs = build_envs(env)
    lex = Lex(escape)
    raw_lex = Lex("\\", skip_process_quotes=True)
    try:
        return expand(instr, lambda w: lex.process_word(w, envs), lambda w: lex.process_words(w, envs),
                      lambda w: raw_lex.process_word(w, envs))
    except InvalidArgument as e:
        raise InvalidArgument(f"Dockerfile parse error line {instr.start_line}: {e}") from None


# --- docker commit/import --change --------------------------------------------------------


def parse_changes(changes: Sequence[str]) -> list[Instruction]:
    """`--change` values, joined by newlines as Docker does, as instructions."""
    if not changes:
        return []
    dockerfile = parse("\n".join(changes), strict=False)
    for node in dockerfile.nodes:
        if node.instruction not in CHANGE_COMMANDS:
            raise InvalidArgument(f"{node.keyword} is not a valid change command")
    out = []
    for node in dockerfile.nodes:
        try:
            out.append(_parse_node(node))
        except _Error as e:
            raise InvalidArgument(str(e)) from None
    return out


def parse_change(line: str) -> Instruction:
    """One `--change` instruction, e.g. 'CMD ["x"]'."""
    instrs = parse_changes([line])
    if len(instrs) != 1:
        raise InvalidArgument(f"expected one instruction in change {go_quote(line)}, got {len(instrs)}")
    return instrs[0]


# --- applying an instruction to an image config -----------------------------------------------

_LINUX_SIGNALS = frozenset({
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
    *(f"RTMIN+{i}" for i in range(1, 16)), *(f"RTMAX-{i}" for i in range(1, 15)),
})


def _check_signal(raw: str) -> None:
    if re.fullmatch(r"[+-]?[0-9]+", raw):
        if int(raw) == 0:
            raise InvalidArgument(f"Invalid signal: {raw}")
        return
    name = raw.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name not in _LINUX_SIGNALS:
        raise InvalidArgument(f"Invalid signal: {raw}")


def _parse_port_range(ports: str) -> tuple[int, int]:
    if not ports:
        raise ValueError("empty string specified for ports")
    start_s, dash, end_s = ports.partition("-")
    if not dash:
        end_s = start_s
    if not (start_s.isascii() and start_s.isdigit() and end_s.isascii() and end_s.isdigit()):
        raise ValueError(ports)
    start, end = int(start_s), int(end_s)
    if start > 0xFFFF or end > 0xFFFF or end < start:
        raise ValueError(ports)
    return start, end


def _exposed_ports(raw: str) -> list[str]:
    """go-connections' ParsePortSpec, keeping only the container side."""
    parts = raw.split(":")
    container = parts[-1]
    if len(parts) == 1:
        ip, host = "", ""
    elif len(parts) == 2:
        ip, host = "", parts[0]
    else:
        ip, host = ":".join(parts[:-2]), parts[-2]
    proto_parts = container.split("/")
    if not container or not proto_parts[0]:
        proto, container = "", ""
    elif len(proto_parts) == 1:
        proto = "tcp"
    else:
        proto, container = (proto_parts[1] or "tcp"), proto_parts[0]
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {ip}") from None
    if not container:
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    try:
        start, end = _parse_port_range(container)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {container}") from None
    if host:
        try:
            hstart, hend = _parse_port_range(host)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host}") from None
        if hend != hstart and end - start != hend - hstart:
            raise InvalidArgument(f"invalid ranges specified for container and host Ports: "
                                  f"{container} and {host}")
    proto = proto.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _normalize_workdir(current: str, requested: str) -> str:
    if not requested:
        raise InvalidArgument("cannot normalize nothing")
    if not requested.startswith("/"):
        requested = posixpath.join("/", current or "/", requested)
    # normpath keeps a leading "//" (POSIX allows it a meaning); Go's Clean does not.
    return "/" + posixpath.normpath(requested).lstrip("/")


def _shell_of(config: Mapping) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def _resolve_cmdline(cmd: tuple[str, ...] | None, prepend_shell: bool, config: Mapping) -> list[str] | None:
    if cmd is None:
        return None
    if prepend_shell:
        return _shell_of(config) + list(cmd)
    return list(cmd)


def apply_to_config(config: Mapping, instr: Instruction,
                    env_for_expansion: Mapping[str, str] | Iterable[str] | None = None, *,
                    cmd_set: bool = False, escape: str = "\\") -> dict:
    """A new image `config` (the OCI "config" object) with `instr` applied.

    With env_for_expansion the instruction's variables are expanded first
    (pass the config's Env plus build args); None means already expanded.
    cmd_set tells whether this build stage (or this list of changes) has set
    CMD: an ENTRYPOINT clears an inherited Cmd, not one set alongside it.
    """
    if env_for_expansion is not None:
        instr = expand_instruction(instr, env_for_expansion, escape=escape)
    out = dict(config)
    match instr:
        case EnvInstr():
            env = list(out.get("Env") or [])
            for key, value in instr.pairs:
                entry = f"{key}={value}"
                for i, existing in enumerate(env):
                    if existing.partition("=")[0] == key:
                        env[i] = entry
                        break
                else:
                    env.append(entry)
            out["Env"] = env
        case LabelInstr():
            out["Labels"] = {**(out.get("Labels") or {}), **dict(instr.pairs)}
        case CmdInstr():
            out["Cmd"] = _resolve_cmdline(instr.cmd, instr.prepend_shell, out)
            out.pop("ArgsEscaped", None)
        case EntrypointInstr():
            out["Entrypoint"] = _resolve_cmdline(instr.cmd, instr.prepend_shell, out)
            out.pop("ArgsEscaped", None)
            if not cmd_set:
                out["Cmd"] = None
        case HealthcheckInstr():
            health: dict = {"Test": list(instr.test)}
            for key, value in (("Interval", instr.interval), ("Timeout", instr.timeout),
                               ("StartPeriod", instr.start_period),
                               ("StartInterval", instr.start_interval), ("Retries", instr.retries)):
                if value:
                    health[key] = value
            out["Healthcheck"] = health
        case ExposeInstr():
            ports = dict(out.get("ExposedPorts") or {})
            for raw in instr.ports:
                for port in _exposed_ports(raw):
                    ports[port] = {}
            out["ExposedPorts"] = ports
        case UserInstr():
            out["User"] = instr.user
        case VolumeInstr():
            volumes = dict(out.get("Volumes") or {})
            for v in instr.volumes:
                if not v:
                    raise InvalidArgument("VOLUME specified can not be an empty string")
                volumes[v] = {}
            out["Volumes"] = volumes
        case WorkdirInstr():
            out["WorkingDir"] = _normalize_workdir(out.get("WorkingDir") or "", instr.path)
        case OnbuildInstr():
            out["OnBuild"] = [*(out.get("OnBuild") or []), instr.expression]
        case StopsignalInstr():
            _check_signal(instr.signal)
            out["StopSignal"] = instr.signal
        case ShellInstr():
            out["Shell"] = list(instr.shell)
        case MaintainerInstr():
            # The maintainer is the image's "author", outside this object.
            pass
        case _:
            raise InvalidArgument(f"{instr.keyword} does not change the image config")
    return out


def apply_changes(config: Mapping, changes: Sequence[str] | Sequence[Instruction]) -> dict:
    """`docker commit/import --change`: apply each change to `config` in turn.

    Each change is expanded with the Env the config has at that point, and a
    CMD among the changes survives a later ENTRYPOINT, as in Docker.
    """
    instrs = parse_changes(changes) if changes and isinstance(changes[0], str) else list(changes)
    out = dict(config)
    cmd_set = False
    for instr in instrs:
        out = apply_to_config(out, instr, out.get("Env") or [], cmd_set=cmd_set)
        if isinstance(instr, CmdInstr) and instr.cmd:
            cmd_set = True
    return out

