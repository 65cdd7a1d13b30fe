"""The runtime operations: create, start, kill, delete, exec, pause, resume.

Three processes take part in `create` (and `exec`):

  runtime   the CLI process; makes the cgroups and the state record, puts
            the stage into the cgroups, writes user namespace maps, runs
            hooks, and reports success once init is ready.
  stage     forked by the runtime; joins or creates the namespaces, forks
            init (PID 1 when the PID namespace is new), reports init's PID
            and exits, so init is re-parented to the caller's subreaper.
  init      sets up the filesystem and the process, reports "ready", then
            (create) blocks on exec.fifo until `start`, or (exec) execs.

They talk over a SOCK_SEQPACKET socketpair, one JSON message per packet.
Errors before exec travel the same way, so a missing or non-executable
command fails `create` itself with runc's wording.
"""

import errno
import fcntl
import json
import os
import signal
import socket
import struct

from berth.runtime.builtin import linux, state
from berth.runtime.builtin.cgroups import CgroupError, Cgroups
from berth.runtime.builtin.lifecycle import (Options, cgroups_of, current_status, delete,
                                             remove_tree, run_hooks, saved_config, start)
from berth.runtime.builtin.process import (Identity, ProcessError, environment, exec_failure,
                                           look_path, set_oom_score_adj, set_rlimits)
from berth.runtime.builtin.rootfs import Rootfs, RootfsError, mask_path, readonly_path
from berth.runtime.builtin.state import RuntimeFailure

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431

# Joining order for namespaces given by path: the user namespace first (it
# owns the others), the mount namespace last (it changes what paths mean).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")

# Compiled seccomp programs, beside the containers' directories; the colon
# keeps the name out of the container id space.
SECCOMP_CACHE = ":seccomp"

# Namespaced sysctls (runc's validator): prefix or name -> namespace needed.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


# --------------------------------------------------------------------------
# messages


def _send(sock: socket.socket, **message) -> None:
    sock.send(json.dumps(message).encode())


def _recv(sock: socket.socket) -> dict | None:
    try:
        data = sock.recv(1 << 16)
    except ConnectionResetError:
        return None
    if not data:
        return None
    return json.loads(data)


def _expect_go(sock: socket.socket) -> dict:
    msg = _recv(sock)
    if msg is None or msg.get("type") != "go":
        os._exit(1)  # the runtime gave up on us
    return msg


def _fail(sock: socket.socket, err: BaseException) -> None:
    kind = getattr(err, "kind", "error")
    if isinstance(err, OSError) and not isinstance(err, (ProcessError, RootfsError)):
        message = err.strerror and (f"{err.strerror}: {err.filename}" if err.filename else err.strerror)
        message = message or str(err)
    else:
        message = str(err)
    try:
        _send(sock, type="error", message=message, kind=kind)
    except OSError:
        pass


# --------------------------------------------------------------------------
# namespaces


def _namespace_plan(config: dict) -> tuple[int, list[tuple[str, str]], set[str]]:
    """(unshare flags, [(type, path to join)], types present) from linux.namespaces."""
    flags = 0
    joins = []
    types = set()
    for ns in (config.get("linux") or {}).get("namespaces") or ():
        kind = ns.get("type")
        if kind not in linux.NAMESPACES:
            raise RuntimeFailure(f"namespace type {kind!r} is not supported")
        if kind in types:
            raise RuntimeFailure(f"malformed spec file: duplicated ns {kind!r}")
        types.add(kind)
        if ns.get("path"):
            joins.append((kind, ns["path"]))
        else:
            flags |= linux.NAMESPACES[kind][0]
    joins.sort(key=lambda j: _JOIN_ORDER.index(j[0]))
    return flags, joins, types


def _open_namespaces(joins: list[tuple[str, str]]) -> list[tuple[str, int]]:
    fds = []
    try:
        for kind, path in joins:
            fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    except OSError as e:
        for _, fd in fds:
            os.close(fd)
        raise RuntimeFailure(f"joining namespace {path}: {e.strerror}") from None
    return fds


