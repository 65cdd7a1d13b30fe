"""Device access control on cgroup v2: an eBPF program attached to the
container's cgroup (BPF_PROG_TYPE_CGROUP_DEVICE), as runc's devicefilter.

cgroup v2 has no devices.allow/deny files; the kernel asks an attached
program instead.  The OCI rules (plus runc's implicit ones) are compiled
with v1 semantics: a rule for every device ("a", any major/minor, all of
rwm) resets the list and sets the default; later rules win over earlier
ones.  The program therefore checks the remaining rules last-to-first and
falls back to the default.
"""

import ctypes
import os
import struct

_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2

# struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC = {"m": 1, "r": 2, "w": 4}

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


class DeviceFilterError(Exception):
    pass


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    if imm >= 1 << 31:
        imm -= 1 << 32  # the immediate is a signed 32-bit field
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_LDXW = 0x61      # dst = *(u32 *)(src + off)
_AND32_K = 0x54   # dst &= imm
_RSH32_K = 0x74   # dst >>= imm
_MOV32_X = 0xBC   # dst = src
_MOV64_K = 0xB7   # dst = imm
_JNE_K = 0x55     # if dst != imm: pc += off
_EXIT = 0x95


def _normalize(rules) -> tuple[bool, list[dict]]:
    """(default allow?, the rules after the last reset), in order."""
    default = True  # a cgroup without rules allows everything
    kept: list[dict] = []
    for rule in rules:
        kind = rule.get("type") or "a"
        access = rule.get("access") or "rwm"
        major, minor = rule.get("major"), rule.get("minor")
        wildcard = (major is None or major < 0) and (minor is None or minor < 0)
        if kind == "a" and wildcard and set(access) >= set("rwm"):
            default = bool(rule.get("allow"))
            kept = []
            continue
        kept.append(rule)
    return default, kept


def compile_rules(rules) -> bytes:
    """The BPF program for OCI device rules."""
    default, kept = _normalize(rules)
    blocks = []
    for rule in reversed(kept):
        checks = []  # (register, value) pairs that must all hold
        kind = rule.get("type") or "a"
        if kind in ("b", "c"):
            checks.append((2, _DEV_BLOCK if kind == "b" else _DEV_CHAR))
        major, minor = rule.get("major"), rule.get("minor")
        if major is not None and major >= 0:
            checks.append((4, major))
        if minor is not None and minor >= 0:
            checks.append((5, minor))
        mask = 0
        for ch in rule.get("access") or "rwm":
            mask |= _ACC.get(ch, 0)
        body = []
        # Each check jumps past the block's end when it fails; offsets are
        # filled in once the block's length is known.
        pending = []
        for reg, value in checks:
            pending.append(len(body))
            body.append((_JNE_K, reg, 0, 0, value))
        if mask != 7:
            body.append((_MOV32_X, 1, 3, 0, 0))
            body.append((_AND32_K, 1, 0, 0, ~mask & 0xFFFFFFFF))
            pending.append(len(body))
            body.append((_JNE_K, 1, 0, 0, 0))
        body.append((_MOV64_K, 0, 0, 0, 1 if rule.get("allow") else 0))
        body.append((_EXIT, 0, 0, 0, 0))
        end = len(body)
        for i in pending:
            code, dst, src, _off, imm = body[i]
            body[i] = (code, dst, src, end - i - 1, imm)
        blocks.append(body)
    prologue = [
        (_LDXW, 2, 1, 0, 0), (_AND32_K, 2, 0, 0, 0xFFFF),   # r2 = type
        (_LDXW, 3, 1, 0, 0), (_RSH32_K, 3, 0, 0, 16),       # r3 = access
        (_LDXW, 4, 1, 4, 0),                                # r4 = major
        (_LDXW, 5, 1, 8, 0),                                # r5 = minor
    ]
    epilogue = [(_MOV64_K, 0, 0, 0, 1 if default else 0), (_EXIT, 0, 0, 0, 0)]
    program = prologue + [insn for block in blocks for insn in block] + epilogue
    return b"".join(_insn(code, dst, src, off, imm) for code, dst, src, off, imm in program)


def _bpf(cmd: int, attr: bytes) -> int:
    nr = _NR_BPF.get(os.uname().machine)
    if nr is None:
        raise DeviceFilterError("the device filter is not supported on this architecture")
    buf = ctypes.create_string_buffer(attr, len(attr))
    result = _libc.syscall(nr, ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise DeviceFilterError(f"bpf command {cmd}: {os.strerror(err)}")
    return result


def attach(cgroup_dir: str, rules) -> None:
    """Load the program for `rules` and attach it to the cgroup v2 directory."""
    program = compile_rules(rules)
    insns = ctypes.create_string_buffer(program, len(program))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16sII", _BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                       ctypes.addressof(log), 0, 0, b"berth_devices", 0, 0)
    try:
        prog_fd = _bpf(_BPF_PROG_LOAD, attr.ljust(128, b"\0"))
    except DeviceFilterError as e:
        raise DeviceFilterError(f"{e}: {log.value.decode(errors='replace').strip()}") from None
    try:
        dir_fd = os.open(cgroup_dir, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            _bpf(_BPF_PROG_ATTACH, struct.pack("<IIIII", dir_fd, prog_fd, _BPF_CGROUP_DEVICE,
                                               _BPF_F_ALLOW_MULTI, 0).ljust(128, b"\0"))
        finally:
            os.close(dir_fd)
    finally:
        os.close(prog_fd)
