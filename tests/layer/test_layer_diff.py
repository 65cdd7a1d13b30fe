"""diff_tar and changes against a real overlayfs mount, closed by a round trip:
layers unpacked for overlay, changed through the mount, exported, and
re-applied onto a flat copy, which must then equal the merged view."""

import io
import os
import shutil
import subprocess
import tarfile

import pytest

from berth.layer.apply import apply_layer
from berth.layer.diff import ChangeKind, changes, diff_tar
from berth.layer.safety import check_layer_stream
from layer_testlib import E, snapshot, tar_bytes

T0 = 1_500_000_000

BASE = tar_bytes(
    E("bin", "dir", mode=0o755, mtime=T0),
    E("bin/tool", data=b"\x7fELF tool", mode=0o755, mtime=T0),
    E("etc", "dir", mode=0o755, mtime=T0),
    E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", mtime=T0),
    E("etc/hostname", data=b"base\n", mtime=T0),
    E("etc/shadow", data=b"root:*:::::::\n", mode=0o640, gid=42, mtime=T0),
    E("d", "dir", mode=0o755, mtime=T0),
    E("d/old", data=b"old", mtime=T0),
    E("d/sub", "dir", mode=0o755, mtime=T0),
    E("d/sub/older", data=b"older", mtime=T0),
    E("keep", "dir", mode=0o755, mtime=T0),
    E("keep/x", data=b"x", mtime=T0),
    E("keep/y", "dir", mode=0o700, mtime=T0),
    E("hl", "dir", mode=0o755, mtime=T0),
    E("hl/a", data=b"linked", mtime=T0),
    E("hl/b", "link", link="hl/a", mtime=T0),
    E("home", "dir", mode=0o755, mtime=T0),
    E("home/user", "dir", mode=0o750, uid=1000, gid=1000, mtime=T0),
    E("home/user/notes", data=b"notes", uid=1000, gid=1000, mtime=T0),
    E("usr", "dir", mode=0o755, mtime=T0),
    E("usr/lib", "dir", mode=0o755, mtime=T0),
    E("usr/lib/libx.so", data=b"lib", mtime=T0),
    E("lib", "symlink", link="usr/lib", mtime=T0),
    E("chmod_me", data=b"c", mode=0o644, mtime=T0),
    E("xattr_me", data=b"x", mtime=T0),
    E("rename_me", data=b"r", mtime=T0),
    E("file_to_dir", data=b"f", mtime=T0),
    E("dir_to_file", "dir", mode=0o755, mtime=T0),
    E("dir_to_file/inner", data=b"i", mtime=T0),
)

UPPER_LAYER = tar_bytes(
    E("etc", "dir", mode=0o755, mtime=T0 + 10),
    E("etc/.wh.hostname", mtime=T0 + 10),
    E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\napp:x:100:100::/:/bin/false\n", mtime=T0 + 10),
    E("d", "dir", mode=0o755, mtime=T0 + 10),
    E("d/.wh..wh..opq", mtime=T0 + 10),
    E("d/fresh", data=b"fresh", mtime=T0 + 10),
    E("opt", "dir", mode=0o755, mtime=T0 + 10),
    E("opt/app", data=b"app", mode=0o755, mtime=T0 + 10),
    E("opt/cfg", data=b"cfg", mtime=T0 + 10),
)


@pytest.fixture
def overlay(tmp_path):
    """Two layers unpacked for overlay and mounted; yields (merged, upper, [lowers])."""
    lowers = [tmp_path / "l2", tmp_path / "l1"]
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (*lowers, upper, work, merged):
        d.mkdir()
        os.chmod(d, 0o755)
    apply_layer(io.BytesIO(BASE), lowers[1], whiteout_mode="overlay")
    apply_layer(io.BytesIO(UPPER_LAYER), lowers[0], whiteout_mode="overlay")
    opts = f"lowerdir={lowers[0]}:{lowers[1]},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
    mounted = [True]

    def unmount():
        if mounted[0]:
            subprocess.run(["umount", str(merged)], check=True)
            mounted[0] = False

    try:
        yield merged, upper, lowers, unmount
    finally:
        unmount()


