"""Resolving `--user name[:group]` against the image's passwd and group files."""

from __future__ import annotations

from dataclasses import dataclass

from berth.container.rootfs_files import read_file
from berth.errors import InvalidArgument


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


def _entries(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    return [line.split(":") for line in data.decode(errors="replace").splitlines()
            if line and not line.startswith("#")]


def resolve_user(rootfs, spec: str, extra_groups: list[str] = ()) -> ResolvedUser:
    """Docker's (runc's) user lookup: names from /etc/passwd, numbers as they are."""
    user, _, group = (spec or "").partition(":")
    passwd = _entries(read_file(rootfs, "/etc/passwd"))
    groups = _entries(read_file(rootfs, "/etc/group"))
    uid, gid, home, name = 0, 0, "/", "root"
    if user:
        match = next((p for p in passwd if len(p) >= 6 and (p[0] == user or p[2] == user)), None)
        if match:
            name, uid, gid, home = match[0], int(match[2]), int(match[3]), match[5] or "/"
        elif user.isdigit():
            uid, name = int(user), ""
        else:
            raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file")
    else:
        match = next((p for p in passwd if len(p) >= 6 and p[2] == "0"), None)
        if match:
            home = match[5] or "/"
    if group:
        g = next((g for g in groups if len(g) >= 3 and (g[0] == group or g[2] == group)), None)
        if g:
            gid = int(g[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
    extra = []
    if name:
        extra = [int(g[2]) for g in groups if len(g) >= 4 and name in g[3].split(",") and int(g[2]) != gid]
    for grp in extra_groups:
        g = next((g for g in groups if len(g) >= 3 and (g[0] == grp or g[2] == grp)), None)
        if g:
            extra.append(int(g[2]))
        elif grp.isdigit():
            extra.append(int(grp))
        else:
            raise InvalidArgument(f"unable to find group {grp}: no matching entries in group file")
    return ResolvedUser(uid, gid, tuple(dict.fromkeys(extra)), home)
