"""Images named without a registry are Docker Hub's; with no network, pulls
(and `run`, which pulls a missing image) fail fast with Docker's words.

The commands run in a network namespace of their own with no interfaces up,
so that nothing is ever sent to docker.io whatever the machine's network."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from berthtest import berth_argv

pytestmark = pytest.mark.skipif(not shutil.which("unshare"), reason="unshare (util-linux) is missing")

HUB = 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io'


def offline(b, *args, env=None):
    cmd = ["unshare", "--net", *berth_argv(b.root), *args]
    start = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env={**os.environ, **(env or {})})
    return p, time.monotonic() - start


def test_pull_from_docker_hub_without_network(rberth, reg_env):
    p, took = offline(rberth, "pull", "busybox", env=reg_env)
    assert p.returncode == 1
    assert p.stdout == "Using default tag: latest\n"
    assert p.stderr.startswith(f"Error: {HUB}"), p.stderr
    assert took < 15


def test_run_pulls_a_missing_image_first(rberth, reg_env):
    p, took = offline(rberth, "run", "--rm", "busybox", "true", env=reg_env)
    assert p.returncode == 125
    assert p.stderr.startswith("Unable to find image 'busybox:latest' locally\n")
    assert f"Error: {HUB}" in p.stderr
    assert took < 15
    p, _ = offline(rberth, "run", "--rm", "--pull", "never", "busybox", "true", env=reg_env)
    assert p.returncode == 125
    assert p.stderr == "Error: No such image: busybox:latest\n"


def test_run_pulls_from_a_registry(rberth, registry, bb_image, other):
    name = f"{registry.host}/runme:1"
    bb_image(name)
    rberth("push", name)
    p = other("run", "--rm", name)
    assert p.stderr.startswith(f"Unable to find image '{name}' locally\n")
    assert f"Status: Downloaded newer image for {name}" in p.stderr
    assert p.stdout == "from berth\n"
    assert other("run", "--rm", name).stderr == ""
