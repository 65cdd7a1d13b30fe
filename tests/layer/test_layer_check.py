"""check_layer_stream: one pass, every byte consumed, fast on a real tree."""

import gzip
import hashlib
import io
import os
import tarfile
import time

import pytest

from berth.errors import DataCorrupt, Unavailable
from berth.layer.safety import check_layer_stream
from berth.layer.stream import Compression
from layer_testlib import E, tar_bytes


class Tee:
    """A non-seekable source that hashes what is read from it, in small reads."""

    def __init__(self, data: bytes, max_read: int = 7919):
        self._f = io.BytesIO(data)
        self._max = max_read
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, n=-1):
        data = self._f.read(min(n, self._max) if n and n > 0 else self._max)
        self.sha.update(data)
        self.count += len(data)
        return data


LAYER = tar_bytes(
    E("bin", "dir", mode=0o755),
    E("bin/sh", data=b"\x7fELF" + bytes(5000), mode=0o755),
    E("bin/ash", "link", link="bin/sh"),
    E("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
    E("etc/mtab", "symlink", link="/proc/self/mounts"),
    E("dev/null", "char", dev=(1, 3)),
    E("run/fifo", "fifo"),
    E("var/.wh.cache"),
    E("opt/.wh..wh..opq"),
    E("x" * 200 + "/long-name", data=b"pax path"),
    E("naïve-ünïcode", data=b"u"),
)


def test_stats_and_every_byte_consumed():
    padded = LAYER + bytes(4096)     # end-of-archive padding beyond the record
    tee = Tee(padded)
    stats = check_layer_stream(tee)
    assert stats.members == 11
    assert stats.file_bytes == 5004 + 26 + 8 + 1
    assert stats.compression is Compression.NONE
    assert tee.count == len(padded)
    assert tee.sha.hexdigest() == hashlib.sha256(padded).hexdigest()
    assert tee.read(1) == b""


def test_compressed_input_consumed_to_the_end():
    blob = gzip.compress(LAYER)
    tee = Tee(blob)
    stats = check_layer_stream(tee)
    assert stats.compression is Compression.GZIP and stats.members == 11
    assert tee.count == len(blob)


def test_tar_without_end_blocks_is_accepted_like_go():
    # Go's archive/tar, and so Docker, takes EOF between members as the end.
    data = tar_bytes(E("a", data=b"1"))[:1024]
    tee = Tee(data)
    assert check_layer_stream(tee).members == 1
    assert tee.count == 1024


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_formats(fmt):
    data = tar_bytes(E("a", "dir"), E("a/" + "n" * 150, data=b"q"), E("b", "symlink", link="a"),
                     fmt=fmt) if fmt != tarfile.USTAR_FORMAT else tar_bytes(E("a", data=b"q"), fmt=fmt)
    assert check_layer_stream(io.BytesIO(data)).members >= 1


@pytest.fixture(scope="module")
def usr_tar(tmp_path_factory):
    """A ~200 MB tar of /usr, like a Debian rootfs layer (bounded in size and count)."""
    path = tmp_path_factory.mktemp("usr") / "usr.tar"
    budget, members = 200 << 20, 0
    def as_docker_writes_it(ti):
        ti.mtime = int(ti.mtime)  # whole seconds, so no PAX record per member
        ti.uname = ti.gname = ""
        return ti

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk("/usr"):
            dirnames.sort()
            tf.add(dirpath, recursive=False, filter=as_docker_writes_it)
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                    if st.st_size > 4 << 20:
                        continue  # keep the mix of a rootfs: mostly small files
                    tf.add(full, recursive=False, filter=as_docker_writes_it)
                except OSError:
                    continue
                budget -= st.st_size if os.path.isfile(full) and not os.path.islink(full) else 0
                members += 1
            if budget <= 0 or members >= 15_000:
                break
    return path


def test_throughput_on_usr(usr_tar):
    size = os.path.getsize(usr_tar)
    with open(usr_tar, "rb") as f:
        start = time.perf_counter()
        while f.read(1 << 20):
            pass
        read_only = time.perf_counter() - start
    with open(usr_tar, "rb", buffering=0) as f:
        start = time.perf_counter()
        stats = check_layer_stream(f)
        checked = time.perf_counter() - start
    print(f"\ncheck_layer_stream: {size / 1e6:.0f} MB, {stats.members} members in {checked:.3f} s "
          f"({size / checked / 1e6:.0f} MB/s; plain read {read_only:.3f} s, "
          f"overhead {checked - read_only:.3f} s)")
    assert stats.members > 1000


class Failing:
    """A source whose connection drops after `good` bytes."""

    def __init__(self, data: bytes, good: int):
        self._f = io.BytesIO(data[:good])

    def read(self, n=-1):
        data = self._f.read(n)
        if not data:
            raise ConnectionResetError("peer went away")
        return data


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress], ids=["plain", "gzip"])
def test_source_errors_are_not_reported_as_corruption(compress):
    blob = compress(tar_bytes(E("f", data=os.urandom(300_000))))
    with pytest.raises(ConnectionResetError):
        check_layer_stream(Failing(blob, len(blob) // 2))


def test_zstd_needs_its_package():
    layer = tar_bytes(E("f", data=b"z"))
    try:
        import zstandard
    except ImportError:
        with pytest.raises(Unavailable, match="zstandard"):
            check_layer_stream(io.BytesIO(b"\x28\xb5\x2f\xfd" + bytes(16)))
        return
    blob = zstandard.ZstdCompressor().compress(layer)
    assert check_layer_stream(io.BytesIO(blob)).compression is Compression.ZSTD
    frames = zstandard.ZstdCompressor().compress(layer[:700]) + zstandard.ZstdCompressor().compress(layer[700:])
    assert check_layer_stream(io.BytesIO(frames)).members == 1
    with pytest.raises(DataCorrupt, match="zstd"):
        check_layer_stream(io.BytesIO(blob[:-4]))
