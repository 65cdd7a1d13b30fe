"""The last steps before exec: rlimits, privileges, identity, executable lookup.

Everything the container process does after it drops privileges lives
here, and all of it is imported before pivot_root: after it, the host's
Python library is out of reach.
"""

import errno
import os
import resource
import stat

from berth.runtime import capabilities
from berth.runtime.builtin import linux

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_INFINITY = 0xFFFFFFFFFFFFFFFF


class ProcessError(Exception):
    """A failure to prepare the process; `kind` tells the caller which exit code applies."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind  # "error", "notfound" (127) or "notexec" (126)


def set_rlimits(process: dict) -> None:
    """Apply process.rlimits to this process (before any user namespace, which
    would take the right to raise them)."""
    for r in process.get("rlimits") or ():
        number = RLIMITS.get(r["type"])
        if number is None:
            raise ProcessError(f"unknown rlimit type {r['type']!r}")
        soft = resource.RLIM_INFINITY if r["soft"] >= _INFINITY else r["soft"]
        hard = resource.RLIM_INFINITY if r["hard"] >= _INFINITY else r["hard"]
        try:
            resource.setrlimit(number, (soft, hard))
        except (ValueError, OSError) as e:
            raise ProcessError(f"error setting rlimit type {r['type'][7:].lower()}: {e}") from None


def set_oom_score_adj(process: dict) -> None:
    value = process.get("oomScoreAdj")
    if value is None:
        return
    path = "/proc/self/oom_score_adj"
    with open(path) as f:
        if int(f.read()) == value:
            return
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        raise ProcessError(f"set oom_score_adj to {value}: {e.strerror}") from None


class Identity:
    """Capabilities and user, applied in runc's order (finalizeNamespace)."""

    def __init__(self, process: dict, setgroups_allowed: bool = True):
        caps = process.get("capabilities") or {}
        self.bounding = capabilities.mask(caps.get("bounding") or ())
        self.effective = capabilities.mask(caps.get("effective") or ())
        self.permitted = capabilities.mask(caps.get("permitted") or ())
        self.inheritable = capabilities.mask(caps.get("inheritable") or ())
        self.ambient = capabilities.mask(caps.get("ambient") or ())
        user = process.get("user") or {}
        self.uid = user.get("uid", 0)
        self.gid = user.get("gid", 0)
        self.groups = list(user.get("additionalGids") or ())
        self.umask = user.get("umask")
        self.setgroups_allowed = setgroups_allowed

    def apply(self) -> None:
        # What we hold ourselves caps what the container can get (a runtime
        # inside a restricted parent cannot hand out more than it has).
        _eff, held, _inh = linux.capget()
        last = _last_cap()
        for cap in range(last + 1):
            if not self.bounding & (1 << cap):
                try:
                    linux.prctl(linux.PR_CAPBSET_DROP, cap)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise ProcessError(f"drop capability {cap} from the bounding set: "
                                           f"{e.strerror}") from None
        linux.prctl(linux.PR_SET_KEEPCAPS, 1)
        try:
            if self.setgroups_allowed:
                os.setgroups(self.groups)
            os.setresgid(self.gid, self.gid, self.gid)
            os.setresuid(self.uid, self.uid, self.uid)
        except OSError as e:
            raise ProcessError(f"cannot set uid/gid to {self.uid}:{self.gid}: {e.strerror}") from None
        linux.prctl(linux.PR_SET_KEEPCAPS, 0)
        permitted = self.permitted & held
        try:
            linux.capset(self.effective & permitted, permitted, self.inheritable & self.bounding)
        except OSError as e:
            raise ProcessError(f"unable to apply capabilities: {e.strerror}") from None
        for cap in range(last + 1):
            if self.ambient & (1 << cap) & permitted & self.inheritable:
                linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
        os.umask(0o022 if self.umask is None else self.umask)


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(capabilities.CAPABILITIES) - 1


def environment(process: dict, uid: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.get("env") or ():
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = value
    if "HOME" not in env:
        # runc fills HOME from the container's passwd file.
        env["HOME"] = _home_of(uid)
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def look_path(name: str, env: dict[str, str]) -> str:
    """Go's exec.LookPath, which runc uses, with its error wording; the
    caller maps "not found" to exit 127 and "cannot execute" to 126."""
    if not name:
        raise ProcessError('exec: "": executable file not found in $PATH', "notfound")
    if "/" in name:
        problem = _executable_problem(name)
        if problem is None:
            return name
        kind, text = problem
        raise ProcessError(f'exec: "{name}": {text}', kind)
    for directory in env.get("PATH", "").split(":"):
        candidate = os.path.join(directory or ".", name)
        if _executable_problem(candidate) is None:
            return candidate
    raise ProcessError(f'exec: "{name}": executable file not found in $PATH', "notfound")


def _executable_problem(path: str) -> tuple[str, str] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ("notfound", f"stat {path}: no such file or directory")
    except NotADirectoryError:
        return ("notfound", f"stat {path}: not a directory")
    except OSError as e:
        return ("notexec", f"stat {path}: {e.strerror.lower()}")
    if stat.S_ISDIR(st.st_mode):
        return ("notexec", "is a directory")
    if not st.st_mode & 0o111 or not os.access(path, os.X_OK):
        return ("notexec", "permission denied")
    return None


def exec_failure(path: str, err: OSError) -> ProcessError:
    kind = "notfound" if err.errno == errno.ENOENT else "notexec"
    return ProcessError(f"exec {path}: {(err.strerror or str(err)).lower()}", kind)
