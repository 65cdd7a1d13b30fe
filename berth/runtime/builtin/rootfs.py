"""The container's filesystem view, built inside its fresh mount namespace.

Order (runc's): propagation, bind the rootfs onto itself, the spec's mounts
in order, /dev nodes and links, pivot_root; later, once /proc is the
container's, the console, read-only remounts, sysctls, then the readonly
and masked paths.
"""

import errno
import os
import stat

from berth.runtime.builtin import linux
from berth.runtime.builtin.cgroups import hierarchies

_FLAGS = {
    # option: (set, clear)
    "async": (0, linux.MS_SYNCHRONOUS),
    "atime": (0, linux.MS_NOATIME),
    "bind": (linux.MS_BIND, 0),
    "defaults": (0, 0),
    "dev": (0, linux.MS_NODEV),
    "diratime": (0, linux.MS_NODIRATIME),
    "dirsync": (linux.MS_DIRSYNC, 0),
    "exec": (0, linux.MS_NOEXEC),
    "mand": (linux.MS_MANDLOCK, 0),
    "noatime": (linux.MS_NOATIME, 0),
    "nodev": (linux.MS_NODEV, 0),
    "nodiratime": (linux.MS_NODIRATIME, 0),
    "noexec": (linux.MS_NOEXEC, 0),
    "nomand": (0, linux.MS_MANDLOCK),
    "norelatime": (0, linux.MS_RELATIME),
    "nostrictatime": (0, linux.MS_STRICTATIME),
    "nosuid": (linux.MS_NOSUID, 0),
    "nosymfollow": (linux.MS_NOSYMFOLLOW, 0),
    "rbind": (linux.MS_BIND | linux.MS_REC, 0),
    "relatime": (linux.MS_RELATIME, 0),
    "remount": (linux.MS_REMOUNT, 0),
    "ro": (linux.MS_RDONLY, 0),
    "rw": (0, linux.MS_RDONLY),
    "strictatime": (linux.MS_STRICTATIME, 0),
    "suid": (0, linux.MS_NOSUID),
    "sync": (linux.MS_SYNCHRONOUS, 0),
    "lazytime": (linux.MS_LAZYTIME, 0),
    "nolazytime": (0, linux.MS_LAZYTIME),
}
PROPAGATION = {
    "private": linux.MS_PRIVATE,
    "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED,
    "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE,
    "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE,
    "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
# Options runc understands that are neither flags nor filesystem data.
_IGNORED = {"tmpcopyup", "rro", "rrw", "idmap", "ridmap"}

# Flags a bind remount must keep, by statvfs bit (ST_* == MS_* for these).
_KEEP_ON_REMOUNT = (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_NOATIME
                    | linux.MS_NODIRATIME | linux.MS_RELATIME)

# runc's default device nodes.
DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3),
    ("/dev/zero", "c", 1, 5),
    ("/dev/full", "c", 1, 7),
    ("/dev/random", "c", 1, 8),
    ("/dev/urandom", "c", 1, 9),
    ("/dev/tty", "c", 5, 0),
)


class RootfsError(Exception):
    pass


def parse_options(options) -> tuple[int, int, list[int], str]:
    """(flags, cleared flags, propagation flags, data) of a mount's options."""
    flags = 0
    cleared = 0
    propagation = []
    data = []
    for opt in options or ():
        if opt in _FLAGS:
            set_, clear = _FLAGS[opt]
            flags = (flags | set_) & ~clear
            cleared = (cleared | clear) & ~set_
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _IGNORED:
            continue
        else:
            data.append(opt)
    return flags, cleared, propagation, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """`unsafe` resolved inside `root` as if root were "/": symlinks and ".."
    are followed but never lead out of it (filepath-securejoin's rule)."""
    pending = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise RootfsError(f"too many levels of symbolic links resolving {unsafe}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkdir_all(path: str, mode: int = 0o755) -> None:
    try:
        os.makedirs(path, mode, exist_ok=True)
    except FileExistsError:
        if not os.path.isdir(path):
            raise RootfsError(f"mount destination {path} exists and is not a directory") from None


def _make_target(dest: str, source_is_dir: bool) -> None:
    if source_is_dir:
        _mkdir_all(dest)
        return
    _mkdir_all(os.path.dirname(dest))
    if not os.path.lexists(dest):
        fd = os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755)
        os.close(fd)


