"""import, save and load of a ~200 MB Debian rootfs: berth against Docker.

    python3 bench/images.py [--runs N]

Starts a private dockerd (as the tests do), times each operation
alternately for berth and Docker, and prints a markdown table of medians and
ratios (also written to bench/results/).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from lib import Comparison, berth_cmd, debian_rootfs_tar, remove_state, report, timed
from dockerd import running_dockerd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rootfs = debian_rootfs_tar()
    size_mb = rootfs.stat().st_size / 1e6
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    root = work / "state"
    berth = berth_cmd(root)
    imp, save, load = Comparison("import"), Comparison("save"), Comparison("load")
    try:
        with running_dockerd() as docker:
            denv = docker.env
            for _ in range(args.runs):
                imp.berth.append(timed([*berth, "import", str(rootfs), "bench/debian:1"]))
                imp.docker.append(timed(["docker", "import", str(rootfs), "bench/debian:1"], env=denv))
                save.berth.append(timed([*berth, "save", "-o", str(work / "b.tar"), "bench/debian:1"]))
                save.docker.append(timed(["docker", "save", "-o", str(work / "d.tar"), "bench/debian:1"], env=denv))
                subprocess.run([*berth, "rmi", "bench/debian:1"], check=True, capture_output=True)
                subprocess.run(["docker", "rmi", "bench/debian:1"], check=True, capture_output=True, env=denv)
                load.berth.append(timed([*berth, "load", "-i", str(work / "b.tar")]))
                load.docker.append(timed(["docker", "load", "-i", str(work / "d.tar")], env=denv))
                subprocess.run([*berth, "rmi", "bench/debian:1"], check=True, capture_output=True)
                subprocess.run(["docker", "rmi", "bench/debian:1"], check=True, capture_output=True, env=denv)
    finally:
        remove_state(root)
        shutil.rmtree(work, ignore_errors=True)
    print(report("Images", [imp, save, load],
                 f"Input: a debootstrap bookworm minbase rootfs, {size_mb:.0f} MB tar. "
                 "Each tool loads its own save output; images are removed between runs."))


if __name__ == "__main__":
    main()
