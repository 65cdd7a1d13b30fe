"""The table that lets `berth COMMAND` build only its own module's parser."""

import importlib

import pytest

from berth.cli.commands import COMMANDS, MODULES
from berth.cli.launcher import command_word
from berth.cli.main import build_parser
from berth.cli.parser import CommandParser


def registered_by(name: str) -> set[str]:
    parser = CommandParser(prog="berth")
    sub = parser.add_subparsers(dest="command_name", parser_class=CommandParser)
    importlib.import_module(f"berth.cli.commands.{name}").register(sub)
    return set(sub.choices)


@pytest.mark.parametrize("module", MODULES)
def test_table_names_every_command_of_each_module(module):
    assert registered_by(module) == {cmd for cmd, owner in COMMANDS.items() if owner == module}


@pytest.mark.parametrize("argv, word", [
    (["run", "--rm", "x"], "run"),
    (["--root", "/r", "ps", "-a"], "ps"),
    (["-D", "-H", "unix:///s", "images"], "images"),
    (["--root=/r", "version"], "version"),
    (["--help"], None),
    ([], None),
])
def test_command_word(argv, word):
    assert command_word(argv) == word


def test_a_command_parses_with_only_its_module():
    args = build_parser("run").parse_args(["run", "--rm", "-e", "A=1", "img", "true"])
    assert args.command_name == "run" and args.rm


def test_unknown_commands_get_the_full_parser():
    assert set(build_parser("nosuch")._subparsers._group_actions[0].choices) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_only_the_invoked_command_is_built(command):
    choices = build_parser(command)._subparsers._group_actions[0].choices
    assert command in choices
    assert len({id(p) for p in choices.values()}) == 1     # aliases share the one parser
