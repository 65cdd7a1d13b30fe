"""SIGKILL at any point of an ingestion leaves a consistent store."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest


@pytest.fixture(scope="module")
def big_layer(tmp_path_factory):
    """A ~60 MB rootfs-like tarball with many files, so kills land mid-stream."""
    path = tmp_path_factory.mktemp("big") / "big.tar"
    rnd = os.urandom(1 << 20)
    with tarfile.open(path, "w") as t:
        for i in range(600):
            data = rnd[(i * 7919) % 4096:][: 100_000]
            ti = tarfile.TarInfo(f"d{i % 20}/f{i}")
            ti.size = len(data)
            import io
            t.addfile(ti, io.BytesIO(data))
    return path


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4, 0.7, 1.0])
def test_kill_during_import(berth, big_layer, delay):
    berth("import", big_layer, "base:1")
    proc = subprocess.Popen([sys.executable, "-m", "berth", "--root", str(berth.root),
                             "import", str(big_layer), "victim:1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Every name resolves to a whole image, whatever the kill interrupted.
    for line in berth("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split():
        json.loads(berth("inspect", line).stdout)
    report = berth("system", "check", check=False).stdout
    assert "missing blob" not in report and "corrupt blob" not in report and "inconsistent" not in report
    # Leftovers of the killed writer are at most dangling, and repair removes them.
    berth("system", "check", "--repair", check=False)
    # Staging files only count as stale after an hour; remove them the way
    # a later repair would, then the store is clean.
    for p in (berth.root / "tmp").glob("*"):
        p.unlink()
    assert berth("system", "check").stdout.strip() == "store OK"
