"""The runtime operations on an existing container: start, state, kill,
delete, pause, resume, ps.

Kept apart from `container` (create, exec) so these commands load no
ctypes, sockets or subprocess machinery: each runs once per container.
"""

import json
import os
import select
import signal

from berth.runtime.builtin import state
from berth.runtime.builtin.cgroups import CgroupError, Cgroups
from berth.runtime.builtin.state import RuntimeFailure


class Options:
    """The global flags of the CLI."""

    def __init__(self, root: str):
        self.root = root


def run_hooks(hooks, record: dict) -> None:
    import subprocess  # only hooks need it; keep it off the common path

    payload = json.dumps(record).encode()
    for hook in hooks or ():
        args = hook.get("args") or [hook["path"]]
        env = dict(item.split("=", 1) for item in hook.get("env") or () if "=" in item)
        try:
            proc = subprocess.run(args, executable=hook["path"], input=payload, env=env,
                                  capture_output=True, timeout=hook.get("timeout"))
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeFailure(f"error running hook {hook['path']}: {e}") from None
        if proc.returncode != 0:
            raise RuntimeFailure(f"error running hook {hook['path']}: exit status {proc.returncode}, "
                                 f"stdout: {proc.stdout.decode(errors='replace').strip()}, "
                                 f"stderr: {proc.stderr.decode(errors='replace').strip()}")



def remove_tree(directory: str) -> None:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass



# --------------------------------------------------------------------------
# start, state, kill, delete, pause, resume


def cgroups_of(record: dict) -> Cgroups:
    return Cgroups.from_json(record["cgroups"])


def current_status(opts: Options, record: dict) -> str:
    return state.status(opts.root, record, frozen=cgroups_of(record).frozen)


def start(opts: Options, container_id: str) -> None:
    record = state.load(opts.root, container_id)
    status = current_status(opts, record)
    if status == "stopped":
        raise RuntimeFailure("cannot start a container that has stopped")
    if status != "created":
        raise RuntimeFailure("cannot start an already running container")
    fifo_path = os.path.join(opts.root, container_id, state.EXEC_FIFO)
    try:
        fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RuntimeFailure("cannot start an already running container") from None
    data = b""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while True:
            if not poller.poll(100):
                if not state.init_alive(record):
                    raise RuntimeFailure("cannot start a container that has stopped")
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    try:
        os.unlink(fifo_path)
    except FileNotFoundError:
        pass
    if not data:
        raise RuntimeFailure("cannot start a container that has stopped")
    if len(data) > 1:
        try:
            report = json.loads(data[1:])
        except ValueError:
            report = {"message": data[1:].decode(errors="replace")}
        raise RuntimeFailure(report.get("message", "exec failed"), report.get("kind", "error"))
    hooks = saved_config(opts, container_id).get("hooks") or {}
    if hooks.get("poststart"):
        run_hooks(hooks["poststart"], state.public(record, "running"))


def saved_config(opts: Options, container_id: str) -> dict:
    try:
        with open(os.path.join(opts.root, container_id, state.CONFIG_FILE), "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return {}


def describe(opts: Options, container_id: str) -> dict:
    record = state.load(opts.root, container_id)
    return state.public(record, current_status(opts, record))


def _signal_init(record: dict, signum: int) -> None:
    """Signal init through a pidfd, after checking it is still our process."""
    pid = record["pid"]
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise RuntimeFailure("container not running") from None
    try:
        if not state.init_alive(record):
            raise RuntimeFailure("container not running")
        signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        raise RuntimeFailure("container not running") from None
    finally:
        os.close(pidfd)


def kill(opts: Options, container_id: str, signum: int, all_processes: bool = False) -> None:
    record = state.load(opts.root, container_id)
    status = current_status(opts, record)
    if status == "stopped" and not all_processes:
        raise RuntimeFailure("container not running")
    if all_processes:
        try:
            cgroups_of(record).kill_all(signum)
        except CgroupError as e:
            raise RuntimeFailure(str(e)) from None
        return
    _signal_init(record, signum)


def delete(opts: Options, container_id: str, force: bool = False) -> None:
    directory = state.state_dir(opts.root, container_id)
    try:
        record = state.load(opts.root, container_id)
    except RuntimeFailure:
        if os.path.isdir(directory):
            # An aborted create left a directory without a record.
            remove_tree(directory)
            return
        if force:
            return
        raise
    status = current_status(opts, record)
    if status in ("running", "paused") and not force:
        raise RuntimeFailure(f"cannot delete container {container_id} that is not stopped: {status}")
    cgroups = cgroups_of(record)
    if status != "stopped":
        try:
            _signal_init(record, signal.SIGKILL)
        except RuntimeFailure:
            pass
    try:
        cgroups.destroy()
    except CgroupError as e:
        raise RuntimeFailure(f"unable to destroy container: {e}") from None
    hooks = saved_config(opts, container_id).get("hooks") or {}
    remove_tree(directory)
    if hooks.get("poststop"):
        try:
            run_hooks(hooks["poststop"], state.public(record, "stopped"))
        except RuntimeFailure:
            pass  # runc logs poststop failures and carries on


def pause(opts: Options, container_id: str) -> None:
    record = state.load(opts.root, container_id)
    status = current_status(opts, record)
    if status != "running":
        raise RuntimeFailure("container not running")
    try:
        cgroups_of(record).freeze()
    except CgroupError as e:
        raise RuntimeFailure(str(e)) from None


def resume(opts: Options, container_id: str) -> None:
    record = state.load(opts.root, container_id)
    if current_status(opts, record) != "paused":
        raise RuntimeFailure("container not paused")
    cgroups_of(record).thaw()


def processes(opts: Options, container_id: str) -> list[int]:
    record = state.load(opts.root, container_id)
    return sorted(cgroups_of(record).procs())
