"""Build arguments: ARG declarations, --build-arg values, and what RUN sees.

The classic builder's rules: a --build-arg reaches the build only through an
ARG of the same name (global ARGs before the first FROM only feed FROM and
default values, unless a stage declares them again); the proxy variables
are allowed without a declaration and, unless declared, stay out of cache
keys and history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["BUILTIN_ARGS", "BuildArgs"]

BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                          "ftp_proxy", "NO_PROXY", "no_proxy"})


class BuildArgs:
    def __init__(self, from_options: Mapping[str, str | None]):
        self.from_options = dict(from_options)
        self.allowed: dict[str, str | None] = {}
        self.meta: dict[str, str | None] = {}
        self.referenced: set[str] = set()

    def clone(self) -> BuildArgs:
        other = BuildArgs(self.from_options)
        other.allowed = dict(self.allowed)
        other.meta = dict(self.meta)
        other.referenced = set(self.referenced)
        return other

    def for_stage(self) -> BuildArgs:
        """What a new stage starts with: the global ARGs, none declared yet."""
        other = self.clone()
        other.allowed = {}
        return other

    def add(self, key: str, value: str | None) -> None:
        self.allowed[key] = value
        self.referenced.add(key)

    def add_meta(self, key: str, value: str | None) -> None:
        self.meta[key] = value

    def merge_referenced(self, other: BuildArgs) -> None:
        self.referenced |= other.referenced

    def _value(self, key: str, source: Mapping[str, str | None]) -> str | None:
        if self.from_options.get(key) is not None:
            return self.from_options[key]
        default = source.get(key)
        if default is None:
            return self.meta.get(key)
        return default

    def _all(self, source: Mapping[str, str | None]) -> dict[str, str]:
        out = {}
        for key in sorted(set(source) | BUILTIN_ARGS):
            value = self._value(key, source)
            if value is not None:
                out[key] = value
        return out

    def allowed_values(self) -> dict[str, str]:
        """Declared ARGs (and the proxy variables) that have a value."""
        return self._all(self.allowed)

    def meta_values(self) -> dict[str, str]:
        """Global ARGs with a value: what FROM may expand."""
        return self._all(self.meta)

    def not_in(self, env: Sequence[str]) -> list[str]:
        """Allowed args as KEY=VALUE, leaving out names `env` sets (ENV wins)."""
        keys = {e.partition("=")[0] for e in env}
        return [f"{k}={v}" for k, v in self.allowed_values().items() if k not in keys]

    def in_cache_key(self, key: str) -> bool:
        """Whether an arg belongs in a RUN's cache key: all but undeclared proxy variables."""
        return key in self.allowed or key not in BUILTIN_ARGS

    def unused(self) -> list[str]:
        """--build-arg names no ARG consumed (Docker warns about them)."""
        return sorted(k for k in self.from_options if k not in self.referenced and k not in BUILTIN_ARGS)
