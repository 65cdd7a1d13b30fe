"""What the `berth` command runs: a thin client of a warm berth.

A berth command is a new Python process, and interpreter start (site and
its .pth files) plus berth's imports cost more than the work of a short
command such as `run --rm IMAGE true`.  Mercurial's chg answers the same
problem the same way: a resident process with everything imported
(`berth.cli.warmserver`) forks a worker per command, and the client hands
it what makes up a process from the user's side: argv, environment,
working directory, umask and the stdio descriptors themselves (SCM_RIGHTS,
so a terminal stays a terminal and a pipe a pipe).  The client relays the
signals it receives to the worker's process group and ends as the worker
ended: the same exit code, or killed by the same signal.

So this module runs under `python -I -S` and imports only built-in modules
(posix, _socket, _signal, fcntl: not even os).  Whenever the warm path is
not available (`BERTH_CLI_SERVER=0`, `berth daemon`, a closed stdio
descriptor, a server that cannot start, a caller the server refuses to
stand in for: other namespaces, credentials or capabilities) it runs the
CLI itself, in a full interpreter, as `python -m berth` would.

One server per user, interpreter, berth checkout and PYTHON* environment
(the key), listening on a SOCK_SEQPACKET socket in a 0700 directory:
/run/berth/cli as root, else $XDG_RUNTIME_DIR/berth-cli or
/tmp/berth-cli-UID; `BERTH_CLI_SERVER_DIR` names another (the test suite
uses a private one).  The first client binds the socket and passes the
listening descriptor to the server it spawns, then connects at once: the
connection waits in the backlog while the server imports, so nobody polls.

The protocol, one message per datagram, fields separated by NUL:
  client: run KEY CWD UMASK ARGC ARG... ENV...   with descriptors 0, 1, 2
          stop KEY                               (the server exits when idle)
  server: started PID | refused REASON           (refused: nothing ran)
  client: signal N                               (any number of times)
  server: exit CODE | signal N                   (the last message)
"""

from __future__ import annotations

import _signal
import _socket
import posix
import sys

PROTOCOL = b"berth-cli 1"
OFF = ("0", "off", "no", "false")
# Commands that must run in a process of their own: the daemon lives for
# days and manages its own fork server.
DIRECT_COMMANDS = ("daemon",)
# What a terminal or a parent may send a foreground `berth`; the worker
# decides what each means.  SIGTSTP stays with the client (Ctrl-Z stops it).
FORWARDED_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGALRM")
MAX_MESSAGE = 1 << 20
# Global flags that take a value, for finding the command word before parsing.
VALUE_FLAGS = ("--root", "-H", "--host")


def command_word(argv: list[str]) -> str | None:
    """The command named in argv (`run` in `berth --root R run ...`), if any."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in VALUE_FLAGS:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return arg
    return None


def package_parent() -> str:
    """The directory holding the berth package this module belongs to."""
    return __file__.rsplit("/", 3)[0]       # .../berth/cli/launcher.py


def _bootstrap(module: str, call: str = "main()") -> str:
    """Python code that runs `module`'s main from this checkout, whatever sys.path holds."""
    return f"import sys; sys.path.insert(0, {package_parent()!r}); from {module} import main; {call}"


def command() -> list[str]:
    """argv that runs the launcher (what the installed `berth` script does)."""
    return [sys.executable, "-I", "-S", "-c", _bootstrap("berth.cli.launcher")]


def script() -> str:
    """The text of the `berth` script that scripts/install.sh installs."""
    return (f"#!{sys.executable} -IS\n"
            "# berth's launcher, written by scripts/install.sh (berth.cli.launcher.script).\n"
            + _bootstrap("berth.cli.launcher") + "\n")


def environ() -> dict[str, str]:
    return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in posix.environ.items()}


def server_key(env: dict[str, str]) -> str:
    """What a server must share with its clients to serve them: FNV-1a of the
    user, the interpreter, the checkout and the PYTHON* variables."""
    parts = [str(posix.getuid()), sys.executable, package_parent()]
    parts += sorted(f"{k}={v}" for k, v in env.items() if k.startswith("PYTHON"))
    h = 0xcbf29ce484222325
    for byte in "\0".join(parts).encode("utf-8", "surrogateescape"):
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def server_dir(env: dict[str, str]) -> str:
    if env.get("BERTH_CLI_SERVER_DIR"):
        return env["BERTH_CLI_SERVER_DIR"]
    uid = posix.getuid()
    if uid == 0:
        return "/run/berth/cli"
    if env.get("XDG_RUNTIME_DIR"):
        return env["XDG_RUNTIME_DIR"] + "/berth-cli"
    return f"/tmp/berth-cli-{uid}"


def socket_path(env: dict[str, str], key: str) -> str:
    return f"{server_dir(env)}/{key}.sock"


