"""`Runtime` over an OCI runtime's command line: runc, crun, or berth's own.

The wrapper holds no policy: it turns calls into `RUNTIME --root R --log L
--log-format json COMMAND ...` invocations and turns failures into
berth.errors.  Errors are read from the JSON log (runc, crun and the
built-in runtime all write one), which stays clean even when the runtime's
stderr is the container's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Mapping, Sequence

import berth
from berth.errors import (BerthError, CommandNotFound, Conflict, InvalidArgument, NotExecutable,
                          NotFound, Unavailable)
from berth.runtime.interface import RuntimeState, Stdio, fork_flushed, single_threaded

_NOT_FOUND = re.compile(r'exec(?:: "[^"]*":| [^:]*:) (?:executable file not found in \$PATH'
                        r'|stat [^:]*: (?:no such file or directory|not a directory)'
                        r'|no such file or directory)')
_NOT_EXECUTABLE = re.compile(r'exec(?:: "[^"]*":| [^:]*:) (?:permission denied|is a directory'
                             r'|exec format error)')
_CONFLICT = ("is not stopped", "not stopped", "not running", "already running", "has stopped",
             "with id exists", "not paused", "in a paused container", "in a stopped container")


def builtin_command() -> list[str]:
    """argv that runs berth's built-in runtime with this interpreter.

    -I -S skip site-packages processing (tens of milliseconds of .pth
    handling per call, and `create`, `start`, `delete` run once per
    container); berth's own location goes on sys.path explicitly instead.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(berth.__file__)))
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from berth.runtime.builtin.cli import main; sys.exit(main())")
    return [sys.executable, "-I", "-S", "-c", code]


