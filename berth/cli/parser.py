"""argparse shaped like Docker's CLI: its usage errors and its exit code 125."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    def __init__(self, message: str, command: str | None):
        super().__init__(message)
        self.message = message
        self.command = command


class CommandParser(argparse.ArgumentParser):
    def error(self, message: str):
        command = self.prog.split(" ", 1)[1] if " " in self.prog else None
        if message.startswith("unrecognized arguments: "):
            arg = message.split(": ", 1)[1].split()[0]
            message = f"unknown flag: {arg}" if arg.startswith("-") else f'"{command}" accepts no argument "{arg}"'
        elif message.startswith("the following arguments are required"):
            message = f'"{command}" requires at least 1 argument.'
        raise UsageError(message, command)


def add_command(sub, name: str, handler, help: str, *, aliases=(), usage=None,
                engine_error_exit: int | None = None, add_help: bool = True) -> CommandParser:
    p = sub.add_parser(name, help=help, description=help, aliases=list(aliases), usage=usage,
                       add_help=add_help)
    p.set_defaults(handler=handler)
    if engine_error_exit is not None:
        p.set_defaults(engine_error_exit=engine_error_exit)
    return p


def filter_arg(value: str) -> tuple[str, str]:
    """One `-f key=value` flag; argparse reports a bad one as a usage error."""
    key, sep, val = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("bad format of filter (expected name=value)")
    return key.strip().lower(), val


def filters_of(pairs: list[tuple[str, str]] | None) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for key, value in pairs or []:
        filters.setdefault(key, []).append(value)
    return filters


class OnlyCommand:
    """Subparsers that build one command's parser and no other's.

    A command module registers a family of commands; the parsers of the
    ones not invoked (and argparse's per-parser help texts, each a gettext
    lookup) would be built for nothing, so their `add_parser` returns a
    sink that takes any call and ignores it.
    """

    def __init__(self, subparsers, name: str):
        self._subparsers = subparsers
        self._name = name

    def add_parser(self, name: str, **kwargs):
        if name == self._name or self._name in kwargs.get("aliases", ()):
            return self._subparsers.add_parser(name, **kwargs)
        return _SINK

    def __getattr__(self, attr: str):
        return getattr(self._subparsers, attr)


class _Sink:
    def __getattr__(self, attr: str):
        return self._ignore

    def _ignore(self, *args, **kwargs) -> "_Sink":
        return self


_SINK = _Sink()
