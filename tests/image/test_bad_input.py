"""Garbage, truncation, digest mismatches and hostile layers: one clear line,
a non-zero exit, and a store exactly as it was."""

import io
import json
import os
import sqlite3
import tarfile

import pytest


def snapshot(root):
    """Everything observable in a state root: blob files and every table row.

    Take the first snapshot of a root after some command made its store, as
    a fresh store is not empty (the predefined networks).
    """
    blobs = sorted(p.name for p in (root / "blobs" / "sha256").glob("*")) if (root / "blobs").exists() else []
    staging = sorted(p.name for p in (root / "tmp").glob("*")) if (root / "tmp").exists() else []
    rows = {}
    db = root / "berth.db"
    if db.exists():
        conn = sqlite3.connect(db)
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            content = sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
            if content:  # a fresh root's first command creates empty tables
                rows[table] = content
        conn.close()
    return blobs, staging, rows


def assert_one_line_failure(p):
    assert p.returncode != 0
    err = p.stderr if isinstance(p.stderr, str) else p.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: ")
    assert "Traceback" not in err


@pytest.fixture
def seeded(berth, busybox_tar, tmp_path):
    """A store holding one image, and a good archive of it."""
    berth("import", busybox_tar, "bb:1")
    archive = tmp_path / "good.tar"
    berth("save", "-o", archive, "bb:1")
    return archive


def _rewrite(src, dst, edit):
    """Copy a tar archive, passing each member's bytes through edit(name, data)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isfile() else None
            if data is not None:
                data = edit(m.name, data)
                if data is None:
                    continue
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
            else:
                tout.addfile(m)


def _load_fails(berth, path, match):
    before = snapshot(berth.root)
    p = berth("load", "-i", path, check=False)
    assert_one_line_failure(p)
    assert match in p.stderr, p.stderr
    assert snapshot(berth.root) == before


def test_garbage(berth, seeded, tmp_path):
    bad = tmp_path / "garbage.tar"
    bad.write_bytes(os.urandom(10000))
    _load_fails(berth, bad, "invalid")


def test_gzip_garbage(berth, seeded, tmp_path):
    import gzip
    bad = tmp_path / "garbage.tar.gz"
    bad.write_bytes(gzip.compress(os.urandom(5000)))
    _load_fails(berth, bad, "invalid")


def test_truncated_archive(berth, seeded, tmp_path):
    data = seeded.read_bytes()
    bad = tmp_path / "truncated.tar"
    bad.write_bytes(data[: len(data) // 2])
    _load_fails(berth, bad, "")


def test_truncated_through_stdin(berth, seeded):
    data = seeded.read_bytes()
    before = snapshot(berth.root)
    p = berth("load", input=data[: len(data) * 2 // 3], check=False)
    assert_one_line_failure(p)
    assert snapshot(berth.root) == before


def test_config_digest_mismatch(berth, seeded, tmp_path):
    def edit(name, data):
        if name.startswith("blobs/") and data.startswith(b"{") and b'"rootfs"' in data:
            return data.replace(b'"os":"linux"', b'"os":"linux" ')
        return data
    bad = tmp_path / "mismatch.tar"
    _rewrite(seeded, bad, edit)
    _load_fails(berth, bad, "digest mismatch")


def test_layer_content_mismatch(berth, busybox_tar, tmp_path):
    """A layer whose bytes differ from the config's diff_id (a fresh store)."""
    berth("import", busybox_tar, "bb:1")
    good = tmp_path / "good.tar"
    berth("save", "-o", good, "bb:1")
    berth("rmi", "bb:1")
    manifest = json.loads(tarfile.open(good).extractfile("manifest.json").read())
    layer_name = manifest[0]["Layers"][0]
    other_layer = io.BytesIO()
    with tarfile.open(fileobj=other_layer, mode="w") as t:
        ti = tarfile.TarInfo("hello")
        ti.size = 2
        t.addfile(ti, io.BytesIO(b"hi"))

    def edit(name, data):
        return other_layer.getvalue() if name == layer_name else data
    bad = tmp_path / "layer-mismatch.tar"
    _rewrite(good, bad, edit)
    _load_fails(berth, bad, "does not match")


@pytest.mark.parametrize("member", ["../escape", "/abs/escape", "a/../../escape"])
def test_traversal_layer_is_refused(berth, busybox_tar, tmp_path, member):
    layer = tmp_path / "evil.tar"
    with tarfile.open(layer, "w") as t:
        ti = tarfile.TarInfo(member)
        ti.size = 4
        t.addfile(ti, io.BytesIO(b"evil"))
    berth("images")
    before = snapshot(berth.root)
    p = berth("import", layer, "evil:1", check=False)
    assert_one_line_failure(p)
    assert snapshot(berth.root) == before
    assert not (tmp_path.parent / "escape").exists()


def test_symlink_escape_layer_is_refused(berth, tmp_path):
    layer = tmp_path / "evil.tar"
    with tarfile.open(layer, "w") as t:
        link = tarfile.TarInfo("evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        t.addfile(link)
        ti = tarfile.TarInfo("evil/passwd")
        ti.size = 4
        t.addfile(ti, io.BytesIO(b"evil"))
    p = berth("import", layer, check=False)
    assert_one_line_failure(p)
    assert berth("images", "-q").stdout == ""


def test_missing_input_file(berth, tmp_path):
    p = berth("load", "-i", tmp_path / "nope.tar", check=False)
    assert_one_line_failure(p)
    p = berth("import", tmp_path / "nope.tar", check=False)
    assert_one_line_failure(p)
    assert "no such file" in p.stderr


def test_bad_reference(berth, busybox_tar):
    p = berth("import", busybox_tar, "Bad:Name", check=False)
    assert_one_line_failure(p)
    assert "must be lowercase" in p.stderr
    assert berth("images", "-q").stdout == ""


def test_save_failure_leaves_no_file(berth, tmp_path):
    out = tmp_path / "x.tar"
    p = berth("save", "-o", out, "missing:1", check=False)
    assert_one_line_failure(p)
    assert not out.exists() and list(tmp_path.glob(".berth-*")) == []
