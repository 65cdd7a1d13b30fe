"""Container commands: create, run, start, stop, kill, restart, rm, wait, ps,
logs, attach, rename, pause, unpause, container prune."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from berth.cli import attach as term
from berth.cli import output, runflags
from berth.cli.parser import add_command, filter_arg, filters_of
from berth.units import human_size, parse_timestamp
from berth.container.stdio import parse_detach_keys
from berth.errors import BerthError, InvalidArgument

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedSince}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedSince": "CREATED",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS",
              "Names": "NAMES", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
              "Networks": "NETWORKS", "State": "STATE", "LocalVolumes": "LOCAL VOLUMES"}
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def register(sub) -> None:
    for name, handler, help_ in (("run", cmd_run, "Create and run a new container from an image"),
                                 ("create", cmd_create, "Create a new container")):
        p = add_command(sub, name, handler, help_, add_help=False, engine_error_exit=125,
                        usage=f"berth {name} [OPTIONS] IMAGE [COMMAND] [ARG...]")
        p.add_argument("--help", action="help", help="Print usage")
        runflags.add_flags(p)

    p = add_command(sub, "start", cmd_start, "Start one or more stopped containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")

    p = add_command(sub, "stop", cmd_stop, "Stop one or more running containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", type=int, dest="time", help="Seconds to wait before killing the container")
    p.add_argument("-s", "--signal", help="Signal to send to the container")

    p = add_command(sub, "restart", cmd_restart, "Restart one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-t", "--time", "--timeout", type=int, dest="time", help="Seconds to wait before killing the container")

    p = add_command(sub, "kill", cmd_kill, "Kill one or more running containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container")

    p = add_command(sub, "rm", cmd_rm, "Remove one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the container")
    p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")

    p = add_command(sub, "wait", cmd_wait, "Block until one or more containers stop, then print their exit codes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    p = add_command(sub, "ps", cmd_ps, "List containers")
    _ps_flags(p)

    p = add_command(sub, "logs", cmd_logs, "Fetch the logs of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", default="all", help="Number of lines to show from the end of the logs")
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--since", help="Show logs since timestamp or relative (e.g. 42m for 42 minutes)")
    p.add_argument("--until", help="Show logs before a timestamp or relative (e.g. 42m for 42 minutes)")
    p.add_argument("--details", action="store_true", help="Show extra details provided to logs")

    p = add_command(sub, "attach", cmd_attach, "Attach local standard input, output, and error streams to a running container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", default="true", help="Proxy all received signals to the process")

    p = add_command(sub, "rename", cmd_rename, "Rename a container")
    p.add_argument("container")
    p.add_argument("new_name", metavar="NEW_NAME")

    for name, handler, help_ in (("pause", cmd_pause, "Pause all processes within one or more containers"),
                                 ("unpause", cmd_unpause, "Unpause all processes within one or more containers")):
        p = add_command(sub, name, handler, help_)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")

    container = add_command(sub, "container", None, "Manage containers")
    csub = container.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=type(container))
    container.set_defaults(handler=lambda engine, args: container.print_help())
    p = add_command(csub, "prune", cmd_prune, "Remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", type=filter_arg, help="Provide filter values")
    p = add_command(csub, "ls", cmd_ps, "List containers", aliases=("list", "ps"))
    _ps_flags(p)
    p = add_command(csub, "inspect", cmd_container_inspect, "Display detailed information on one or more containers")
    p.add_argument("names", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    _register_process_commands(sub)


def _ps_flags(p):
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-f", "--filter", action="append", type=filter_arg, help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container (includes all states)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")


def _truthy(value: str) -> bool:
    return str(value).lower() in ("1", "true", "t", "yes")


def _detach_keys(value: str | None) -> bytes:
    return parse_detach_keys(value or os.environ.get("BERTH_DETACH_KEYS") or DEFAULT_DETACH_KEYS)


# -- create / run ----------------------------------------------------------------

def _create(engine, args):
    config, host_config, name = runflags.to_create_body(args)
    # Docker pulls a missing image before creating the container.
    from berth.cli.commands.registry import pull_missing  # its progress display is big

    pull_missing(engine, args.image, policy=args.pull, platform=args.platform, quiet=args.quiet)
    c = engine.containers.create(config, host_config, name)
    if args.cidfile:
        if os.path.exists(args.cidfile):
            raise InvalidArgument(f"container ID file found, make sure the other container isn't "
                                  f"running or delete {args.cidfile}")
        with open(args.cidfile, "w") as f:
            f.write(c.id)
    return c


def cmd_create(engine, args):
    c = _create(engine, args)
    print(c.id)


def cmd_run(engine, args):
    if args.detach and args.attach:
        raise InvalidArgument("Conflicting options: -a and -d")
    detach_keys = _detach_keys(args.detach_keys)
    c = _create(engine, args)
    if args.detach:
        engine.containers.start(c.id)
        print(c.id)
        return 0
    config = c.config
    engine.containers.start(c.id, attach_first=True)
    rows, cols = term.terminal_size() if config.get("Tty") else (0, 0)
    conn = engine.containers.attach(c.id, stdin=bool(config.get("AttachStdin")),
                                    stdout=bool(config.get("AttachStdout")),
                                    stderr=bool(config.get("AttachStderr")), rows=rows, cols=cols)
    return _session(engine, c.id, conn, tty=bool(config.get("Tty")),
                    stdin=bool(config.get("AttachStdin")), detach_keys=detach_keys,
                    sig_proxy=_truthy(args.sig_proxy) and not config.get("Tty"))


def _session(engine, container_id, conn, *, tty, stdin, detach_keys, sig_proxy) -> int:
    previous = {}
    if sig_proxy:
        def forward(signum, _frame):
            try:
                engine.containers.kill(container_id, signum)
            except BerthError:
                pass
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            previous[sig] = signal.signal(sig, forward)
    try:
        result = term.pump(conn, tty=tty, stdin=stdin, detach_keys=detach_keys)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result == term.DETACHED:
        return 0
    if result is None:
        return engine.containers.wait(container_id)
    return result


def cmd_start(engine, args):
    failed = False
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        c = engine.containers.get(args.containers[0])
        tty = bool(c.config.get("Tty"))
        engine.containers.start(c.id, attach_first=True)
        rows, cols = term.terminal_size() if tty else (0, 0)
        conn = engine.containers.attach(c.id, stdin=args.interactive and bool(c.config.get("OpenStdin")),
                                        stdout=True, stderr=True, rows=rows, cols=cols)
        return _session(engine, c.id, conn, tty=tty, stdin=args.interactive,
                        detach_keys=_detach_keys(args.detach_keys), sig_proxy=not tty)
    for ref in args.containers:
        try:
            engine.containers.start(ref)
            print(ref)
        except BerthError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    if failed:
        print("Error: failed to start containers: " + ", ".join(args.containers), file=sys.stderr)
    return 1 if failed else 0


def _each(args, action) -> int:
    failed = False
    for ref in args.containers:
        try:
            action(ref)
            print(ref)
        except BerthError as e:
            print(f"Error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_stop(engine, args):
    return _each(args, lambda ref: engine.containers.stop(ref, args.time, args.signal))


def cmd_restart(engine, args):
    return _each(args, lambda ref: engine.containers.restart(ref, args.time))


def cmd_kill(engine, args):
    return _each(args, lambda ref: engine.containers.kill(ref, args.signal))


def cmd_rm(engine, args):
    return _each(args, lambda ref: engine.containers.remove(ref, force=args.force, volumes=args.volumes))


def cmd_pause(engine, args):
    return _each(args, engine.containers.pause)


def cmd_unpause(engine, args):
    return _each(args, engine.containers.unpause)


def cmd_wait(engine, args):
    failed = False
    for ref in args.containers:
        try:
            print(engine.containers.wait(ref))
            sys.stdout.flush()
        except BerthError as e:
            print(f"Error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_rename(engine, args):
    engine.containers.rename(args.container, args.new_name)


# -- ps, logs, attach ----------------------------------------------------------------

def cmd_ps(engine, args):
    limit = 1 if args.latest else args.last
    summaries = engine.containers.list(all=args.all, filters=filters_of(args.filter), limit=limit,
                                       size=args.size or bool(args.format and "Size" in args.format))
    if args.quiet:
        output.lines(s.id if args.no_trunc else s.id[:12] for s in summaries)
        return
    rows = []
    for s in summaries:
        command = s.command if args.no_trunc else output.ellipsis(s.command, 20)
        rows.append({
            "ID": s.id if args.no_trunc else s.id[:12],
            "Image": s.image if args.no_trunc or len(s.image) < 40 else s.image,
            "Command": f'"{command}"',
            "CreatedSince": output.ago(s.created), "RunningFor": output.ago(s.created),
            "CreatedAt": output.local_time(s.created),
            "Status": s.status, "State": s.state,
            "Ports": _ports_text(s.ports),
            "Names": ",".join(n.lstrip("/") for n in s.names),
            "Labels": ",".join(f"{k}={v}" for k, v in s.labels.items()),
            "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in s.mounts),
            "Networks": ",".join(s.networks),
            "Size": (f"{human_size(s.size_rw)} (virtual {human_size(s.size_root_fs)})"
                     if s.size_rw is not None else ""),
        })
    fmt = args.format or (PS_TABLE + "\t{{.Size}}" if args.size else PS_TABLE)
    output.formatted(fmt, rows, PS_HEADERS)


def _ports_text(ports: list[dict]) -> str:
    out = []
    for p in ports:
        if p.get("PublicPort"):
            out.append(f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
        else:
            out.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(out)


def cmd_logs(engine, args):
    tail = None if args.tail in ("all", "") else int(args.tail)
    if tail is not None and tail < 0:
        tail = None
    since = parse_timestamp(args.since) if args.since else None
    until = parse_timestamp(args.until) if args.until else None
    for entry in engine.containers.logs(args.container, follow=args.follow, tail=tail, since=since,
                                        until=until):
        data = entry.data
        if args.timestamps:
            data = entry.time_text.encode() + b" " + data
        fd = 1 if entry.stream == "stdout" else 2
        term._write(fd, data)


def cmd_attach(engine, args):
    c = engine.containers.get(args.container)
    if not c.running:
        raise InvalidArgument("You cannot attach to a stopped container, start it first")
    if c.state.get("Paused"):
        raise InvalidArgument("You cannot attach to a paused container, unpause it first")
    tty = bool(c.config.get("Tty"))
    stdin = not args.no_stdin and bool(c.config.get("OpenStdin"))
    rows, cols = term.terminal_size() if tty else (0, 0)
    conn = engine.containers.attach(c.id, stdin=stdin, stdout=True, stderr=True, rows=rows, cols=cols)
    return _session(engine, c.id, conn, tty=tty, stdin=stdin, detach_keys=_detach_keys(args.detach_keys),
                    sig_proxy=_truthy(args.sig_proxy) and not tty)


def cmd_prune(engine, args):
    if not args.force and sys.stdin.isatty():
        if not output.confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"):
            return 0
    removed, reclaimed = engine.containers.prune()
    if removed:
        print("Deleted Containers:")
        output.lines(removed)
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")


def cmd_container_inspect(engine, args):
    return output.inspect_each(args.names, lambda n: engine.containers.inspect(n, size=args.size),
                               args.format, kind="container")



def _register_process_commands(sub) -> None:
    p = add_command(sub, "exec", cmd_exec, "Execute a command in a running container",
                    usage="berth exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("--detach-keys", help="Override the key sequence for detaching a container")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")

    p = add_command(sub, "top", cmd_top, "Display the running processes of a container",
                    usage="berth top CONTAINER [ps OPTIONS]")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)

    p = add_command(sub, "diff", cmd_diff, "Inspect changes to files or directories on a container's filesystem")
    p.add_argument("container", metavar="CONTAINER")

    p = add_command(sub, "commit", cmd_commit, "Create a new image from a container's changes",
                    usage="berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Commit message")
    p.add_argument("-p", "--pause", default="true", help="Pause container during commit")

    p = add_command(sub, "export", cmd_export, "Export a container's filesystem as a tar archive")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")


def cmd_exec(engine, args):
    import threading

    from berth.runtime.interface import ConsoleSocket, Stdio

    command = list(args.command)
    if not command:
        raise InvalidArgument('"exec" requires at least 2 arguments.')
    env = []
    for f in args.env_file:
        env += runflags._env_file(f)
    env += [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in args.env]
    kwargs = dict(tty=args.tty, env=env, user=args.user or "", workdir=args.workdir or "",
                  privileged=args.privileged)
    if args.detach:
        engine.containers.exec(args.container, command, detach=True, stdio=Stdio(None, None, None), **kwargs)
        return 0
    if not args.tty:
        stdio = Stdio(stdin=0 if args.interactive else None, stdout=1, stderr=2)
        return engine.containers.exec(args.container, command, stdio=stdio, **kwargs)
    result: dict = {}
    with ConsoleSocket() as console:
        def run():
            try:
                result["code"] = engine.containers.exec(args.container, command,
                                                        console_socket=console.path, **kwargs)
            except BaseException as e:  # surfaced on the main thread
                result["error"] = e
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            master = console.receive(timeout=30)
        except OSError:
            worker.join()
            if "error" in result:
                raise result["error"]
            raise
    term.pump_pty(master, stdin=args.interactive, detach_keys=_detach_keys(args.detach_keys))
    worker.join()
    if "error" in result:
        raise result["error"]
    return result.get("code", 0)


def cmd_top(engine, args):
    result = engine.filesystems.top(args.container, " ".join(args.ps_args) or "-ef")
    from berth.cli.table import render_table
    sys.stdout.write(render_table(result["Titles"], result["Processes"]))


def cmd_diff(engine, args):
    for kind, path in engine.filesystems.changes(args.container):
        print(f"{kind} {path}")


def cmd_commit(engine, args):
    image = engine.filesystems.commit(args.container, repository=args.repository, changes=args.change,
                                      message=args.message, author=args.author, pause=_truthy(args.pause))
    print(image.id)


def cmd_export(engine, args):
    output.archive_to(args.output, lambda f: engine.filesystems.export(args.container, f))