class OCIRuntime:
    """Drive an OCI runtime binary.  `binary` is a name on PATH ("runc", "crun")
    or a full argv prefix (see `builtin`)."""

    def __init__(self, binary: str | Sequence[str] = "runc", *, state_root: str | os.PathLike,
                 timeout: float = 120.0):
        self.argv = [binary] if isinstance(binary, str) else list(binary)
        self.state_root = os.fspath(state_root)
        self.timeout = timeout
        self.name = os.path.basename(self.argv[0]) if isinstance(binary, str) else "builtin"

    @classmethod
    def builtin(cls, state_root: str | os.PathLike, *, in_process: bool = True,
                **kwargs) -> "OCIRuntime":
        """berth's built-in runtime.  With in_process (the default) the
        operations that neither fork nor enter namespaces run in the calling
        process, saving an interpreter start each; see BuiltinRuntime."""
        runtime = (BuiltinRuntime if in_process else cls)(builtin_command(),
                                                          state_root=state_root, **kwargs)
        runtime.name = "builtin"
        return runtime

    def __repr__(self) -> str:
        return f"OCIRuntime({self.name!r}, state_root={self.state_root!r})"

    # --- lifecycle

    def create(self, container_id: str, bundle: str | os.PathLike, *, stdio: Stdio | None = None,
               console_socket: str | None = None, pid_file: str | None = None) -> int:
        return self._create("create", container_id, bundle, stdio, console_socket, pid_file)

    def run(self, container_id: str, bundle: str | os.PathLike, *, stdio: Stdio | None = None,
            console_socket: str | None = None, pid_file: str | None = None) -> int:
        pid = self.create(container_id, bundle, stdio=stdio, console_socket=console_socket,
                          pid_file=pid_file)
        try:
            self.start(container_id)
        except BaseException:
            try:
                self.delete(container_id, force=True)
            except BerthError:
                pass
            raise
        return pid

    def _create(self, command, container_id, bundle, stdio, console_socket, pid_file) -> int:
        with tempfile.TemporaryDirectory(prefix="berth-oci-") as scratch:
            pid_path = os.path.abspath(pid_file) if pid_file else os.path.join(scratch, "pid")
            args = [command, "--bundle", os.path.abspath(os.fspath(bundle)), "--pid-file", pid_path]
            if console_socket:
                args += ["--console-socket", console_socket]
            args.append(container_id)
            self._call(args, container_id, stdio=stdio or Stdio(), timeout=None)
            return _read_pid(pid_path)

    def start(self, container_id: str) -> None:
        self._call(["start", container_id], container_id)

    def state(self, container_id: str) -> RuntimeState:
        out = self._call(["state", container_id], container_id)
        try:
            data = json.loads(out)
        except ValueError:
            raise BerthError(f"{self.name} state {container_id}: unreadable output") from None
        return RuntimeState(id=data.get("id", container_id), status=data.get("status", "unknown"),
                            pid=int(data.get("pid") or 0), bundle=data.get("bundle", ""),
                            created=data.get("created", ""),
                            annotations=data.get("annotations") or {})

    def kill(self, container_id: str, signal: int | str = 15, *, all: bool = False) -> None:
        args = ["kill"] + (["--all"] if all else []) + [container_id, str(signal)]
        self._call(args, container_id)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self._call(["delete"] + (["--force"] if force else []) + [container_id], container_id)

    def pause(self, container_id: str) -> None:
        self._call(["pause", container_id], container_id)

    def resume(self, container_id: str) -> None:
        self._call(["resume", container_id], container_id)

    def exec(self, container_id: str, process: Mapping, *, stdio: Stdio | None = None,
             console_socket: str | None = None, detach: bool = True,
             pid_file: str | None = None) -> int:
        process_fd = os.memfd_create("oci-process", os.MFD_CLOEXEC)
        try:
            os.write(process_fd, json.dumps(process).encode())
            with tempfile.TemporaryDirectory(prefix="berth-oci-") as scratch:
                pid_path = os.path.abspath(pid_file) if pid_file else os.path.join(scratch, "pid")
                args = ["exec", "--process", f"/proc/{os.getpid()}/fd/{process_fd}",
                        "--pid-file", pid_path]
                if console_socket:
                    args += ["--console-socket", console_socket]
                if detach:
                    args.append("--detach")
                args.append(container_id)
                code = self._call(args, container_id, stdio=stdio or Stdio(), timeout=None,
                                  exit_status=not detach)
                return _read_pid(pid_path) if detach else code
        finally:
            os.close(process_fd)

    # --- plumbing

    def _call(self, args: list[str], container_id: str, *, stdio: Stdio | None = None,
              timeout: float | None | str = "default", exit_status: bool = False):
        """Run the runtime.  Returns stdout (captured calls), or the exit
        status (exit_status=True, for attached exec).  Raises on failure."""
        if timeout == "default":
            timeout = self.timeout
        log_fd = os.memfd_create("oci-log", os.MFD_CLOEXEC)
        try:
            options = ["--root", self.state_root, "--log", f"/proc/self/fd/{log_fd}", "--log-format", "json"]
            returncode, stdout, stderr = self._run(options, args, stdio, log_fd, timeout)
            error = _last_error(os.pread(log_fd, 1 << 20, 0))
        finally:
            os.close(log_fd)
        if exit_status and not error:
            return returncode
        if returncode != 0 or error and exit_status:
            message = error or stderr or f"{self.name} {args[0]} failed with exit status {returncode}"
            raise _translate(message, container_id)
        return stdout

    def _run(self, options: list[str], args: list[str], stdio: Stdio | None, log_fd: int,
             timeout: float | None) -> tuple[int, str, str]:
        """`RUNTIME OPTIONS ARGS` run as a child: (exit status, stdout,
        stderr), the last two captured only when `stdio` is None."""
        if stdio is None:
            streams = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        else:
            streams = {
                "stdin": subprocess.DEVNULL if stdio.stdin is None else stdio.stdin,
                "stdout": subprocess.DEVNULL if stdio.stdout is None else stdio.stdout,
                "stderr": subprocess.DEVNULL if stdio.stderr is None else stdio.stderr,
            }
        try:
            proc = subprocess.run([*self.argv, *options, *args], **streams, pass_fds=(log_fd,),
                                  timeout=timeout)
        except FileNotFoundError:
            raise Unavailable(f"OCI runtime {self.argv[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise Unavailable(f"OCI runtime {self.name} {args[0]} timed out") from None
        if stdio is not None:
            return proc.returncode, "", ""
        return (proc.returncode, proc.stdout.decode(errors="replace"),
                proc.stderr.decode(errors="replace").strip())


class BuiltinRuntime(OCIRuntime):
    """The built-in runtime with start, state, kill, delete, pause and resume
    called as functions rather than commands.

    These only read records, signal, write cgroup files and wait: safe in
    a multi-threaded supervisor.  create, run and exec fork and enter
    namespaces, which needs a single-threaded process: they stay commands,
    but a single-threaded caller (a supervisor) runs the command in a fork
    of itself rather than in a new interpreter, which saves the interpreter
    start and the imports on every container start.
    """

    def _run(self, options: list[str], args: list[str], stdio: Stdio | None, log_fd: int,
             timeout: float | None) -> tuple[int, str, str]:
        if stdio is None or timeout is not None or not single_threaded():
            return super()._run(options, args, stdio, log_fd, timeout)
        return _run_forked([*options, *args], stdio, log_fd), "", ""

    def _lifecycle(self, operation: str, container_id: str, *args):
        from berth.runtime.builtin import lifecycle
        from berth.runtime.builtin.state import RuntimeFailure

        try:
            return getattr(lifecycle, operation)(lifecycle.Options(os.path.abspath(self.state_root)),
                                                 container_id, *args)
        except RuntimeFailure as e:
            raise _translate(str(e), container_id) from None
        except OSError as e:
            raise BerthError(f"{operation} {container_id}: {e.strerror or e}") from None

    def start(self, container_id: str) -> None:
        self._lifecycle("start", container_id)

    def state(self, container_id: str) -> RuntimeState:
        data = self._lifecycle("describe", container_id)
        return RuntimeState(id=data["id"], status=data["status"], pid=int(data.get("pid") or 0),
                            bundle=data.get("bundle", ""), created=data.get("created", ""),
                            annotations=data.get("annotations") or {})

    def kill(self, container_id: str, signal: int | str = 15, *, all: bool = False) -> None:
        from berth.runtime.builtin.cli import UsageError, signal_number

        try:
            signum = signal if isinstance(signal, int) else signal_number(str(signal))
        except UsageError as e:
            raise InvalidArgument(str(e)) from None
        self._lifecycle("kill", container_id, signum, all)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self._lifecycle("delete", container_id, force)

    def pause(self, container_id: str) -> None:
        self._lifecycle("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._lifecycle("resume", container_id)


def _run_forked(argv: list[str], stdio: Stdio, log_fd: int) -> int:
    """The built-in runtime's command line run in a fork of this process,
    as if it were a child process with stdio and only ``log_fd`` passed;
    its exit status."""
    pid = fork_flushed()
    if pid == 0:
        code = 1
        try:    # never return into the caller's code: this is a copy of it
            _become_child(stdio, log_fd)
            from berth.runtime.builtin.cli import main
            code = main(argv)
        except BaseException:   # noqa: BLE001 - the copy must end here whatever happens
            try:
                import traceback
                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _become_child(stdio: Stdio, log_fd: int) -> None:
    """What exec would give a child: default signal handling, the given
    stdio (else /dev/null), and no other descriptor of the caller's open,
    so that nothing waiting for one of them to close waits for the runtime
    or the container it creates."""
    import signal

    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, TypeError):
            continue
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    null = os.open(os.devnull, os.O_RDWR)
    wanted = [null if fd is None else fd for fd in (stdio.stdin, stdio.stdout, stdio.stderr)]
    # Move them out of 0-2 first: one may sit where another goes.
    moved = [os.dup(fd) for fd in wanted]
    for target, fd in enumerate(moved):
        os.dup2(fd, target)     # inheritable, as a child's stdio is
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != log_fd:
            try:
                os.close(fd)
            except OSError:
                pass     # the listing's own descriptor, closed already
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)


def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError) as e:
        raise BerthError(f"the OCI runtime wrote no usable pid file: {e}") from None


def _last_error(log: bytes) -> str:
    message = ""
    for line in log.decode(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
            message = str(entry["msg"])
    return message


def _translate(message: str, container_id: str) -> BerthError:
    """The berth error for a runtime's message (runc's, crun's or ours)."""
    one_line = " ".join(message.split())
    m = _NOT_FOUND.search(one_line)
    if m:
        return CommandNotFound(one_line[m.start():])
    m = _NOT_EXECUTABLE.search(one_line)
    if m:
        return NotExecutable(one_line[m.start():])
    lowered = one_line.lower()
    if "container does not exist" in lowered or lowered.endswith("does not exist") \
            or "no such file or directory" in lowered and container_id in one_line \
            and "state" in lowered:
        return NotFound(f"No such container: {container_id}")
    if any(phrase in lowered for phrase in _CONFLICT):
        return Conflict(one_line)
    return BerthError(one_line)
