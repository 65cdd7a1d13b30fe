"""One module per family of commands; each offers `register(subparsers)`."""

from berth.cli.commands import containers, cp_stats, images, networks, registry, system, volumes

COMMAND_MODULES = [containers, cp_stats, images, registry, volumes, networks, system]
