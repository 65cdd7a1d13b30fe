"""The tutorial's Dockerfile built by berth and by Docker's classic builder.

    python3 bench/build.py [--runs N] [--cold-runs N]

Three timings each, alternating between the two engines:
  cold     a build without the cache (every RUN runs: apt-get, pip)
  no-op    a rebuild with nothing changed (every step from the cache)
  app.py   a rebuild after app.py changed (the ADD and the steps after it rerun)

Both start from the same base image (a debootstrap bookworm rootfs, with
the host's CA bundle added to the system's certificates so that pip in a
RUN step gets through this machine's TLS-intercepting proxy under both
engines), loaded into both with the same ID.  The context is
examples/tutorial, copied; RUN steps use the host's network
(`--network host`) because the private dockerd has no bridge.  Docker's
and berth's cold builds run with --no-cache, after an untimed build that
warms the package mirror's and proxy's caches, alternating who goes first,
so that the network weighs the same for both.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from lib import REPO, Comparison, berth_cmd, debian_rootfs_tar, remove_state, report, timed
from dockerd import running_dockerd

IMAGE = "my_application_img"
BASE = "debian:bookworm"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def make_base(berth: list[str], work: Path) -> None:
    """debian:bookworm with the host's CAs among the system's (update-ca-certificates keeps them)."""
    subprocess.run([*berth, "import", str(debian_rootfs_tar()), BASE], check=True, capture_output=True)
    ctx = work / "base"
    ctx.mkdir()
    shutil.copy(CA_BUNDLE, ctx / "host-ca.crt")
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\n"
                                    "COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt\n")
    subprocess.run([*berth, "build", "-q", "-t", BASE, str(ctx)], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="runs of each rebuild")
    ap.add_argument("--cold-runs", type=int, default=2, help="runs of each cold build")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    berth = berth_cmd(work / "state")
    ctx = work / "tutorial"
    shutil.copytree(REPO / "examples" / "tutorial", ctx, ignore=shutil.ignore_patterns("__pycache__"))
    app = ctx / "my_application" / "app.py"
    original = app.read_text()
    cold, noop, changed = Comparison("cold build"), Comparison("no-op rebuild"), Comparison("rebuild, app.py changed")
    try:
        print("making the base image ...", flush=True)
        make_base(berth, work)
        with running_dockerd() as docker:
            denv = {**docker.env, "DOCKER_BUILDKIT": "0"}
            save = subprocess.Popen([*berth, "save", BASE], stdout=subprocess.PIPE)
            subprocess.run(["docker", "load"], stdin=save.stdout, env=denv, check=True, capture_output=True)
            save.stdout.close()
            if save.wait() != 0:
                raise RuntimeError("berth save failed")
            flags = ["--network", "host", "-t", IMAGE, str(ctx)]
            b_build, b_cold = [*berth, "build", *flags], [*berth, "build", "--no-cache", *flags]
            d_build, d_cold = ["docker", "build", *flags], ["docker", "build", "--no-cache", *flags]
            # A first build, not timed, warms what both share: the mirror's and
            # the proxy's caches, the page cache.
            print("warm-up build ...", flush=True)
            subprocess.run(d_cold, env=denv, check=True, capture_output=True)
            for i in range(args.cold_runs):
                # Alternate who goes first: the network is the noisiest part.
                for who in (("berth", "docker") if i % 2 == 0 else ("docker", "berth")):
                    if who == "berth":
                        cold.berth.append(timed(b_cold))
                    else:
                        cold.docker.append(timed(d_cold, env=denv))
                print(f"cold build {i + 1}: berth {cold.berth[-1]:.1f} s, Docker {cold.docker[-1]:.1f} s",
                      flush=True)
            for i in range(args.runs):
                noop.berth.append(timed(b_build))
                noop.docker.append(timed(d_build, env=denv))
                app.write_text(original + f"\n# edit {i}\n")
                changed.berth.append(timed(b_build))
                changed.docker.append(timed(d_build, env=denv))
                print(f"run {i + 1}: no-op {noop.berth[-1]:.2f} s vs {noop.docker[-1]:.2f} s, "
                      f"app.py {changed.berth[-1]:.1f} s vs {changed.docker[-1]:.1f} s", flush=True)
    finally:
        remove_state(work / "state")
        shutil.rmtree(work, ignore_errors=True)
    print(report("Build", [noop, changed, cold],
                 "The tutorial's Dockerfile (examples/tutorial): apt-get update, two apt-get installs, "
                 "ADD of the application, pip install of flask and cherrypy, then metadata. "
                 f"`--network host` for both; cold builds (--no-cache) {args.cold_runs} times each after "
                 f"an untimed warm-up build, rebuilds {args.runs} times each, alternating berth and "
                 "Docker."))


if __name__ == "__main__":
    main()
