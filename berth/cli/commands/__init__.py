"""One module per family of commands; each offers `register(subparsers)`.

Building every command's parser costs more than most commands' work, so
`berth run` registers only the module that owns `run`: COMMANDS names the
owner of each top-level command (a test keeps it true to what the modules
register).  Help and unknown commands register them all.
"""

from __future__ import annotations

import importlib

MODULES = ("containers", "cp_stats", "images", "build", "mkimage", "registry", "volumes", "networks",
           "system", "daemon")

COMMANDS = {
    **dict.fromkeys(("run", "create", "start", "stop", "restart", "kill", "rm", "wait", "ps", "logs",
                     "attach", "rename", "pause", "unpause", "container", "exec", "top", "diff",
                     "commit", "export"), "containers"),
    **dict.fromkeys(("cp", "stats"), "cp_stats"),
    **dict.fromkeys(("images", "import", "tag", "rmi", "save", "load", "insert", "history", "image"),
                    "images"),
    "build": "build",
    "mkimage": "mkimage",
    **dict.fromkeys(("pull", "push", "login", "logout", "search"), "registry"),
    "volume": "volumes",
    **dict.fromkeys(("network", "port"), "networks"),
    **dict.fromkeys(("version", "info", "inspect", "events", "system"), "system"),
    "daemon": "daemon",
}


def command_modules(command: str | None = None) -> list:
    """The modules to register: the owner of `command`, or all of them."""
    names = [COMMANDS[command]] if command in COMMANDS else MODULES
    return [importlib.import_module(f"berth.cli.commands.{name}") for name in names]
