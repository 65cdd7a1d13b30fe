"""Compile an OCI `linux.seccomp` section to BPF with libseccomp; load it.

libseccomp is called through ctypes rather than the pyseccomp package:
pyseccomp locates the library with ctypes.util.find_library, which spawns
ldconfig (tens of milliseconds) on every `create` and `exec`; we need a
handful of functions of a C ABI stable since libseccomp 2.0, and runc
links the same library, so both runtimes compile profiles alike.

The compiled program is exported as raw BPF and cached under the runtime
root, keyed by the profile and the libseccomp version: Docker's profile
takes ~10 ms to compile and every container uses the same one.  Loading
is then one seccomp(2) call in the container's init.
"""

import ctypes
import errno as _errno
import json
import os
import zlib

from berth.runtime.builtin import linux

_lib = None

# enum scmp_filter_attr
_ATTR_CTL_NNP = 3

_NR_SCMP_ERROR = -1

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}

_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# seccomp(2) filter flags
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}


class SeccompError(Exception):
    pass


class _ArgCmp(ctypes.Structure):
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64))


def _library():
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2")
        except OSError as e:
            raise SeccompError(f"seccomp is requested but libseccomp.so.2 cannot be loaded: {e}")
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_release.restype = None
        lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        lib.seccomp_version.restype = ctypes.c_void_p
        lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp))
        _lib = lib
    return _lib


def _action(name: str, errno_ret, default_errno: int) -> int:
    base = _ACTIONS.get(name)
    if base is None:
        raise SeccompError(f"unsupported seccomp action {name!r}")
    if name == "SCMP_ACT_ERRNO":
        return base | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return base | ((default_errno if errno_ret is None else errno_ret) & 0xFFFF)
    return base


class Filter:
    """A libseccomp filter context built from an OCI seccomp section."""

    def __init__(self, config: dict):
        lib = _library()
        default_errno = config.get("defaultErrnoRet")
        default = _action(config["defaultAction"],
                          default_errno if default_errno is not None else _errno.EPERM,
                          _errno.EPERM)
        self._ctx = lib.seccomp_init(default)
        if not self._ctx:
            raise SeccompError("seccomp_init failed")
        try:
            self._build(lib, config, default)
        except BaseException:
            lib.seccomp_release(self._ctx)
            self._ctx = None
            raise

    def _build(self, lib, config: dict, default: int) -> None:
        # no_new_privs is the runtime's decision (process.noNewPrivileges), not libseccomp's.
        lib.seccomp_attr_set(self._ctx, _ATTR_CTL_NNP, 0)
        for arch in config.get("architectures") or ():
            token = lib.seccomp_arch_resolve_name(arch.lower().removeprefix("scmp_arch_").encode())
            if token == 0:
                raise SeccompError(f"unknown seccomp architecture {arch!r}")
            rc = lib.seccomp_arch_add(self._ctx, token)
            if rc < 0 and rc != -_errno.EEXIST:
                raise SeccompError(f"adding seccomp architecture {arch}: {_strerror(-rc)}")
        for rule in config.get("syscalls") or ():
            action = _action(rule["action"], rule.get("errnoRet"), _errno.EPERM)
            if action == default:
                continue  # libseccomp rejects rules that repeat the default action
            conditions = [
                (a["index"], _OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                for a in rule.get("args") or ()
            ]
            for name in rule.get("names") or ():
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    continue  # unknown to this libseccomp: runc skips these too
                self._add(lib, action, nr, name, conditions)

    def _add(self, lib, action: int, nr: int, name: str, conditions: list) -> None:
        indexes = [c[0] for c in conditions]
        if len(set(indexes)) == len(indexes):
            groups = [conditions]
        else:
            # libseccomp cannot AND two comparisons of the same argument; like
            # runc, such conditions become alternative rules.
            groups = [[c] for c in conditions]
        for group in groups:
            array = (_ArgCmp * max(1, len(group)))()
            for i, (index, op, a, b) in enumerate(group):
                array[i] = _ArgCmp(index, op, a & 0xFFFFFFFFFFFFFFFF, b & 0xFFFFFFFFFFFFFFFF)
            rc = lib.seccomp_rule_add_array(self._ctx, action, nr, len(group), array)
            if rc < 0:
                raise SeccompError(f"adding seccomp rule for syscall {name}: {_strerror(-rc)}")

    def export(self) -> bytes:
        """The BPF program (struct sock_filter[]) libseccomp would load."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = _library().seccomp_export_bpf(self._ctx, fd)
            if rc < 0:
                raise SeccompError(f"exporting seccomp filter: {_strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._ctx:
            _library().seccomp_release(self._ctx)
            self._ctx = None


def _strerror(code: int) -> str:
    try:
        return os.strerror(code)
    except ValueError:
        return f"error {code}"


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class Program:
    """A BPF seccomp program and its load flags, ready for `load()` in the
    process that will exec (built before fork, since the container's root
    has no libseccomp)."""

    def __init__(self, bpf: bytes, flags: int = 0):
        if not bpf or len(bpf) % 8:
            raise SeccompError("malformed seccomp program")
        self.bpf = bpf
        self.flags = flags
        self._buffer = ctypes.create_string_buffer(bpf, len(bpf))
        self._fprog = _SockFprog(len(bpf) // 8, ctypes.addressof(self._buffer))

    def load(self) -> None:
        try:
            linux.seccomp_set_filter(ctypes.addressof(self._fprog), self.flags)
        except OSError as e:
            raise SeccompError(f"loading seccomp filter: {e.strerror}") from None


def _flags(config: dict) -> int:
    value = 0
    for flag in config.get("flags") or ():
        bit = _FLAGS.get(flag)
        if bit is None:
            raise SeccompError(f"unsupported seccomp flag {flag!r}")
        value |= bit
    return value


def _version() -> str:
    class _Version(ctypes.Structure):
        _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))
    v = _Version.from_address(_library().seccomp_version())
    return f"{v.major}.{v.minor}.{v.micro}"


def compile_program(config: dict, cache_dir: str | None = None) -> Program:
    """The program for `config`, from the cache when it was compiled before.

    A cache entry holds the canonical profile it was compiled from and is
    used only when that matches exactly, so the short (CRC) file name is a
    lookup aid, never a trust decision.
    """
    flags = _flags(config)
    path = None
    if cache_dir:
        canonical = json.dumps([_version(), os.uname().machine, config], sort_keys=True,
                               separators=(",", ":")).encode()
        path = os.path.join(cache_dir, f"{zlib.crc32(canonical):08x}-{len(canonical)}.bpf")
        try:
            with open(path, "rb") as f:
                stored, _, bpf = f.read().partition(b"\0")
            if stored == canonical:
                return Program(bpf, flags)
        except (FileNotFoundError, SeccompError):
            pass
    flt = Filter(config)
    try:
        bpf = flt.export()
    finally:
        flt.release()
    if path:
        os.makedirs(cache_dir, 0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(canonical + b"\0" + bpf)
        os.rename(tmp, path)
    return Program(bpf, flags)
