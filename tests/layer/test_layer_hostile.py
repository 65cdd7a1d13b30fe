"""Hostile and broken layer tars: refused at ingestion and at unpacking, nothing written outside."""

import gzip
import io
import lzma
import os
import random
import tarfile
import uuid

import pytest

from berth.errors import DataCorrupt
from berth.layer.apply import apply_layer
from berth.layer.safety import check_layer_stream
from layer_testlib import E, tar_bytes

SENTINEL = f"berth-escape-{uuid.uuid4().hex}"
_VALID = tar_bytes(E("a", "dir", mode=0o755), E("a/big", data=b"x" * 100_000), E("a/small", data=b"y"))


def _cases(outside: str):
    """(tar bytes, a fragment the message must contain) per hostile archive.

    `outside` is a directory next to the target that an escape would hit.
    """
    rel_outside = outside.lstrip("/")
    return {
        "dotdot": (tar_bytes(E("../escaped")), '"../escaped"'),
        "dotdot-inner": (tar_bytes(E("a", "dir"), E("a/../../escaped")), '"a/../../escaped"'),
        "absolute": (tar_bytes(E(f"{outside}/abs-escaped")), "absolute path"),
        "absolute-etc": (tar_bytes(E(f"/etc/{SENTINEL}")), f'"/etc/{SENTINEL}"'),
        "hardlink-dotdot": (tar_bytes(E("h", "link", link="../../etc/passwd")), '"../../etc/passwd"'),
        "hardlink-absolute": (tar_bytes(E("h", "link", link="/etc/passwd")), '"/etc/passwd"'),
        "symlink-root-then-write": (
            tar_bytes(E("evil", "symlink", link="/"), E(f"evil/{rel_outside}/escaped")),
            'through symlink "evil"'),
        "symlink-root-then-write-etc": (
            tar_bytes(E("evil", "symlink", link="/"), E(f"evil/etc/{SENTINEL}")),
            'through symlink "evil"'),
        "symlink-outside-then-write": (
            tar_bytes(E("evil", "symlink", link=outside), E("evil/escaped")),
            '"evil/escaped"'),
        "symlink-dir-then-file": (
            tar_bytes(E("sub", "dir"), E("d", "symlink", link="sub"), E("d/file")),
            '"d/file" would be written through symlink "d"'),
        "nested-symlink-then-write": (
            tar_bytes(E("a", "dir"), E("a/evil", "symlink", link="/"), E(f"a/evil/{rel_outside}/escaped")),
            'symlink "a/evil"'),
        "hardlink-to-symlink-then-write": (
            tar_bytes(E("s", "symlink", link="/"), E("h", "link", link="s"), E(f"h/{rel_outside}/escaped")),
            'symlink "h"'),
        "symlink-relative-escape": (tar_bytes(E("a", "dir"), E("a/up", "symlink", link="../../..")),
                                    '"a/up" is a symlink to "../../.."'),
        "hardlink-through-symlink": (
            tar_bytes(E("evil", "symlink", link="/etc"), E("h", "link", link="evil/passwd")),
            'hard link through symlink "evil"'),
        "whiteout-through-symlink": (
            tar_bytes(E("evil", "symlink", link=outside), E("evil/.wh.file")),
            '"evil/.wh.file"'),
        "opaque-through-symlink": (
            tar_bytes(E("evil", "symlink", link=outside), E("evil/.wh..wh..opq")),
            '"evil/.wh..wh..opq"'),
        "whiteout-of-dot": (tar_bytes(E("a", "dir"), E("a/.wh..")), '"a/.wh.."'),
        "root-as-file": (tar_bytes(E("./")), '"./"'),
        "negative-uid": (tar_bytes(E("f", uid=-5)), '"f" has invalid owner -5:0'),
        "huge-gid": (tar_bytes(E("f", gid=1 << 40)), "invalid owner"),
        "whiteout-huge-uid": (tar_bytes(E(".wh.f", uid=1 << 40)), "invalid owner"),
        "huge-device": (tar_bytes(E("d", "char", dev=(1 << 33, 1)), fmt=tarfile.GNU_FORMAT), "invalid device number"),
        "contiguous-type": (tar_bytes(E("c", b"7", data=b"x")), "unsupported tar type"),
        "volume-type": (tar_bytes(E("v", b"V")), "unsupported tar type"),
        "truncated-data": (_VALID[:512 * 6], 'unexpected end of data in member "a/big"'),
        "truncated-header": (_VALID[:512 + 100], "unexpected end of data"),
        "truncated-pax": (tar_bytes(E("x" * 300, data=b"z"))[:700], "unexpected end of data"),
        "garbage": (random.Random(0).randbytes(8192), "invalid tar header"),
        "text": (b"this is not a tar archive\n" * 100, "invalid tar header"),
        "short-garbage": (b"hello", "unexpected end of data"),
        "garbage-after-members": (tar_bytes(E("f", data=b"1"))[:1024] + b"\xff" * 4096,
                                  'invalid tar header (bad checksum) after member "f"'),
        "garbage-after-end-block": (tar_bytes(E("f", data=b"1"))[:1536] + b"\xff" * 512,
                                    "after end-of-archive block"),
        "gzip-garbage": (b"\x1f\x8b\x08\x00" + random.Random(1).randbytes(4096), "gzip"),
        "gzip-truncated": (gzip.compress(_VALID)[:-50], "gzip"),
        "gzip-trailing-garbage": (gzip.compress(_VALID) + b"not gzip", "gzip"),
        "xz-garbage": (b"\xfd7zXZ\x00" + random.Random(2).randbytes(1024), "xz"),
        "xz-truncated": (lzma.compress(_VALID)[:-30], "xz"),
        "gzip-of-hostile": (gzip.compress(tar_bytes(E("../escaped"))), '"../escaped"'),
    }


