"""Where a container's files live.

Persistent files sit under the state root; sockets sit under a short
per-root directory in /run, because a unix socket path must fit in 108 bytes
and state roots (a test's tmp dir) can be long.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from berth.store.digest import sha256

RUN_BASE = Path("/run/berth")


def run_dir(root: Path) -> Path:
    """The runtime directory of one state root (sockets, runtime state)."""
    return RUN_BASE / sha256(str(Path(root).absolute()).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ContainerPaths:
    root: Path
    id: str

    @property
    def dir(self) -> Path:
        return self.root / "containers" / self.id

    @property
    def bundle(self) -> Path:
        return self.dir / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def upper(self) -> Path:
        return self.dir / "fs" / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "fs" / "work"

    @property
    def log(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    @property
    def supervisor_log(self) -> Path:
        return self.dir / "supervisor.log"

    @property
    def lock(self) -> Path:
        """Held by the supervisor for its whole life: free means it is gone."""
        return self.dir / "supervisor.lock"

    @property
    def hostname(self) -> Path:
        return self.dir / "hostname"

    @property
    def hosts(self) -> Path:
        return self.dir / "hosts"

    @property
    def resolv_conf(self) -> Path:
        return self.dir / "resolv.conf"

    @property
    def run(self) -> Path:
        return run_dir(self.root) / self.id[:12]

    @property
    def attach_socket(self) -> Path:
        return self.run / "attach.sock"

    @property
    def runtime_root(self) -> Path:
        return run_dir(self.root) / "runtime"
