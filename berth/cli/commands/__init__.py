"""One module per family of commands; each offers `register(subparsers)`."""

from berth.cli.commands import containers, images, system, volumes

COMMAND_MODULES = [containers, images, volumes, system]