CASE_IDS = list(_cases("/x"))


def _outside_state(sandbox):
    """Every path beside the target, with its content, plus the host sentinels."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(sandbox.parent):
        if dirpath == str(sandbox.parent):
            dirnames.remove(sandbox.name)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            state[path] = open(path, "rb").read() if os.path.isfile(path) else None
    for probe in (f"/etc/{SENTINEL}", f"/{SENTINEL}"):
        state[probe] = os.path.lexists(probe)
    return state


def _outside_dir(sandbox):
    return str(sandbox.parent / "canary")


@pytest.mark.parametrize("case", CASE_IDS)
def test_check_refuses(case, sandbox):
    data, fragment = _cases(_outside_dir(sandbox))[case]
    with pytest.raises(DataCorrupt) as err:
        check_layer_stream(io.BytesIO(data))
    message = str(err.value)
    assert "\n" not in message
    assert fragment in message, message


@pytest.mark.parametrize("mode", ["delete", "overlay"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_apply_refuses_and_writes_nothing_outside(case, mode, sandbox):
    data, fragment = _cases(_outside_dir(sandbox))[case]
    before = _outside_state(sandbox)
    with pytest.raises(DataCorrupt) as err:
        apply_layer(io.BytesIO(data), sandbox, whiteout_mode=mode)
    assert "\n" not in str(err.value)
    assert fragment in str(err.value)
    assert _outside_state(sandbox) == before


def _attack_lower(sandbox, outside):
    """Content a lower layer could have left in the target."""
    os.symlink(outside, sandbox / "evil")
    os.symlink("/", sandbox / "root")
    os.symlink("../../../../../../..", sandbox / "up")
    os.symlink("/etc", sandbox / "etc")
    os.symlink("/etc/passwd", sandbox / "passwd")


def test_lower_symlinks_resolve_inside_the_target(sandbox):
    # Symlinks left by earlier layers are followed, as Docker does inside its
    # chroot, but `/` and `..` stop at the target.
    outside = _outside_dir(sandbox)
    _attack_lower(sandbox, outside)
    before = _outside_state(sandbox)
    layer = tar_bytes(
        E("evil/escaped", data=b"1"),
        E("root/rooted", data=b"2"),
        E("up/climbed", data=b"3"),
        E("evil/.wh.file"),
        E("evil/.wh..wh..opq"),
        E("passwd-link", "link", link="passwd"),
    )
    apply_layer(io.BytesIO(layer), sandbox)
    assert _outside_state(sandbox) == before
    assert (sandbox / outside.lstrip("/") / "escaped").read_bytes() == b"1"
    assert (sandbox / "rooted").read_bytes() == b"2"
    assert (sandbox / "climbed").read_bytes() == b"3"
    # A hard link to a symlink links the symlink, not the host file.
    assert os.readlink(sandbox / "passwd-link") == "/etc/passwd"
    assert os.lstat(sandbox / "passwd-link").st_ino == os.lstat(sandbox / "passwd").st_ino


def test_hardlink_through_lower_symlink_is_refused(sandbox):
    _attack_lower(sandbox, _outside_dir(sandbox))
    nlink = os.stat("/etc/passwd").st_nlink
    with pytest.raises(DataCorrupt, match='"h" is a hard link to "etc/passwd", which does not exist'):
        apply_layer(io.BytesIO(tar_bytes(E("h", "link", link="etc/passwd"))), sandbox)
    assert os.stat("/etc/passwd").st_nlink == nlink
    assert not os.path.lexists(sandbox / "h")


def test_whiteout_through_lower_symlink_stays_inside(sandbox):
    outside = _outside_dir(sandbox)
    _attack_lower(sandbox, outside)
    before = _outside_state(sandbox)
    apply_layer(io.BytesIO(tar_bytes(E("evil/.wh.file"), E("root/.wh.etc"))), sandbox)
    assert _outside_state(sandbox) == before
    assert os.path.exists("/etc/passwd")
    # "root" resolves to the target itself, so its "etc" — the lower symlink — is what went.
    assert not os.path.lexists(sandbox / "etc")
