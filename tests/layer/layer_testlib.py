"""Helpers for the layer tests: tar members described in one line, tree snapshots."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field


@dataclass
class E:
    """One tar member to write; `kind` is file, dir, symlink, link, char, block, fifo or a raw tar type byte."""

    name: str
    kind: str | bytes = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = 1_600_000_000
    link: str = ""
    dev: tuple[int, int] = (0, 0)
    pax: dict[str, str] = field(default_factory=dict)
    xattrs: dict[str, bytes] = field(default_factory=dict)


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "link": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}


def tar_bytes(*entries: E, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = _TYPES[e.kind] if isinstance(e.kind, str) else e.kind
            ti.mode, ti.uid, ti.gid, ti.mtime = e.mode, e.uid, e.gid, e.mtime
            ti.linkname = e.link
            ti.devmajor, ti.devminor = e.dev
            ti.pax_headers = dict(e.pax)
            for k, v in e.xattrs.items():
                ti.pax_headers[f"SCHILY.xattr.{k}"] = v.decode("utf-8", "surrogateescape")
            if ti.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) or isinstance(e.kind, bytes):
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def snapshot(root: str | os.PathLike, *, mtimes: bool = True) -> dict[str, tuple]:
    """Everything observable about a tree, by relative path (root excluded)."""
    root = os.fspath(root)
    out: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            try:
                keys = os.listxattr(path, follow_symlinks=False)
            except OSError:
                keys = []
            xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                  for k in keys if not k.startswith("trusted.overlay.")))
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                detail = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                detail = None
            mtime = st.st_mtime_ns // 1_000_000_000 if mtimes and not stat.S_ISLNK(st.st_mode) else None
            out[rel] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                        detail, xattrs, mtime)
    for group in inodes.values():
        if len(group) < 2:
            continue  # the other names are outside the tree (e.g. in a hidden lower layer)
        for rel in group:
            out[rel] = out[rel] + (tuple(sorted(group)),)
    return out
