"""apply_layer: Docker/OCI layer semantics on a real filesystem (run as root)."""

import bz2
import errno
import gzip
import io
import lzma
import os
import stat
import struct
import subprocess

import pytest

from berth.errors import DataCorrupt
from berth.layer.apply import apply_layer
from layer_testlib import E, tar_bytes

# A valid VFS_CAP_REVISION_2 security.capability value: cap_net_bind_service, effective.
CAP_NET_BIND = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def apply(target, *entries, mode="delete"):
    return apply_layer(io.BytesIO(tar_bytes(*entries)), target, whiteout_mode=mode)


def names(path):
    return sorted(os.listdir(path))


@pytest.fixture
def target(tmp_path):
    d = tmp_path / "rootfs"
    d.mkdir()
    return d


@pytest.fixture
def xattr_target(tmp_path):
    """A target on a filesystem with user and security xattrs; a tmpfs if tmp has none."""
    d = tmp_path / "rootfs"
    d.mkdir()
    try:
        os.setxattr(d, "user.probe", b"1")
        os.removexattr(d, "user.probe")
        yield d
        return
    except OSError as e:
        if e.errno != errno.ENOTSUP:
            raise
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_modes_ownership_times_and_special_files(target):
    size = apply(
        target,
        E("tmp", "dir", mode=0o1777, mtime=1_500_000_000),
        E("srv", "dir", mode=0o2750, uid=33, gid=44, mtime=1_500_000_001),
        E("srv/suid", data=b"#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678,
          pax={"mtime": "1600000000.123456789"}),
        E("srv/link", "symlink", link="/etc/hostname", uid=7, gid=8, mtime=1_400_000_000),
        E("dev", "dir", mode=0o755),
        E("dev/null", "char", mode=0o666, dev=(1, 3)),
        E("dev/loop0", "block", mode=0o660, gid=6, dev=(7, 0)),
        E("dev/fifo", "fifo", mode=0o620),
    )
    assert size == len(b"#!/bin/sh\n")

    st = os.lstat(target / "tmp")
    assert stat.S_IMODE(st.st_mode) == 0o1777 and st.st_mtime == 1_500_000_000
    st = os.lstat(target / "srv")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2750, 33, 44)
    # Set after the directory's entries were created, so it is the tar's.
    assert st.st_mtime == 1_500_000_001

    st = os.lstat(target / "srv/suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1234, 5678)
    assert st.st_mtime_ns == 1_600_000_000_123_456_789

    st = os.lstat(target / "srv/link")
    assert stat.S_ISLNK(st.st_mode) and os.readlink(target / "srv/link") == "/etc/hostname"
    assert (st.st_uid, st.st_gid, st.st_mtime) == (7, 8, 1_400_000_000)

    st = os.lstat(target / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    st = os.lstat(target / "dev/loop0")
    assert stat.S_ISBLK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == 6
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 0)
    st = os.lstat(target / "dev/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620


def test_xattrs(xattr_target):
    t = xattr_target
    apply(
        t,
        E("bin", "dir", mode=0o755, xattrs={"user.dir": b"on a dir"}),
        E("bin/ping", data=b"\x7fELF", mode=0o755, uid=0, gid=0,
          xattrs={"security.capability": CAP_NET_BIND, "user.bin": b"\xff\x00\xfe"}),
        E("bin/own", data=b"x", uid=1000, gid=1000, xattrs={"security.capability": CAP_NET_BIND}),
        E("bin/sneaky", data=b"x", xattrs={"trusted.overlay.redirect": b"/etc"}),
    )
    assert os.getxattr(t / "bin", "user.dir") == b"on a dir"
    assert os.getxattr(t / "bin/ping", "security.capability") == CAP_NET_BIND
    assert os.getxattr(t / "bin/ping", "user.bin") == b"\xff\x00\xfe"
    # The chown that the kernel answers by dropping capabilities came first.
    assert os.getxattr(t / "bin/own", "security.capability") == CAP_NET_BIND
    assert os.stat(t / "bin/own").st_uid == 1000
    # overlayfs's private attributes are never taken from a tar.
    assert "trusted.overlay.redirect" not in os.listxattr(t / "bin/sneaky")


def test_hard_links(target):
    (target / "lower").write_bytes(b"from below")
    apply(
        target,
        E("a", data=b"content", mode=0o640, uid=5),
        E("d/b", "link", link="a"),
        E("c", "link", link="./d/../a"),
        E("s", "symlink", link="a"),
        E("s2", "link", link="s"),
        E("l2", "link", link="lower"),
    )
    a = os.lstat(target / "a")
    assert a.st_nlink == 3
    assert os.lstat(target / "d/b").st_ino == a.st_ino == os.lstat(target / "c").st_ino
    assert os.lstat(target / "s2").st_ino == os.lstat(target / "s").st_ino
    assert os.lstat(target / "l2").st_ino == os.lstat(target / "lower").st_ino


def test_hard_link_to_missing_target(target):
    with pytest.raises(DataCorrupt, match='"x" is a hard link to "nope", which does not exist'):
        apply(target, E("x", "link", link="nope"))
    with pytest.raises(DataCorrupt, match="which is a directory"):
        apply(target, E("d", "dir"), E("x", "link", link="d"))


def test_whiteouts_delete_lower_content(target):
    (target / "etc").mkdir()
    (target / "etc/keep").write_text("k")
    (target / "etc/gone").write_text("g")
    (target / "var/lib/tree").mkdir(parents=True)
    (target / "var/lib/tree/f").write_text("f")
    os.symlink("/", target / "var/link")
    apply(
        target,
        E("etc/.wh.gone"),
        E("var/.wh.lib"),
        E("var/.wh.link"),
        E(".wh.never-existed"),
        E("nothere/.wh.x"),
    )
    assert names(target / "etc") == ["keep"]
    assert names(target / "var") == []
    assert names(target) == ["etc", "var"]


def test_opaque_directory_keeps_only_this_layers_entries(target):
    (target / "d/sub/deep").mkdir(parents=True)
    (target / "d/old").write_text("old")
    (target / "d/sub/deep/f").write_text("f")
    (target / "d/sub/lower").write_text("l")
    (target / "other").write_text("untouched")
    apply(
        target,
        E("d", "dir", mode=0o755),
        E("d/early", data=b"before the marker"),
        E("d/sub", "dir", mode=0o700),
        E("d/.wh..wh..opq"),
        E("d/late", data=b"after the marker"),
    )
    assert names(target / "d") == ["early", "late", "sub"]
    assert names(target / "d/sub") == []   # merged dir survives, its lower content does not
    assert stat.S_IMODE(os.stat(target / "d/sub").st_mode) == 0o700
    assert (target / "other").read_text() == "untouched"


def test_replacing_files_dirs_and_symlinks(target):
    (target / "f").write_text("file")
    (target / "g/inner").mkdir(parents=True)
    (target / "g/inner/x").write_text("x")
    (target / "real").mkdir()
    os.symlink("real", target / "s")
    os.symlink("real", target / "s2")
    apply(
        target,
        E("f", "dir", mode=0o751),
        E("f/x", data=b"now inside a dir"),
        E("g", data=b"now a file"),
        E("s", "dir"),              # a directory replaces the symlink, not its target
        E("s/y", data=b"y"),
        E("s2", data=b"file over symlink"),
    )
    assert stat.S_IMODE(os.stat(target / "f").st_mode) == 0o751
    assert (target / "f/x").read_bytes() == b"now inside a dir"
    assert (target / "g").read_bytes() == b"now a file"
    assert not os.path.islink(target / "s") and names(target / "s") == ["y"]
    assert (target / "s2").read_bytes() == b"file over symlink"
    assert names(target / "real") == []


def test_lower_symlinks_are_followed_within_the_root(target):
    # Debian's merged /usr: a later layer writing lib/... must land in usr/lib.
    (target / "usr/lib").mkdir(parents=True)
    os.symlink("usr/lib", target / "lib")
    apply(target, E("lib/libfoo.so", data=b"so"))
    assert (target / "usr/lib/libfoo.so").read_bytes() == b"so"
    assert os.path.islink(target / "lib")


def test_implicit_parents_and_root_entry(target):
    os.chmod(target, 0o755)
    apply(target, E("./", "dir", mode=0o700), E("x/y/z", data=b"z"), E("./x/y/w", data=b"w"))
    for d in ("x", "x/y"):
        st = os.stat(target / d)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 0, 0)
    # As Docker: a "." entry does not change the root's attributes.
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o755
    assert names(target / "x/y") == ["w", "z"]


def test_duplicates_last_wins_and_large_files(target):
    big = os.urandom(3 * (1 << 20) + 12345)
    size = apply(target, E("f", data=b"first"), E("f", data=big, mode=0o600))
    assert (target / "f").read_bytes() == big
    assert stat.S_IMODE(os.stat(target / "f").st_mode) == 0o600
    assert size == 5 + len(big)


def test_overlay_mode_makes_overlay_whiteouts(target):
    apply(
        target,
        E("etc", "dir", mode=0o755),
        E("etc/.wh.passwd", uid=3, gid=4),
        E("opt", "dir", mode=0o755),
        E("opt/.wh..wh..opq"),
        E("opt/new", data=b"n"),
        E("deep/er/.wh..wh..opq"),
        mode="overlay",
    )
    st = os.lstat(target / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and (st.st_uid, st.st_gid) == (3, 4)
    assert os.getxattr(target / "opt", "trusted.overlay.opaque") == b"y"
    assert names(target / "opt") == ["new"]
    assert os.getxattr(target / "deep/er", "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(target / "etc/.wh.passwd")


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda b: b],
                         ids=["gzip", "bzip2", "xz", "plain"])
def test_compressed_layers(target, compress):
    data = tar_bytes(E("a/b", data=b"hello" * 1000))
    assert apply_layer(io.BytesIO(compress(data)), target) == 5000
    assert (target / "a/b").read_bytes() == b"hello" * 1000


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_files(tmp_path, target, fmt):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.truncate(64 << 20)
        f.seek(1 << 20)
        f.write(b"data in the middle")
        f.seek((64 << 20) - 5)
        f.write(b"tail!")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", f"--format={fmt}", "--sparse", "-C", src, "-cf", archive, "sparse"], check=True)
    with open(archive, "rb") as f:
        assert apply_layer(f, target) == 64 << 20
    got = target / "sparse"
    assert os.path.getsize(got) == 64 << 20
    assert os.stat(got).st_blocks * 512 < 1 << 20   # the holes stayed holes
    with open(got, "rb") as f:
        f.seek(1 << 20)
        assert f.read(18) == b"data in the middle"
        f.seek((64 << 20) - 5)
        assert f.read() == b"tail!"
        f.seek(0)
        assert f.read(4096) == bytes(4096)


@pytest.mark.parametrize("data", [b"", bytes(1024), bytes(10240)], ids=["empty", "end-blocks", "record"])
def test_empty_layers(target, data):
    assert apply_layer(io.BytesIO(data), target) == 0
    assert names(target) == []


def test_parent_that_is_a_file(target):
    (target / "f").write_text("file")
    with pytest.raises(DataCorrupt, match='"f" is not a directory'):
        apply(target, E("f/x/y", data=b"y"))


@pytest.mark.parametrize("pax", [{"mtime": "nan"}, {"mtime": "1e30"}, {"mtime": "-1e30"},
                                 {"mtime": "1.5", "atime": "garbage"}])
def test_absurd_times_do_not_break_unpacking(target, pax):
    apply(target, E("f", data=b"x", pax=pax), E("d", "dir", pax=pax))
    assert (target / "f").read_bytes() == b"x"


def test_busybox_rootfs(busybox_tar, target):
    with open(busybox_tar, "rb") as f:
        size = apply_layer(f, target)
    assert size == os.path.getsize("/bin/busybox") + sum(
        len(p) for p in (b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
                         b"root:x:0:\nnogroup:x:65534:\n"))
    assert os.readlink(target / "bin/sh") == "busybox"
    assert stat.S_IMODE(os.stat(target / "tmp").st_mode) == 0o1777
    out = subprocess.run(["chroot", str(target), "/bin/sh", "-c", "echo ok"], capture_output=True, text=True)
    assert out.stdout == "ok\n"