def _mountpoint_of(path: str) -> tuple[str, str]:
    """(mount point, optional fields) of the mount containing `path`."""
    best, best_opts = "/", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left = line.partition(" - ")[0].split()
            point = left[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, best_opts = point, " ".join(left[6:])
    return best, best_opts


class Rootfs:
    """Set up `rootfs` per the OCI config, in the calling (new) mount namespace."""

    def __init__(self, config: dict, rootfs: str, cgroup_paths: dict[str, str], *,
                 bundle: str, cgroupns: bool, userns: bool):
        self.config = config
        self.bundle = bundle
        self.linux = config.get("linux") or {}
        self.rootfs = rootfs
        self.cgroup_paths = cgroup_paths
        self.cgroupns = cgroupns
        self.userns = userns
        self.mounts = config.get("mounts") or ()

    # --- before pivot_root

    def prepare(self) -> None:
        propagation = self.linux.get("rootfsPropagation")
        flag = PROPAGATION.get(propagation, linux.MS_SLAVE | linux.MS_REC) if propagation \
            else linux.MS_SLAVE | linux.MS_REC
        linux.mount(None, "/", None, flag)
        # pivot_root refuses a new root whose parent mount is shared.
        point, optional = _mountpoint_of(self.rootfs)
        if "shared:" in optional:
            linux.mount(None, point, None, linux.MS_PRIVATE)
        linux.mount(self.rootfs, self.rootfs, "bind", linux.MS_BIND | linux.MS_REC)
        for m in self.mounts:
            self._mount(m)
        if self._needs_dev():
            self._create_devices()
            self._dev_links()

    def _needs_dev(self) -> bool:
        return not any(m.get("destination") == "/dev" and
                       (m.get("type") == "bind" or "bind" in (m.get("options") or ())
                        or "rbind" in (m.get("options") or ()))
                       for m in self.mounts)

    def _mount(self, m: dict) -> None:
        dest_rel = m.get("destination") or ""
        if not dest_rel.startswith("/"):
            dest_rel = "/" + dest_rel
        dest = secure_join(self.rootfs, dest_rel)
        kind = m.get("type") or ""
        source = m.get("source") or kind
        flags, _cleared, propagation, data = parse_options(m.get("options"))
        is_bind = kind == "bind" or flags & linux.MS_BIND
        try:
            if is_bind:
                self._bind(os.path.join(self.bundle, source), dest, flags, data)
            elif kind == "cgroup":
                self._cgroup(dest, flags)
            elif kind == "cgroup2":
                _mkdir_all(dest)
                linux.mount(source, dest, "cgroup2", flags, data or None)
            else:
                if kind in ("proc", "sysfs") and os.path.lexists(dest) and not os.path.isdir(dest):
                    raise RootfsError(f"{dest_rel} cannot be mounted because it is not a directory")
                if kind == "tmpfs":
                    self._tmpfs(source, dest, flags, data)
                else:
                    _mkdir_all(dest)
                    linux.mount(source, dest, kind, flags, data or None)
            for p in propagation:
                linux.mount(None, dest, None, p)
        except OSError as e:
            raise RootfsError(f"error mounting {source!r} to rootfs at {dest_rel!r}: "
                              f"{e.strerror or e}") from None

    def _bind(self, source: str, dest: str, flags: int, data: str) -> None:
        st = os.stat(source)
        _make_target(dest, stat.S_ISDIR(st.st_mode))
        linux.mount(source, dest, "bind", flags & (linux.MS_BIND | linux.MS_REC))
        extra = flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT)
        if extra:
            keep = os.statvfs(dest).f_flag & _KEEP_ON_REMOUNT if self.userns else 0
            linux.mount(None, dest, None,
                        linux.MS_BIND | linux.MS_REMOUNT | extra | keep)

    def _tmpfs(self, source: str, dest: str, flags: int, data: str) -> None:
        mode_data = data
        try:
            st = os.stat(dest)
            # runc: the tmpfs takes the directory's mode unless data says otherwise.
            mode_data = f"mode={stat.S_IMODE(st.st_mode):04o}" + ("," + data if data else "")
        except FileNotFoundError:
            _mkdir_all(dest)
        if flags & linux.MS_RDONLY:
            linux.mount(source, dest, "tmpfs", flags & ~linux.MS_RDONLY, mode_data or None)
            linux.mount(None, dest, None, flags | linux.MS_REMOUNT)
        else:
            linux.mount(source, dest, "tmpfs", flags, mode_data or None)

    def _cgroup(self, dest: str, flags: int) -> None:
        v1, v2 = hierarchies()
        if not v1 and v2 is not None:
            _mkdir_all(dest)
            if self.cgroupns:
                linux.mount("cgroup2", dest, "cgroup2", flags)
            else:
                linux.mount(self.cgroup_paths[""], dest, "bind", linux.MS_BIND)
                linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | flags)
            return
        # v1: a tmpfs holding one read-only bind of the container's own
        # directory per hierarchy, so the container sees its limits only.
        _mkdir_all(dest)
        linux.mount("tmpfs", dest, "tmpfs", flags & ~linux.MS_RDONLY, "mode=755")
        for key, (mountpoint, _root) in v1.items():
            name = os.path.basename(mountpoint)
            source = self.cgroup_paths.get(key) or mountpoint
            target = os.path.join(dest, name)
            os.mkdir(target, 0o755)
            linux.mount(source, target, "bind", linux.MS_BIND | linux.MS_REC)
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | flags)
            controllers = key.split(",")
            if len(controllers) > 1:
                for ctrl in controllers:
                    link = os.path.join(dest, ctrl)
                    if not os.path.lexists(link):
                        os.symlink(name, link)
        if flags & linux.MS_RDONLY:
            linux.mount(None, dest, None, linux.MS_REMOUNT | flags)

    def _create_devices(self) -> None:
        wanted = [{"path": p, "type": t, "major": ma, "minor": mi, "fileMode": 0o666,
                   "uid": 0, "gid": 0} for p, t, ma, mi in DEFAULT_DEVICES]
        seen = {d["path"] for d in wanted}
        for d in self.linux.get("devices") or ():
            if d["path"] in seen:
                wanted = [w for w in wanted if w["path"] != d["path"]]
            wanted.append(d)
            seen.add(d["path"])
        old_umask = os.umask(0)
        try:
            for d in wanted:
                self._device(d)
        finally:
            os.umask(old_umask)

    def _device(self, d: dict) -> None:
        dest = secure_join(self.rootfs, d["path"])
        _mkdir_all(os.path.dirname(dest), 0o755)
        kind = d["type"]
        if self.userns:
            # mknod is refused in a user namespace: bind the host's node instead.
            _make_target(dest, False)
            linux.mount(d["path"], dest, "bind", linux.MS_BIND)
            return
        mode = d.get("fileMode")
        mode = 0o666 if mode is None else mode
        fmt = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(kind)
        if fmt is None:
            raise RootfsError(f"unknown device type {kind!r} for {d['path']}")
        if os.path.lexists(dest):
            os.unlink(dest)
        try:
            os.mknod(dest, fmt | (mode & 0o7777), os.makedev(d.get("major", 0), d.get("minor", 0)))
        except OSError as e:
            raise RootfsError(f"mknod {d['path']}: {e.strerror}") from None
        os.chown(dest, d.get("uid") or 0, d.get("gid") or 0)

    def _dev_links(self) -> None:
        links = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                 ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr")]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        for target, link in links:
            path = os.path.join(self.rootfs, link.lstrip("/"))
            try:
                os.symlink(target, path)
            except FileExistsError:
                pass
        ptmx = os.path.join(self.rootfs, "dev/ptmx")
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)

    def pivot(self, no_pivot: bool = False) -> None:
        if no_pivot:
            os.chdir(self.rootfs)
            linux.mount(self.rootfs, "/", None, linux.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            # pivot_root(".", ".") stacks the old root on top of the new one;
            # detaching it leaves the new root alone, with no directory to hide it in.
            linux.pivot_root(".", ".")
            os.fchdir(old_root)
            linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
            linux.umount2(".", linux.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(old_root)
            os.close(new_root)

    # --- after pivot_root

    def finalize(self) -> None:
        for m in self.mounts:
            if m.get("destination") == "/dev" and "ro" in (m.get("options") or ()):
                remount_readonly("/dev")
        if (self.config.get("root") or {}).get("readonly"):
            remount_readonly("/")


def remount_readonly(path: str) -> None:
    keep = os.statvfs(path).f_flag & _KEEP_ON_REMOUNT
    linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | keep)


def readonly_path(path: str) -> None:
    try:
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
    except FileNotFoundError:
        return
    keep = os.statvfs(path).f_flag & _KEEP_ON_REMOUNT
    linux.mount(None, path, None,
                linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC | keep)


def mask_path(path: str) -> None:
    try:
        linux.mount("/dev/null", path, None, linux.MS_BIND)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        if e.errno != errno.ENOTDIR:
            raise
        linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
