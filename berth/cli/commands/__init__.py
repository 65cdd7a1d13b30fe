"""One module per family of commands; each offers `register(subparsers)`."""

from berth.cli.commands import images, system

COMMAND_MODULES = [images, system]
