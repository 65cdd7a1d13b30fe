"""runc-compatible command line of the built-in runtime.

    python -m berth.runtime.builtin [--root DIR] [--log FILE] [--log-format text|json]
        create [--bundle DIR] [--console-socket SOCK] [--pid-file FILE]
               [--preserve-fds N] [--no-pivot] [--no-new-keyring] ID
        run    (create's flags) [--detach] [--keep] ID
        start ID | state ID | delete [--force] ID | pause ID | resume ID | ps ID
        kill [--all] ID [SIGNAL]
        exec [--process FILE] [--console-socket SOCK] [--pid-file FILE] [--detach]
             [--tty] [--cwd DIR] [--env K=V]... [--user UID[:GID]] [--preserve-fds N]
             ID [COMMAND [ARG...]]

Errors are printed as runc prints them (and logged as JSON lines with
--log-format json); the exit status is 1, or the process's for `run` and `exec`.
A hand-rolled parser keeps argparse's import cost off every container start.
"""

import json
import os
import signal
import sys

DEFAULT_ROOT = "/run/berth-runtime"

# name -> (dest, takes value, repeatable)
_GLOBAL = {
    "--root": ("root", True, False),
    "--log": ("log", True, False),
    "--log-format": ("log_format", True, False),
    "--debug": ("debug", False, False),
    "--systemd-cgroup": ("systemd_cgroup", False, False),
    "--rootless": ("rootless", True, False),
    "--help": ("help", False, False),
    "-h": ("help", False, False),
}
_CREATE = {
    "--bundle": ("bundle", True, False), "-b": ("bundle", True, False),
    "--console-socket": ("console_socket", True, False),
    "--pid-file": ("pid_file", True, False),
    "--preserve-fds": ("preserve_fds", True, False),
    "--no-pivot": ("no_pivot", False, False),
    "--no-new-keyring": ("no_new_keyring", False, False),
}
_COMMANDS = {
    "create": _CREATE,
    "run": {**_CREATE, "--detach": ("detach", False, False), "-d": ("detach", False, False),
            "--keep": ("keep", False, False)},
    "start": {},
    "state": {},
    "pause": {},
    "resume": {},
    "ps": {"--format": ("format", True, False), "-f": ("format", True, False)},
    "kill": {"--all": ("all", False, False), "-a": ("all", False, False)},
    "delete": {"--force": ("force", False, False), "-f": ("force", False, False)},
    "exec": {
        "--process": ("process", True, False), "-p": ("process", True, False),
        "--console-socket": ("console_socket", True, False),
        "--pid-file": ("pid_file", True, False),
        "--detach": ("detach", False, False), "-d": ("detach", False, False),
        "--tty": ("tty", False, False), "-t": ("tty", False, False),
        "--cwd": ("cwd", True, False),
        "--env": ("env", True, True), "-e": ("env", True, True),
        "--user": ("user", True, False), "-u": ("user", True, False),
        "--additional-gids": ("additional_gids", True, True), "-g": ("additional_gids", True, True),
        "--cap": ("cap", True, True), "-c": ("cap", True, True),
        "--no-new-privs": ("no_new_privs", False, False),
        "--preserve-fds": ("preserve_fds", True, False),
    },
}


class UsageError(Exception):
    pass


def _parse(args: list[str], table: dict, stop_at_positional: bool) -> tuple[dict, list[str]]:
    values: dict = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positional.extend(args[i + 1:])
            break
        if arg.startswith("-") and len(arg) > 1 and not positional:
            name, eq, inline = arg.partition("=")
            if name not in table:
                raise UsageError(f"flag provided but not defined: {name}")
            dest, takes_value, repeat = table[name]
            if takes_value:
                if eq:
                    value = inline
                else:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"flag needs an argument: {name}")
                    value = args[i]
                if repeat:
                    values.setdefault(dest, []).append(value)
                else:
                    values[dest] = value
            else:
                values[dest] = inline.lower() not in ("false", "0") if eq else True
        else:
            positional.append(arg)
            if stop_at_positional:
                positional.extend(args[i + 1:])
                break
        i += 1
    return values, positional


class _Log:
    def __init__(self, path: str | None, fmt: str):
        self.path = path
        self.json = fmt == "json"

    def error(self, message: str) -> None:
        if self.path:
            from berth.runtime.builtin.state import timestamp
            if self.json:
                line = json.dumps({"level": "error", "msg": message, "time": timestamp()})
            else:
                line = f'time="{timestamp()}" level=error msg="{message}"'
            try:
                with open(self.path, "a") as f:
                    f.write(line + "\n")
                return
            except OSError:
                pass
        print(message, file=sys.stderr, flush=True)


