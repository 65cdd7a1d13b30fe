"""Container records under the runtime's --root: ROOT/ID/state.json.

A record is written atomically (temp file + rename).  The status is not
stored but derived, as runc derives it: a dead or recycled init PID means
stopped, a pending exec.fifo means created, a frozen cgroup means paused.
"""

import json
import os
import re
import time

OCI_VERSION = "1.0.2-dev"
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
EXEC_FIFO = "exec.fifo"

_VALID_ID = re.compile(r"^[\w+\-.]+$")


class RuntimeFailure(Exception):
    """A command failed; the message is what runc would print.  `kind` is
    "notfound"/"notexec" for a command that cannot be executed."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def validate_id(container_id: str) -> None:
    if not container_id or container_id in (".", "..") or not _VALID_ID.match(container_id):
        raise RuntimeFailure(f"invalid container id format: {container_id}")


def state_dir(root: str, container_id: str) -> str:
    validate_id(container_id)
    return os.path.join(root, container_id)


def load(root: str, container_id: str) -> dict:
    path = os.path.join(state_dir(root, container_id), STATE_FILE)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise RuntimeFailure("container does not exist") from None
    except ValueError:
        raise RuntimeFailure(f"container state of {container_id} is corrupt") from None


def save(root: str, record: dict) -> None:
    directory = state_dir(root, record["id"])
    write_atomic(os.path.join(directory, STATE_FILE), json.dumps(record).encode())


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def proc_start_time(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live PID, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def init_alive(record: dict) -> bool:
    pid = record.get("pid") or 0
    if pid <= 0:
        return False
    info = proc_start_time(pid)
    return info is not None and info[1] == record.get("init_start_time") and info[0] not in "ZX"


def status(root: str, record: dict, frozen=None) -> str:
    """creating, created, running, paused or stopped."""
    if record.get("creating"):
        return "creating" if init_alive(record) or not record.get("pid") else "stopped"
    if not init_alive(record):
        return "stopped"
    if os.path.exists(os.path.join(root, record["id"], EXEC_FIFO)):
        return "created"
    if frozen is not None and frozen():
        return "paused"
    return "running"


def timestamp() -> str:
    """RFC 3339 with nanoseconds, as runc writes `created`."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) \
        + f".{ns % 1_000_000_000:09d}Z"


def public(record: dict, current_status: str) -> dict:
    """The `state` command's output: the OCI state plus runc's extras."""
    out = {
        "ociVersion": record.get("ociVersion", OCI_VERSION),
        "id": record["id"],
        "pid": record.get("pid", 0) if current_status != "stopped" else 0,
        "status": current_status,
        "bundle": record.get("bundle", ""),
        "rootfs": record.get("rootfs", ""),
        "created": record.get("created", ""),
        "owner": "",
    }
    if record.get("annotations"):
        out["annotations"] = record["annotations"]
    return out