def _enter(sock: socket.socket, flags: int, ns_fds: list[tuple[str, int]]) -> None:
    """Join and create namespaces in the stage (runc's nsexec order)."""
    for kind, fd in ns_fds:
        if kind == "user":
            linux.setns(fd, linux.CLONE_NEWUSER)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    if flags & linux.CLONE_NEWUSER:
        linux.unshare(linux.CLONE_NEWUSER)
        _send(sock, type="userns")
        _expect_go(sock)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for kind, fd in ns_fds:
        if kind != "user":
            linux.setns(fd, linux.NAMESPACES[kind][0])
        os.close(fd)
    rest = flags & ~linux.CLONE_NEWUSER
    if rest:
        linux.unshare(rest)


def _write_id_maps(pid: int, config: dict) -> None:
    lx = config.get("linux") or {}

    def fmt(maps):
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps or ())
    try:
        if lx.get("gidMappings"):
            with open(f"/proc/{pid}/gid_map", "w") as f:
                f.write(fmt(lx["gidMappings"]))
        if lx.get("uidMappings"):
            with open(f"/proc/{pid}/uid_map", "w") as f:
                f.write(fmt(lx["uidMappings"]))
    except OSError as e:
        raise RuntimeFailure(f"writing user namespace mappings: {e.strerror}") from None


# --------------------------------------------------------------------------
# pieces of init


