"""One module per family of commands; each offers `register(subparsers)`."""

from berth.cli.commands import (build, containers, cp_stats, daemon, images, mkimage, networks, registry,
                                 system, volumes)

COMMAND_MODULES = [containers, cp_stats, images, build, mkimage, registry, volumes, networks, system, daemon]
