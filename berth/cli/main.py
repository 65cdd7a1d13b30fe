"""The `berth` command line: global flags, dispatch, and the one place where
engine errors become exit codes and one-line messages."""

from __future__ import annotations

import os
import sys

import berth
from berth import errors
from berth.cli.commands import COMMANDS, command_modules
from berth.cli.launcher import command_word
from berth.cli.parser import CommandParser, OnlyCommand, UsageError

# Docker's exit codes: 125 when the engine fails to run a container, 126
# when the command cannot be invoked, 127 when it is not found; other
# commands fail with 1.
EXIT_USAGE = 125
EXIT_FAILURE = 1
EXIT_BY_ERROR = {errors.NotExecutable: 126, errors.CommandNotFound: 127}


def build_parser(command: str | None = None) -> CommandParser:
    """The parser; with a known `command`, only that command's."""
    parser = CommandParser(
        prog="berth",
        description="A Docker-compatible container engine in Python.",
        usage="berth [OPTIONS] COMMAND",
    )
    parser.add_argument("--root", default=os.environ.get("BERTH_ROOT", "/var/lib/berth"),
                        help="Root directory of berth's state (default /var/lib/berth)")
    parser.add_argument("-H", "--host", default=os.environ.get("BERTH_HOST"),
                        help="Drive the daemon at this socket (unix:///path) instead of the local state")
    parser.add_argument("-D", "--debug", action="store_true", help="Show tracebacks on errors")
    parser.add_argument("-v", "--version", action="store_true", help="Print version information and quit")
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=CommandParser)
    target = OnlyCommand(sub, command) if command in COMMANDS else sub
    for module in command_modules(command):
        module.register(target)
    return parser


def main(argv: list[str] | None = None) -> None:
    code = run(sys.argv[1:] if argv is None else argv)
    # Tearing down an interpreter with a few hundred modules costs more than
    # many commands' work; berth registers no exit handlers, so once the
    # output is flushed nothing is left to do.
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        code = code or EXIT_FAILURE
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def run(argv: list[str]) -> int:
    parser = build_parser(command_word(argv))
    debug = "-D" in argv or "--debug" in argv
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"berth: {e.message}", file=sys.stderr)
        if e.command:
            print(f"See 'berth {e.command} --help'.", file=sys.stderr)
        return EXIT_USAGE
    if args.version:
        print(f"berth version {berth.__version__}, API {berth.API_VERSION}")
        return 0
    if not args.command_name:
        parser.print_help()
        return 0
    engine = None
    try:
        if args.host and args.command_name != "daemon":
            from berth.api.client import RemoteEngine
            engine = RemoteEngine(args.host)
        else:
            from berth.engine import Engine
            engine = Engine(args.root)
        result = args.handler(engine, args)
        return result or 0
    except errors.BerthError as e:
        if debug:
            import traceback
            traceback.print_exc()
        print(f"Error: {e}", file=sys.stderr)
        code = EXIT_BY_ERROR.get(type(e))
        return code if code is not None else getattr(args, "engine_error_exit", EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`berth save | head`); not our failure to report.
        sys.stderr.close()
        return EXIT_FAILURE
    except OSError as e:
        if debug:
            import traceback
            traceback.print_exc()
        print(f"Error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return getattr(args, "engine_error_exit", EXIT_FAILURE)
    finally:
        if engine is not None:
            engine.close()