def _setup_console(conn: socket.socket, size: dict | None, bind_console: bool) -> None:
    """Allocate the pty in the container's devpts, hand the master to the
    caller over the console socket (runc's protocol: one SCM_RIGHTS fd, the
    data being its name), make the slave our stdio and controlling tty.
    For init, the slave also becomes /dev/console."""
    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
        slave_path = f"/dev/pts/{number}"
        slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if size:
            fcntl.ioctl(slave, TIOCSWINSZ,
                        struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
        if bind_console:
            if not os.path.exists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
            linux.mount(slave_path, "/dev/console", "bind", linux.MS_BIND)
        socket.send_fds(conn, [b"/dev/pts/ptmx"], [master])
    finally:
        os.close(master)
        conn.close()
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    fcntl.ioctl(0, TIOCSCTTY, 0)


def _apply_sysctls(config: dict, created: int, types: set[str]) -> None:
    for key, value in ((config.get("linux") or {}).get("sysctl") or {}).items():
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if not created & linux.CLONE_NEWIPC and "ipc" not in types:
                raise ProcessError(f"sysctl {key!r} is not allowed in the host's ipc namespace")
        elif key.startswith("net."):
            if "network" not in types:
                raise ProcessError(f"sysctl {key!r} not allowed in host network namespace")
        elif key in ("kernel.hostname", "kernel.domainname"):
            if "uts" not in types:
                raise ProcessError(f"sysctl {key!r} is not allowed in the host's uts namespace")
        else:
            raise ProcessError(f"sysctl {key!r} is not in a separate kernel namespace")
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise ProcessError(f"write sysctl {key}: {e.strerror}") from None


def _finish_process(process: dict, seccomp_filter, userns: bool) -> tuple[str, dict]:
    """no_new_privs, seccomp (early, when it needs privileges), identity, cwd,
    executable lookup.  Returns (path, env) for execve."""
    nnp = bool(process.get("noNewPrivileges"))
    if nnp:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_filter is not None and not nnp:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it
        # while we still have it.
        seccomp_filter.load()
    _default_signals()
    identity = Identity(process, setgroups_allowed=not userns or _setgroups_allowed())
    identity.apply()
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ProcessError(f'chdir to cwd ("{cwd}") set in config.json failed: '
                           f'{e.strerror.lower()}') from None
    env = environment(process, identity.uid)
    args = process.get("args") or []
    if not args:
        raise ProcessError("args must not be empty")
    return look_path(args[0], env), env


def _default_signals() -> None:
    """Give the process default dispositions and an empty mask: Python
    ignores SIGPIPE and SIGXFSZ, and the runtime's caller may have ignored
    more, all of which exec would otherwise pass on."""
    for signum in range(1, signal.NSIG):
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # numbers glibc reserves for itself
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


# --------------------------------------------------------------------------
# create


def _load_config(bundle: str) -> dict:
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise RuntimeFailure("JSON specification file config.json not found") from None
    except ValueError as e:
        raise RuntimeFailure(f"config.json is not valid JSON: {e}") from None


def create(opts: Options, container_id: str, bundle: str, *, console_socket: str | None = None,
           pid_file: str | None = None, preserve_fds: int = 0, no_pivot: bool = False,
           no_new_keyring: bool = False) -> dict:
    """Set the container up and leave its init waiting on exec.fifo."""
    directory = state.state_dir(opts.root, container_id)
    os.makedirs(opts.root, 0o700, exist_ok=True)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise RuntimeFailure(f"container with id exists: {container_id}") from None
    os.chmod(directory, 0o711)  # not narrowed by umask: init reaches exec.fifo as the container user
    cleanup = _Cleanup(directory)
    try:
        return _create(opts, container_id, os.path.abspath(bundle), directory, cleanup,
                       console_socket, pid_file, preserve_fds, no_pivot, no_new_keyring)
    except BaseException:
        cleanup.run()
        raise


class _Cleanup:
    def __init__(self, directory: str):
        self.directory = directory
        self.init_pid = 0
        self.stage_pid = 0
        self.cgroups: Cgroups | None = None

    def run(self) -> None:
        for pid in (self.init_pid, self.stage_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _reap_children()
        if self.cgroups is not None:
            try:
                self.cgroups.destroy()
            except CgroupError:
                pass
        remove_tree(self.directory)


def _reap_children() -> None:
    """Wait for every child: we are a subreaper while creating, so a failed
    init is ours to reap rather than a zombie left to the caller."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _create(opts, container_id, bundle, directory, cleanup, console_socket, pid_file,
            preserve_fds, no_pivot, no_new_keyring) -> dict:
    config = _load_config(bundle)
    process = config.get("process")
    if not process:
        raise RuntimeFailure("process property must not be empty")
    root_path = (config.get("root") or {}).get("path")
    if not root_path:
        raise RuntimeFailure("root.path must be set")
    rootfs = os.path.realpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        raise RuntimeFailure(f"rootfs ({rootfs}) does not exist")
    terminal = bool(process.get("terminal"))
    if terminal and not console_socket:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting console socket")
    if console_socket and not terminal:
        raise RuntimeFailure("cannot use console socket if runc will not detach or allocate tty")
    flags, joins, types = _namespace_plan(config)
    if not flags & linux.CLONE_NEWNS and "mount" not in types:
        raise RuntimeFailure("a mount namespace is required to set up the rootfs")
    lx = config.get("linux") or {}
    if config.get("hostname") and "uts" not in types:
        raise RuntimeFailure("unable to set hostname without a private UTS namespace")

    cgroups = Cgroups.for_container(lx.get("cgroupsPath"), container_id)
    record = {
        "ociVersion": config.get("ociVersion", state.OCI_VERSION),
        "id": container_id,
        "pid": 0,
        "bundle": bundle,
        "rootfs": rootfs,
        "created": state.timestamp(),
        "annotations": config.get("annotations") or {},
        "cgroups": cgroups.to_json(),
        "namespaces": sorted(types),
        "creating": True,
    }
    state.save(opts.root, record)  # so `delete --force` can clean up after a crash
    state.write_atomic(os.path.join(directory, state.CONFIG_FILE), json.dumps(config).encode())
    cleanup.cgroups = cgroups
    try:
        cgroups.create(lx.get("resources"))
    except (CgroupError, OSError) as e:
        raise RuntimeFailure(f"unable to apply cgroup configuration: {e}") from None

    seccomp_filter = None
    if lx.get("seccomp"):
        from berth.runtime.builtin.seccomp import SeccompError, compile_program
        try:
            seccomp_filter = compile_program(lx["seccomp"], os.path.join(opts.root, SECCOMP_CACHE))
        except (SeccompError, KeyError) as e:
            raise RuntimeFailure(f"unable to init seccomp: {e}") from None

    old_umask = os.umask(0)
    try:
        os.mkfifo(os.path.join(directory, state.EXEC_FIFO), 0o622)
    finally:
        os.umask(old_umask)
    dir_fd = os.open(directory, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)

    console = None
    if console_socket:
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            console.connect(console_socket)
        except OSError as e:
            raise RuntimeFailure(f"connecting to console socket {console_socket}: {e.strerror}") from None

    ns_fds = _open_namespaces(joins)
    # Init becomes our child when the stage exits: if setup fails we reap it
    # here; on success we exit and it passes on to the caller's subreaper.
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctx = _InitContext(config, rootfs, cgroups, seccomp_filter, flags, types, dir_fd,
                       console, preserve_fds, no_pivot, no_new_keyring, container_id, bundle)
    stage = os.fork()
    if stage == 0:
        parent.close()
        _stage(child, ctx, ns_fds, create=True)
    cleanup.stage_pid = stage
    child.close()
    os.close(dir_fd)
    for _, fd in ns_fds:
        os.close(fd)
    if console is not None:
        console.close()

    # Joining a cgroup waits out an RCU grace period (10-20 ms with v1
    # controllers), so init joins while it sets up its mounts, which its
    # cgroups do not govern: it cannot exec before `start`, which follows
    # this create.  A private cgroup namespace is rooted where its creator
    # stands, so then the stage joins before it unshares.
    join_early = bool(flags & linux.CLONE_NEWCGROUP)

    def join(pid: int) -> None:
        try:
            cgroups.add(pid)
        except CgroupError as e:
            raise RuntimeFailure(f"unable to join the container's cgroups: {e}") from None

    if join_early:
        join(stage)
    _send(parent, type="go")
    hooks = config.get("hooks") or {}
    init_pid = 0

    def receive() -> dict:
        nonlocal init_pid
        msg = _recv(parent)
        if msg is None:
            raise RuntimeFailure("container init exited before it was ready")
        if msg.get("type") == "error":
            raise RuntimeFailure(msg.get("message", "container init failed"), msg.get("kind", "error"))
        if msg.get("type") == "pid":
            init_pid = cleanup.init_pid = msg["pid"]
            os.waitpid(stage, 0)
            cleanup.stage_pid = 0
            if not join_early:
                join(init_pid)
        return msg

    while True:
        kind = receive().get("type")
        if kind == "userns":
            _write_id_maps(stage, config)
            _send(parent, type="go")
        elif kind in ("hooks", "ready"):
            # Init's messages may overtake the stage's report of its PID.
            while not init_pid:
                receive()
            if kind == "ready":
                break
            hook_state = state.public({**record, "pid": init_pid}, "creating")
            run_hooks(hooks.get("prestart"), hook_state)
            run_hooks(hooks.get("createRuntime"), hook_state)
            _send(parent, type="go", state=hook_state)
    parent.close()
    if not init_pid:
        raise RuntimeFailure("container init did not report its pid")
    info = state.proc_start_time(init_pid)
    if info is None:
        raise RuntimeFailure("container init exited before it was ready")
    record.update(pid=init_pid, init_start_time=info[1])
    record.pop("creating")
    state.save(opts.root, record)
    if pid_file:
        state.write_atomic(os.path.abspath(pid_file), str(init_pid).encode(), 0o644)
    cleanup.init_pid = 0
    return record


class _InitContext:
    """What the stage and init need; built before fork, used after it."""

    def __init__(self, config, rootfs, cgroups, seccomp_filter, flags, types, dir_fd, console,
                 preserve_fds, no_pivot, no_new_keyring, container_id, bundle="/"):
        self.config = config
        self.bundle = bundle
        self.process = config["process"]
        self.rootfs = rootfs
        self.cgroups = cgroups
        self.seccomp_filter = seccomp_filter
        self.flags = flags
        self.types = types
        self.dir_fd = dir_fd
        self.console = console
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.container_id = container_id
        self.userns = bool(flags & linux.CLONE_NEWUSER) or "user" in types


def _stage(sock: socket.socket, ctx: _InitContext, ns_fds, *, create: bool) -> None:
    """The short-lived middle process.  Never returns."""
    try:
        # Keep /proc/PID/fd of the runtime's processes out of the container's reach.
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        _expect_go(sock)
        set_rlimits(ctx.process)
        set_oom_score_adj(ctx.process)
        _enter(sock, ctx.flags, ns_fds)
        pid = os.fork()
        if pid == 0:
            if create:
                _init(sock, ctx)
            else:
                _exec_init(sock, ctx)
        _send(sock, type="pid", pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - reported to the runtime, then we exit
        _fail(sock, e)
        os._exit(1)


def _init(sock: socket.socket, ctx: _InitContext) -> None:
    """The container's init until exec.  Never returns."""
    try:
        os.setsid()
        config = ctx.config
        lx = config.get("linux") or {}
        if ctx.flags & linux.CLONE_NEWNET:
            linux.loopback_up()
        rootfs = Rootfs(config, ctx.rootfs, ctx.cgroups.paths, bundle=ctx.bundle,
                        cgroupns=bool(ctx.flags & linux.CLONE_NEWCGROUP), userns=ctx.userns)
        if ctx.flags & linux.CLONE_NEWNS:
            rootfs.prepare()
        hooks = config.get("hooks") or {}
        if hooks.get("prestart") or hooks.get("createRuntime") or hooks.get("createContainer"):
            _send(sock, type="hooks")
            go = _expect_go(sock)
            run_hooks(hooks.get("createContainer"), go.get("state") or {})
        if ctx.flags & linux.CLONE_NEWNS:
            rootfs.pivot(ctx.no_pivot)
        if ctx.process.get("terminal"):
            _setup_console(ctx.console, ctx.process.get("consoleSize"),
                           bind_console=bool(ctx.flags & linux.CLONE_NEWNS))
        if ctx.flags & linux.CLONE_NEWNS:
            rootfs.finalize()
        if config.get("hostname"):
            linux.sethostname(config["hostname"])
        if config.get("domainname"):
            linux.setdomainname(config["domainname"])
        if not ctx.no_new_keyring:
            try:
                linux.join_session_keyring(ctx.container_id)
            except OSError as e:
                if e.errno not in (errno.ENOSYS, errno.EACCES, errno.EPERM):
                    raise
        _apply_sysctls(config, ctx.flags, ctx.types)
        for path in lx.get("readonlyPaths") or ():
            readonly_path(path)
        for path in lx.get("maskedPaths") or ():
            mask_path(path)
        path, env = _finish_process(ctx.process, ctx.seccomp_filter, ctx.userns)
        linux.cloexec_from(3 + ctx.preserve_fds)
        _send(sock, type="ready")
        sock.close()
    except BaseException as e:  # noqa: BLE001
        _fail(sock, e)
        os._exit(1)

    # Wait for `start`.  exec.fifo is reached through the state directory's
    # descriptor: its path is outside our root now.
    try:
        fifo = os.open(state.EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx.dir_fd)
        os.close(ctx.dir_fd)
        os.write(fifo, b"0")
    except OSError:
        os._exit(1)
    _exec(fifo, path, ctx, env)


def _exec(report_fd: int, path: str, ctx: _InitContext, env: dict) -> None:
    """Load a late seccomp filter and exec; report a failure on `report_fd`."""
    try:
        if ctx.seccomp_filter is not None and ctx.process.get("noNewPrivileges"):
            ctx.seccomp_filter.load()
        os.execve(path, ctx.process["args"], env)
    except OSError as e:
        failure = exec_failure(path, e)
    except BaseException as e:  # noqa: BLE001
        failure = ProcessError(str(e))
    try:
        os.write(report_fd, json.dumps({"type": "error", "message": str(failure),
                                        "kind": failure.kind}).encode())
    except OSError:
        pass
    os._exit(127 if failure.kind == "notfound" else 126)


# --------------------------------------------------------------------------
# exec


def exec_process(opts: Options, container_id: str, process: dict, *,
                 console_socket: str | None = None, pid_file: str | None = None,
                 detach: bool = False, preserve_fds: int = 0) -> int:
    """Run `process` in the running container; returns its exit status, or 0
    once it runs when detached."""
    record = state.load(opts.root, container_id)
    status = current_status(opts, record)
    if status == "stopped":
        raise RuntimeFailure("cannot exec in a stopped container")
    if status == "paused":
        raise RuntimeFailure("cannot exec in a paused container")
    terminal = bool(process.get("terminal"))
    if terminal and not console_socket:
        raise RuntimeFailure("cannot allocate tty without setting console socket")
    config = saved_config(opts, container_id)
    lx = config.get("linux") or {}
    cgroups = cgroups_of(record)
    types = set(record.get("namespaces") or ())
    init_pid = record["pid"]
    joins = [(kind, f"/proc/{init_pid}/ns/{linux.NAMESPACES[kind][1]}") for kind in types]
    own = {}
    for kind, path in joins:
        try:
            own[kind] = os.stat(path).st_ino == os.stat(f"/proc/self/ns/{linux.NAMESPACES[kind][1]}").st_ino
        except OSError:
            own[kind] = False
    joins = [(k, p) for k, p in joins if not own[k]]
    joins.sort(key=lambda j: _JOIN_ORDER.index(j[0]))
    ns_fds = _open_namespaces(joins)
    if not state.init_alive(record):
        for _, fd in ns_fds:
            os.close(fd)
        raise RuntimeFailure("cannot exec in a stopped container")

    seccomp_filter = None
    if lx.get("seccomp"):
        from berth.runtime.builtin.seccomp import SeccompError, compile_program
        try:
            seccomp_filter = compile_program(lx["seccomp"], os.path.join(opts.root, SECCOMP_CACHE))
        except (SeccompError, KeyError) as e:
            raise RuntimeFailure(f"unable to init seccomp: {e}") from None
    console = None
    if console_socket:
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            console.connect(console_socket)
        except OSError as e:
            raise RuntimeFailure(f"connecting to console socket {console_socket}: {e.strerror}") from None
    # As in create: a failed process is reaped here, not left to the caller.
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctx = _InitContext({**config, "process": process}, record.get("rootfs", "/"), cgroups,
                       seccomp_filter, flags=0, types=types, dir_fd=-1, console=console,
                       preserve_fds=preserve_fds, no_pivot=True, no_new_keyring=True,
                       container_id=container_id)
    stage = os.fork()
    if stage == 0:
        parent.close()
        _stage(child, ctx, ns_fds, create=False)
    child.close()
    for _, fd in ns_fds:
        os.close(fd)
    if console is not None:
        console.close()
    exec_pid = 0
    try:
        try:
            cgroups.add(stage)
        except CgroupError as e:
            raise RuntimeFailure(f"unable to join the container's cgroups: {e}") from None
        _send(parent, type="go")
        while True:
            msg = _recv(parent)
            if msg is None:
                break  # the socket closed on exec: the process runs
            kind = msg.get("type")
            if kind == "pid":
                exec_pid = msg["pid"]
                os.waitpid(stage, 0)
                stage = 0
            elif kind == "error":
                raise RuntimeFailure(msg.get("message", "exec failed"), msg.get("kind", "error"))
        if not exec_pid:
            raise RuntimeFailure("exec failed before the process started")
    except BaseException:
        for pid in (exec_pid, stage):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _reap_children()
        raise
    finally:
        parent.close()
    if pid_file:
        state.write_atomic(os.path.abspath(pid_file), str(exec_pid).encode(), 0o644)
    if detach:
        return 0
    return _wait_forwarding(exec_pid)


def _wait_forwarding(pid: int) -> int:
    """Wait for `pid` (our child now: we are its subreaper), passing on signals."""
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                 signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    for s in forwarded:
        signal.signal(s, forward)
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if reaped == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def _exec_init(sock: socket.socket, ctx: _InitContext) -> None:
    """The exec'd process until execve (in the container's namespaces).  Never returns."""
    try:
        os.setsid()
        if ctx.process.get("terminal"):
            _setup_console(ctx.console, ctx.process.get("consoleSize"), bind_console=False)
        path, env = _finish_process(ctx.process, ctx.seccomp_filter, ctx.userns)
        linux.cloexec_from(3 + ctx.preserve_fds)
    except BaseException as e:  # noqa: BLE001
        _fail(sock, e)
        os._exit(1)
    # The socket is close-on-exec: the runtime reads EOF once execve succeeds.
    _exec(sock.fileno(), path, ctx, env)


# --------------------------------------------------------------------------
# run


def run(opts: Options, container_id: str, bundle: str, *, detach: bool = False,
        keep: bool = False, **create_args) -> int:
    """create + start; unless detached, wait for init and delete the container."""
    if not detach:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    record = create(opts, container_id, bundle, **create_args)
    try:
        start(opts, container_id)
    except BaseException:
        delete(opts, container_id, force=True)
        raise
    if detach:
        return 0
    code = _wait_forwarding(record["pid"])
    if not keep:
        delete(opts, container_id, force=True)
    return code


__all__ = ["Options", "create", "exec_process", "run", "RuntimeFailure"]
