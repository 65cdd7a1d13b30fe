"""Modules loaded on first use.

Every `berth` command is a new process, and module execution (regexes,
dataclasses, enums) is most of a short command's time; a module that only
some paths need is bound with `lazy_import` and loads when first touched.
Shared by every layer, so it lives at the package top and imports nothing
of berth.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """`name` as a module object whose code runs at its first attribute access."""
    try:
        return sys.modules[name]
    except KeyError:
        pass
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def load_all() -> None:
    """Run every module bound by `lazy_import` and not yet loaded (what a
    process that forks workers does once, so that none of them must)."""
    for module in list(sys.modules.values()):
        getattr(module, "__name__", None)     # any attribute runs a lazy module
