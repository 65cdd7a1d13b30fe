import hashlib
import sqlite3
import subprocess
import sys

import pytest

from berth.errors import DataCorrupt, NotFound
from berth.store.state import State


def test_put_verifies_and_publishes_atomically(tmp_path):
    state = State(tmp_path)
    data = b"hello"
    d = state.blobs.put(data)
    assert d == "sha256:" + hashlib.sha256(data).hexdigest()
    assert state.blobs.read(d) == data
    assert oct(state.blobs.path(d).stat().st_mode & 0o777) == "0o444"
    with pytest.raises(DataCorrupt, match="digest mismatch"):
        state.blobs.put(b"other", expected=d.replace(d[-1], "0" if d[-1] != "0" else "1"))
    # A failed write leaves no staging file behind.
    assert list(state.blobs.tmp_dir.iterdir()) == []


def test_missing_blob_is_not_found(tmp_path):
    state = State(tmp_path)
    with pytest.raises(NotFound):
        state.blobs.read("sha256:" + "0" * 64)


def test_writer_abort_on_exception(tmp_path):
    state = State(tmp_path)
    with pytest.raises(RuntimeError):
        with state.blobs.writer() as w:
            w.write(b"partial")
            raise RuntimeError("boom")
    assert list(state.blobs.tmp_dir.iterdir()) == []
    assert list(state.blobs) == []


def test_database_is_wal_and_migrated(tmp_path):
    state = State(tmp_path)
    mode = state.db.query_one("PRAGMA journal_mode")[0]
    assert mode == "wal"
    conn = sqlite3.connect(tmp_path / "berth.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    # Opening again does not re-run migrations.
    State(tmp_path)


def test_concurrent_writers_serialise(tmp_path):
    """Several processes writing the same database all succeed."""
    code = (
        "import sys; from berth.store.state import State\n"
        "s = State(sys.argv[1])\n"
        "for i in range(30):\n"
        "    with s.db.transaction() as c:\n"
        "        c.execute(\"INSERT INTO layers VALUES (?,?,?,?)\", (f'{sys.argv[2]}-{i}', 'd', 1, 'm'))\n"
    )
    State(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(n)]) for n in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    assert State(tmp_path).db.query_one("SELECT COUNT(*) FROM layers")[0] == 120
