"""Modules a command needs only when it runs.

Every `berth` invocation builds the whole argument parser, so a command
module's top-level imports are paid by all commands; heavy ones load on
first attribute access instead.
"""

from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)