def main() -> None:
    argv = sys.argv[1:]
    env = environ()
    if env.get("BERTH_CLI_SERVER", "").lower() in OFF or command_word(argv) in DIRECT_COMMANDS:
        direct(argv)
    try:
        for fd in (0, 1, 2):
            posix.fstat(fd)
    except OSError:
        direct(argv)
    key = server_key(env)
    for _attempt in range(2):
        try:
            conn = connect(env, key, start=True)
        except OSError:
            direct(argv)
        try:
            reply = request(conn, key, argv)
        except OSError:
            reply = b""
        if reply.startswith(b"started "):
            follow(conn)
        conn.close()
        # b"": the server went away before starting anything (it found its
        # code changed, or timed out idle): a fresh one may serve.
        if reply and not reply.startswith(b"refused stale"):
            break
    direct(argv)


def direct(argv: list[str]) -> None:
    """Run the CLI in a full interpreter (site, PYTHON* variables and all)."""
    posix.execv(sys.executable, [sys.executable, "-c", _bootstrap("berth.cli.main"), *argv])


def connect(env: dict[str, str], key: str, *, start: bool) -> _socket.socket:
    """A connection to the server, which is started first when none listens."""
    path = socket_path(env, key)
    try:
        return _connected(path)
    except (FileNotFoundError, ConnectionRefusedError):
        if not start:
            raise
    import fcntl

    directory = server_dir(env)
    _make_private_dir(directory)
    lock = posix.open(f"{directory}/{key}.lock", posix.O_RDWR | posix.O_CREAT | posix.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _connected(path)     # another client started one meanwhile
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        try:
            posix.unlink(path)          # a dead server's
        except FileNotFoundError:
            pass
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        try:
            listener.bind(path)
            listener.listen(64)
            _spawn_server(listener.fileno(), path, key)
        finally:
            listener.close()
        return _connected(path)
    finally:
        posix.close(lock)


def _connected(path: str) -> _socket.socket:
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        raise
    return conn


def _make_private_dir(path: str) -> None:
    parent = path.rsplit("/", 1)[0]
    if parent and parent != path:
        try:
            posix.mkdir(parent, 0o755)
        except FileExistsError:
            pass
    try:
        posix.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = posix.lstat(path)
    if st.st_uid != posix.getuid() or st.st_mode & 0o077 or (st.st_mode & 0o170000) != 0o040000:
        raise PermissionError(f"{path} is not a private directory of this user")


def _spawn_server(listen_fd: int, path: str, key: str) -> None:
    posix.set_inheritable(listen_fd, True)
    code = _bootstrap("berth.cli.warmserver", "main(sys.argv[1:])")
    # -P: not the caller's working directory on sys.path.  A session of its
    # own and /dev/null for stdio: it outlives this client and holds none of
    # its terminal or pipes.
    argv = [sys.executable, "-P", "-c", code, "berth.cli.warmserver", path, str(listen_fd), key]
    posix.posix_spawn(sys.executable, argv, posix.environ, setsid=True, file_actions=[
        (posix.POSIX_SPAWN_OPEN, 0, "/dev/null", posix.O_RDWR, 0),
        (posix.POSIX_SPAWN_DUP2, 0, 1),
        (posix.POSIX_SPAWN_DUP2, 0, 2),
    ])


def request(conn: _socket.socket, key: str, argv: list[str]) -> bytes:
    """Send the command; the server's first answer."""
    umask = posix.umask(0o022)
    posix.umask(umask)
    fields = [PROTOCOL, b"run", key.encode(), posix.getcwdb(), b"%o" % umask, b"%d" % len(argv)]
    fields += [a.encode("utf-8", "surrogateescape") for a in argv]
    fields += [b"%s=%s" % kv for kv in posix.environ.items()]
    conn.sendmsg([b"\0".join(fields)], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _fds(0, 1, 2))])
    return conn.recv(MAX_MESSAGE)


def _fds(*fds: int) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)


def follow(conn: _socket.socket) -> None:
    """Relay signals to the worker until it ends; then end the same way."""
    def forward(signum, _frame):
        try:
            conn.send(b"signal %d" % signum)
        except OSError:
            pass

    for name in FORWARDED_SIGNALS:
        _signal.signal(getattr(_signal, name), forward)
    while True:
        try:
            message = conn.recv(MAX_MESSAGE)
        except OSError:
            message = b""
        if message.startswith(b"exit "):
            posix._exit(int(message[5:]))
        if message.startswith(b"signal "):
            signum = int(message[7:])
            _signal.signal(signum, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum])
            posix.kill(posix.getpid(), signum)
            posix._exit(128 + signum)
        if not message:
            posix.write(2, b"berth: lost the berth CLI server\n")
            posix._exit(125)


def stop_server(env: dict[str, str] | None = None) -> bool:
    """Ask the server for this environment to exit once its commands end;
    whether one was running."""
    env = environ() if env is None else env
    key = server_key(env)
    try:
        conn = connect(env, key, start=False)
    except OSError:
        return False
    try:
        conn.send(b"\0".join([PROTOCOL, b"stop", key.encode()]))
        conn.recv(MAX_MESSAGE)
    finally:
        conn.close()
    return True


if __name__ == "__main__":
    main()
