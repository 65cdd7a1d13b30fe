"""Shared fixtures: a private state root per test and small real images."""

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import io
from pathlib import Path

import pytest

from berthtest import Berth, remove_state  # noqa: E402,F401  (a module of its own: test files import it too)

BUSYBOX = "/bin/busybox"


@pytest.fixture
def root(tmp_path):
    """A private berth state directory, removed after the test."""
    d = tmp_path / "berth-root"
    d.mkdir()
    yield d
    remove_state(d)


@pytest.fixture
def berth(root):
    return Berth(root)


@pytest.fixture
def other_berth(tmp_path):
    """A second, independent state root (for moving images between two)."""
    made = []

    def make(name="other-root"):
        b = Berth(tmp_path / name)
        made.append(b)
        return b
    yield make
    for b in made:
        remove_state(b.root)


def busybox_rootfs_tar(path: Path) -> Path:
    """A minimal rootfs tarball: static busybox plus its applet links."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    with tarfile.open(path, "w") as tf:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "usr", "usr/bin"):
            ti = tarfile.TarInfo(d)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o1777 if d == "tmp" else 0o755
            tf.addfile(ti)
        tf.add(BUSYBOX, "bin/busybox")
        for a in applets:
            if a == "busybox":
                continue
            ti = tarfile.TarInfo(f"bin/{a}")
            ti.type = tarfile.SYMTYPE
            ti.linkname = "busybox"
            tf.addfile(ti)
        for name, data in (("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
                           ("etc/group", b"root:x:0:\nnogroup:x:65534:\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return path


@pytest.fixture
def bb(berth, busybox_tar):
    """A busybox image named bb in the test's root; its containers go at the end."""
    berth("import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    yield "bb"
    ids = berth("ps", "-aq", check=False).stdout.split()
    if ids:
        berth("rm", "-f", *ids, check=False)


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory):
    return busybox_rootfs_tar(tmp_path_factory.mktemp("busybox") / "busybox.tar")
from dockerd import docker  # noqa: F401,E402  (session fixture: a private dockerd)


# -- the suite must leave nothing behind -------------------------------------------

def _berth_cgroups() -> set[str]:
    found = set()
    base = Path("/sys/fs/cgroup")
    for parent in [base / "berth", *base.glob("*/berth")]:
        if parent.is_dir():
            found |= {str(p) for p in parent.iterdir() if p.is_dir()}
    return found


def _test_mounts() -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if "/pytest-of-" in line.split()[1]]


def _test_supervisors() -> list[str]:
    out = subprocess.run(["pgrep", "-af", "berth.container.supervisor"],
                         capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "/pytest-of-" in line]


def _cli_servers(directory: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "berth.cli.warmserver"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if directory in line]


def pytest_sessionstart(session):
    session.config._berth_cgroups_before = _berth_cgroups()
    # The suite's `berth` commands share a warm CLI server of their own, stopped at the end.
    os.environ["BERTH_CLI_SERVER_DIR"] = tempfile.mkdtemp(prefix="berth-cli-test-")


def _stop_cli_server() -> list[str]:
    """Stop the suite's CLI server; what is still running after 10 s."""
    from berth.cli.launcher import stop_server

    directory = os.environ["BERTH_CLI_SERVER_DIR"]
    stop_server()
    deadline = time.monotonic() + 10
    while (left := _cli_servers(directory)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not left:
        shutil.rmtree(directory, ignore_errors=True)
    return left


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if any test left mounts, cgroups, supervisors or a CLI server behind."""
    leaks = _stop_cli_server() + _test_mounts() + _test_supervisors() + sorted(
        _berth_cgroups() - getattr(session.config, "_berth_cgroups_before", set()))
    if leaks:
        print("\nLEAKS left by the test suite:\n  " + "\n  ".join(leaks))
        session.exitstatus = 1