def signal_number(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None


def _one_id(positional: list[str], command: str) -> str:
    if len(positional) != 1:
        raise UsageError(f'"{command}" requires exactly 1 argument')
    return positional[0]


def _exec_process_from_flags(flags: dict, command: list[str]) -> dict:
    if flags.get("process"):
        with open(flags["process"], "rb") as f:
            return json.loads(f.read())
    if not command:
        raise UsageError("exec: no command given (use --process or COMMAND)")
    uid, gid = 0, 0
    if flags.get("user"):
        u, _, g = flags["user"].partition(":")
        uid, gid = int(u), int(g or 0)
    process = {
        "args": command,
        "env": flags.get("env") or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": flags.get("cwd") or "/",
        "terminal": bool(flags.get("tty")),
        "user": {"uid": uid, "gid": gid,
                 "additionalGids": [int(g) for g in flags.get("additional_gids") or ()]},
        "noNewPrivileges": bool(flags.get("no_new_privs")),
    }
    if flags.get("cap"):
        caps = list(flags["cap"])
        process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    return process


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    log = _Log(None, "text")
    try:
        global_flags, rest = _parse(argv, _GLOBAL, stop_at_positional=True)
        log = _Log(global_flags.get("log"), global_flags.get("log_format", "text"))
        if global_flags.get("help") or rest[:1] == ["help"]:
            print(__doc__)
            return 0
        if not rest:
            raise UsageError("no command given; see `python -m berth.runtime.builtin --help`")
        command, args = rest[0], rest[1:]
        if command not in _COMMANDS:
            raise UsageError(f"no such command: {command}")
        if global_flags.get("systemd_cgroup"):
            raise UsageError("--systemd-cgroup is not supported by the built-in runtime")
        flags, positional = _parse(args, _COMMANDS[command], stop_at_positional=command == "exec")
        root = os.path.abspath(global_flags.get("root") or DEFAULT_ROOT)
        return _dispatch(root, command, flags, positional)
    except UsageError as e:
        log.error(str(e))
        return 1
    except Exception as e:  # noqa: BLE001 - every failure becomes runc-style output
        from berth.runtime.builtin.state import RuntimeFailure
        if isinstance(e, RuntimeFailure):
            log.error(f"{_prefix(argv)}{e}")
        else:
            log.error(f"{_prefix(argv)}{type(e).__name__}: {e}")
        return 1


def _prefix(argv: list[str]) -> str:
    for cmd in ("create", "run", "exec"):
        if cmd in argv:
            return f"{cmd} failed: " if cmd != "exec" else "exec failed: "
    return ""


def _dispatch(root: str, command: str, flags: dict, positional: list[str]) -> int:
    if command == "state":
        from berth.runtime.builtin.lifecycle import Options, describe
        print(json.dumps(describe(Options(root), _one_id(positional, command)), indent=2))
        return 0
    if command == "start":
        from berth.runtime.builtin.lifecycle import Options, start
        start(Options(root), _one_id(positional, command))
        return 0
    if command in ("create", "run"):
        from berth.runtime.builtin import container
        create_args = {
            "console_socket": flags.get("console_socket"),
            "pid_file": flags.get("pid_file"),
            "preserve_fds": int(flags.get("preserve_fds") or 0),
            "no_pivot": bool(flags.get("no_pivot")),
            "no_new_keyring": bool(flags.get("no_new_keyring")),
        }
        container_id = _one_id(positional, command)
        bundle = flags.get("bundle") or os.getcwd()
        if command == "create":
            container.create(container.Options(root), container_id, bundle, **create_args)
            return 0
        return container.run(container.Options(root), container_id, bundle,
                             detach=bool(flags.get("detach")), keep=bool(flags.get("keep")),
                             **create_args)
    if command == "kill":
        from berth.runtime.builtin.lifecycle import Options, kill
        if not 1 <= len(positional) <= 2:
            raise UsageError('"kill" requires a container id and an optional signal')
        signum = signal_number(positional[1]) if len(positional) == 2 else int(signal.SIGTERM)
        kill(Options(root), positional[0], signum, bool(flags.get("all")))
        return 0
    if command == "delete":
        from berth.runtime.builtin.lifecycle import Options, delete
        delete(Options(root), _one_id(positional, command), bool(flags.get("force")))
        return 0
    if command in ("pause", "resume"):
        from berth.runtime.builtin import lifecycle
        getattr(lifecycle, command)(lifecycle.Options(root), _one_id(positional, command))
        return 0
    if command == "ps":
        from berth.runtime.builtin.lifecycle import Options, processes
        pids = processes(Options(root), _one_id(positional, command))
        print(json.dumps(pids) if flags.get("format") == "json" else "\n".join(map(str, pids)))
        return 0
    if command == "exec":
        from berth.runtime.builtin.container import Options, exec_process
        if not positional:
            raise UsageError('"exec" requires a container id')
        process = _exec_process_from_flags(flags, positional[1:])
        return exec_process(Options(root), positional[0], process,
                            console_socket=flags.get("console_socket"),
                            pid_file=flags.get("pid_file"), detach=bool(flags.get("detach")),
                            preserve_fds=int(flags.get("preserve_fds") or 0))
    raise UsageError(f"no such command: {command}")
