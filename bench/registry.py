"""push and pull of a ~200 MB image through a local registry: berth against Docker.

    python3 bench/registry.py [--runs N]

Starts Debian's docker-registry on 127.0.0.1 and a private dockerd (as the
tests do), imports a debootstrap rootfs into both, then times, alternately
for berth and Docker: a push to an empty registry, and a pull into a store
that lacks the image (Docker's pull includes unpacking the layer; berth
unpacks on first use, so "pull + run" is timed too).  Each tool gets its
own registry, new for every run, so neither finds blobs the other pushed.
Prints a markdown table of medians and ratios (also in bench/results/).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lib import REPO, Comparison, berth_cmd, debian_rootfs_tar, remove_state, report, timed
from dockerd import running_dockerd

sys.path.insert(0, str(REPO / "tests" / "registry"))
from reg_testlib import start_registry  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rootfs = debian_rootfs_tar()
    size_mb = rootfs.stat().st_size / 1e6
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    berth = berth_cmd(work / "state")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "DOCKER_CONFIG": str(work / "docker-config"), "HOME": str(work)}
    push, pull, pull_run = Comparison("push"), Comparison("pull"), Comparison("pull + run true")
    registries = []
    try:
        with running_dockerd() as docker:
            denv = {**docker.env, **env}
            for run in range(args.runs):
                b_reg = start_registry(work / f"reg-berth-{run}")
                d_reg = start_registry(work / f"reg-docker-{run}")
                registries += [b_reg, d_reg]
                b_name, d_name = f"{b_reg.host}/bench/debian:1", f"{d_reg.host}/bench/debian:1"
                # Each round starts from stores holding only the freshly imported image.
                subprocess.run([*berth, "import", str(rootfs), b_name], check=True, capture_output=True, env=env)
                subprocess.run(["docker", "import", str(rootfs), d_name], check=True, capture_output=True,
                               env=denv)
                push.berth.append(timed([*berth, "push", b_name], env=env))
                push.docker.append(timed(["docker", "push", d_name], env=denv))
                for measure, run_after in ((pull, False), (pull_run, True)):
                    # Removing the only name removes the image and its layers.
                    subprocess.run([*berth, "rmi", b_name], check=True, capture_output=True, env=env)
                    subprocess.run(["docker", "rmi", d_name], check=True, capture_output=True, env=denv)
                    b_cmd = [*berth, "pull", b_name]
                    d_cmd = ["docker", "pull", d_name]
                    if run_after:
                        b_cmd = [*berth, "run", "--rm", "--network", "none", b_name, "true"]
                        d_cmd = ["docker", "run", "--rm", "--network", "none", d_name, "true"]
                        # rmi leaves berth's unpacked layers cached; a fresh pull must unpack.
                        for unpacked in (work / "state" / "layers").glob("[0-9a-f]*"):
                            shutil.rmtree(unpacked)
                    measure.berth.append(timed(b_cmd, env=env))
                    measure.docker.append(timed(d_cmd, env=denv))
                subprocess.run([*berth, "rmi", b_name], check=True, capture_output=True, env=env)
                subprocess.run(["docker", "rmi", d_name], check=True, capture_output=True, env=denv)
                b_reg.stop()
                d_reg.stop()
    finally:
        for reg in registries:
            reg.stop()
        remove_state(work / "state")
        shutil.rmtree(work, ignore_errors=True)
    print(report("Registry", [push, pull, pull_run],
                 f"Input: a debootstrap bookworm minbase rootfs, {size_mb:.0f} MB tar, imported into each "
                 "tool (untimed) and pushed to its own fresh docker-registry on 127.0.0.1 over HTTP. "
                 "pull starts from a store without the image; both engines unpack the layer as they "
                 "pull it; pull + run adds the first container's start."))


if __name__ == "__main__":
    main()
