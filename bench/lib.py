"""Side-by-side timing of berth and Docker, reported as ratios."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from berthtest import remove_state  # noqa: E402,F401 - the scripts remove their state roots with it

CACHE = Path(os.environ.get("BERTH_BENCH_CACHE", "/var/cache/berth-bench"))


def berth_cmd(root: Path) -> list[str]:
    """`berth --root ROOT` as the installed script runs it: the launcher, served
    by the warm CLI server (started by the first command: the warm-up runs)."""
    from berth.cli.launcher import command
    return [*command(), "--root", str(root)]


def timed(cmd: list[str], env=None, stdin=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, stdin=stdin)
    return time.perf_counter() - start


@dataclass
class Comparison:
    name: str
    berth: list[float] = field(default_factory=list)
    docker: list[float] = field(default_factory=list)

    def row(self) -> str:
        b, d = statistics.median(self.berth), statistics.median(self.docker)
        return f"| {self.name} | {b:.3f} | {d:.3f} | {b / d:.2f} |"


def report(title: str, comparisons: list[Comparison], notes: str = "") -> str:
    lines = [f"### {title}", "", f"Median of {len(comparisons[0].berth)} runs each, seconds; "
             "ratio = berth / Docker (below 1 means berth is faster).", "",
             "| operation | berth | Docker | ratio |", "|---|---|---|---|"]
    lines += [c.row() for c in comparisons]
    if notes:
        lines += ["", notes]
    return publish(title.lower().replace(" ", "-"), lines)


def publish(name: str, lines: list[str]) -> str:
    """The report's text, also written to bench/results/NAME.md."""
    text = "\n".join(lines) + "\n"
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.md").write_text(text)
    return text


def debian_rootfs_tar() -> Path:
    """A Debian bookworm rootfs tarball made with debootstrap, cached outside the repo."""
    tar = CACHE / "debian-bookworm-rootfs.tar"
    if tar.exists():
        return tar
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / "rootfs-build"
    subprocess.run(["rm", "-rf", str(target)], check=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(target),
                    "http://deb.debian.org/debian"], check=True, stdout=subprocess.DEVNULL)
    tmp = tar.with_suffix(".tmp")
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(target), "-cf", str(tmp), "."], check=True)
    os.replace(tmp, tar)
    subprocess.run(["rm", "-rf", str(target)], check=True)
    return tar