def _change_things(m):
    (m / "new/dir").mkdir(parents=True)
    (m / "new/dir/file").write_bytes(b"brand new")
    with open(m / "etc/passwd", "ab") as f:
        f.write(b"extra:x:5:5::/:/bin/false\n")
    os.unlink(m / "etc/shadow")
    shutil.rmtree(m / "keep")
    (m / "keep").mkdir()
    (m / "keep/again").write_bytes(b"again")
    os.chmod(m / "chmod_me", 0o600)
    os.chown(m / "home/user/notes", 1001, 1002)
    os.symlink("../../etc/passwd", m / "home/user/link")
    (m / "newhl").mkdir()
    (m / "newhl/a").write_bytes(b"pair")
    os.link(m / "newhl/a", m / "newhl/b")
    (m / "run").mkdir()
    os.mkfifo(m / "run/fifo", 0o620)
    (m / "dev").mkdir()
    os.mknod(m / "dev/mydev", 0o020640, os.makedev(10, 200))
    os.setxattr(m / "xattr_me", "user.note", b"\x00binary\xff")
    os.rename(m / "rename_me", m / "renamed")
    os.unlink(m / "file_to_dir")
    (m / "file_to_dir").mkdir()
    (m / "file_to_dir/inside").write_bytes(b"inside")
    shutil.rmtree(m / "dir_to_file")
    (m / "dir_to_file").write_bytes(b"now a file")
    os.unlink(m / "opt/app")
    with open(m / "hl/a", "ab") as f:
        f.write(b" and changed")
    os.chmod(m / "d/fresh", 0o600)


def test_overlay_lower_dirs_merge_as_layers(overlay):
    merged, _, _, _ = overlay
    assert not (merged / "etc/hostname").exists()
    assert sorted(os.listdir(merged / "d")) == ["fresh"]
    assert b"app:x" in (merged / "etc/passwd").read_bytes()
    assert (merged / "keep/x").read_bytes() == b"x"
    assert os.stat(merged / "hl/a").st_ino == os.stat(merged / "hl/b").st_ino


def test_commit_round_trip(overlay, tmp_path):
    merged, upper, lowers, unmount = overlay
    _change_things(merged)
    expected = snapshot(merged)
    found = changes(upper, lowers)
    unmount()

    out = io.BytesIO()
    diff_tar(upper, out)
    layer = out.getvalue()
    again = io.BytesIO()
    diff_tar(upper, again)
    assert again.getvalue() == layer, "diff_tar must be deterministic"
    check_layer_stream(io.BytesIO(layer))

    copy = tmp_path / "copy"
    copy.mkdir()
    os.chmod(copy, 0o755)
    for blob in (BASE, UPPER_LAYER, layer):
        apply_layer(io.BytesIO(blob), copy)
    assert snapshot(copy) == expected

    listed = {(c.kind.symbol, c.path) for c in found}
    assert listed == {
        ("A", "/dev"), ("A", "/dev/mydev"),
        ("C", "/dir_to_file"),
        ("C", "/etc"), ("C", "/etc/passwd"), ("D", "/etc/shadow"),
        ("C", "/file_to_dir"), ("A", "/file_to_dir/inside"),
        ("C", "/hl/a"),  # a copy-up keeps its directory as it was
        ("C", "/home/user"), ("A", "/home/user/link"), ("C", "/home/user/notes"),
        ("C", "/keep"), ("A", "/keep/again"), ("D", "/keep/x"), ("D", "/keep/y"),
        ("A", "/new"), ("A", "/new/dir"), ("A", "/new/dir/file"),
        ("A", "/newhl"), ("A", "/newhl/a"), ("A", "/newhl/b"),
        ("C", "/opt"), ("D", "/opt/app"),
        ("A", "/run"), ("A", "/run/fifo"),
        ("C", "/chmod_me"), ("C", "/xattr_me"),
        ("D", "/rename_me"), ("A", "/renamed"),
        ("C", "/d/fresh"),
    }, sorted(listed)
    assert [c.path for c in found] == sorted(c.path for c in found)
    assert all(c.kind in ChangeKind for c in found)


def test_diff_tar_entries(overlay):
    merged, upper, _, unmount = overlay
    _change_things(merged)
    unmount()
    out = io.BytesIO()
    size = diff_tar(upper, out)
    out.seek(0)
    members = {ti.name: ti for ti in tarfile.open(fileobj=out)}
    assert members["etc/.wh.shadow"].isreg() and members["etc/.wh.shadow"].size == 0
    assert members["keep/.wh..wh..opq"].isreg()
    assert members["keep"].isdir()
    assert "SCHILY.xattr.trusted.overlay.opaque" not in members["keep"].pax_headers
    assert members["newhl/b"].islnk() and members["newhl/b"].linkname == "newhl/a"
    assert members["dev/mydev"].ischr() and (members["dev/mydev"].devmajor, members["dev/mydev"].devminor) == (10, 200)
    assert members["run/fifo"].isfifo()
    assert members["home/user/link"].issym()
    assert members["xattr_me"].pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == b"\x00binary\xff"
    assert all(ti.uname == "" and ti.gname == "" for ti in members.values())
    assert all(isinstance(ti.mtime, int) for ti in members.values())
    assert size == sum(ti.size for ti in members.values() if ti.isreg())
