"""`cp` and `stats`: docker/cli's cp.go and stats.go over the engine's container
filesystems and counters.

`cp` keeps Docker's split between client and daemon: the daemon's part
(stat, archive, extract in the container) is berth.container.archive's
`stat_path`, `archive_path` and `extract_to_dir`; this module decides, as the
docker CLI does, which path to ask for and how to unpack the answer.  Errors
the daemon's part raises are printed as Docker prints them ("Error response
from daemon: ..."), the client's own bare.
"""

from __future__ import annotations

import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from berth.cli.lazy import LazyModule
from berth.cli.parser import add_command
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.units import bytes_size, human_size

archive = LazyModule("berth.container.archive")
cstats = LazyModule("berth.container.stats")
table = LazyModule("berth.cli.table")

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
               "{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
# The terminal codes of docker stats' redraw: home, erase to end of line, erase below.
HOME, ERASE_LINE, ERASE_BELOW, CLEAR = "\033[H", "\033[K", "\033[J", "\033[2J"


def register(sub) -> None:
    """`cp` and `stats` under `sub`: the top level, or `container`'s subcommands."""
    _add_cp(sub)
    _add_stats(sub)


def _add_cp(sub) -> None:
    p = add_command(sub, "cp", cmd_cp, "Copy files/folders between a container and the local filesystem",
                    usage="berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
                          "       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH")
    p.add_argument("source", metavar="SRC_PATH")
    p.add_argument("destination", metavar="DEST_PATH")
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symlinks in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress progress output during copy. Progress output is automatically suppressed "
                        "if no terminal is attached")


def _add_stats(sub) -> None:
    p = add_command(sub, "stats", cmd_stats, "Display a live stream of container(s) resource usage statistics",
                    usage="berth stats [OPTIONS] [CONTAINER...]")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--format", help="Format output using a custom template")


# -- cp ------------------------------------------------------------------------------


class _DaemonError(Exception):
    """A failure of the daemon's part of a copy, printed the way the docker CLI prints one."""


@contextmanager
def _daemon():
    try:
        yield
    except BerthError as e:
        raise _DaemonError(str(e)) from None


@contextmanager
def _daemon_stream(cm):
    """Enter the daemon's context manager `cm`; only its own errors are the daemon's."""
    with _daemon():
        value = cm.__enter__()
    try:
        yield value
    except BaseException as e:
        if not cm.__exit__(type(e), e, e.__traceback__):
            raise
    else:
        with _daemon():
            cm.__exit__(None, None, None)


class _Counting:
    """Counts the bytes of an archive going by, for the summary line."""

    def __init__(self, stream):
        self.stream = stream
        self.n = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.n += len(data)
        return data

    def write(self, data) -> int:
        self.n += len(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()


def copy_summary(content_size: int, transferred: int, dest: str) -> str:
    if content_size != transferred:
        return f"Successfully copied {human_size(content_size)} (transferred {human_size(transferred)}) to {dest}"
    return f"Successfully copied {human_size(content_size)} to {dest}"


def cmd_cp(engine, args):
    if not args.source:
        return _fail("source can not be empty")
    if not args.destination:
        return _fail("destination can not be empty")
    src_container, src_path = archive.split_cp_arg(args.source)
    dst_container, dst_path = archive.split_cp_arg(args.destination)
    if src_container and dst_container:
        return _fail("copying between containers is not supported")
    if not src_container and not dst_container:
        return _fail("must specify at least one container source")
    quiet = args.quiet or not sys.stdout.isatty()
    try:
        if src_container:
            summary = _copy_from_container(engine.containers, src_container, src_path, dst_path,
                                           follow_link=args.follow_link)
        else:
            summary = _copy_to_container(engine.containers, dst_container, src_path, dst_path,
                                         follow_link=args.follow_link, copy_uid_gid=args.archive)
    except _DaemonError as e:
        return _fail(f"Error response from daemon: {e}")
    except BerthError as e:
        return _fail(str(e))
    except BrokenPipeError:
        raise  # the reader of `-` went away: main's business
    except OSError as e:
        return _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e.strerror or e))
    if summary and not quiet:
        print(summary, file=sys.stderr)
    return 0


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _copy_from_container(manager, container: str, src: str, dst: str, *, follow_link: bool) -> str | None:
    if dst != "-":
        dst = archive.resolve_local_path(dst)
    archive.validate_output_path(dst)
    rebase = ""
    if follow_link:
        try:
            with _daemon():
                st = _files(manager).stat_path(manager, container, src)
        except _DaemonError:
            st = None  # as docker: the archive request reports the problem
        if st is not None and st.is_symlink:
            target = st.link_target
            if not target.startswith("/"):
                target = archive.go_join(archive.split_path_dir_entry(src)[0], target)
            src, rebase = archive.get_rebase_name(src, target)
    with _daemon_stream(_files(manager).archive_path(manager, container, src)) as (st, stream):
        if dst == "-":
            out = sys.stdout.buffer
            shutil.copyfileobj(stream, out)
            out.flush()
            return None
        counted = _Counting(stream)
        archive.copy_to(counted, archive.CopyInfo(src, exists=True, is_dir=st.is_dir, rebase_name=rebase), dst)
    return copy_summary(counted.n if st.is_dir else st.size, counted.n, dst)


def _copy_to_container(manager, container: str, src: str, dst: str, *, follow_link: bool,
                       copy_uid_gid: bool) -> str:
    if src != "-":
        src = archive.resolve_local_path(src)
    dst_info = archive.CopyInfo(dst)
    st = _stat_or_none(manager, container, dst)
    if st is not None:
        if st.is_symlink:
            target = st.link_target
            if not target.startswith("/"):
                target = archive.go_join(archive.split_path_dir_entry(dst)[0], target)
            dst_info = archive.CopyInfo(target)
            st = _stat_or_none(manager, container, target)
        if st is not None:
            problem = archive.validate_output_path_file_mode(st.mode)
            if problem:
                raise InvalidArgument(f'destination "{container}:{dst}" must be a directory or a regular file: '
                                      f"{problem}")
            dst_info = archive.CopyInfo(dst_info.path, exists=True, is_dir=st.is_dir)
    if src == "-":
        if not dst_info.is_dir:
            raise InvalidArgument(f'destination "{container}:{dst}" must be a directory')
        counted = _Counting(sys.stdin.buffer)
        with _daemon():
            _files(manager).extract_to_dir(manager, container, dst_info.path, counted, copy_uid_gid=copy_uid_gid)
        return copy_summary(counted.n, counted.n, f"{container}:{dst_info.path}")
    src_info = archive.copy_info_source_path(src, follow_link)
    content_size = archive.local_content_size(src_info.path)
    dst_dir, renames = archive.prepare_archive_copy(src_info, dst_info)
    transferred = 0

    def produce(out) -> None:
        nonlocal transferred
        counted = _Counting(out)
        archive.tar_resource(src_info, counted, renames)
        transferred = counted.n

    with _daemon():
        _files(manager).extract_to_dir(manager, container, dst_dir, produce, copy_uid_gid=copy_uid_gid)
    return copy_summary(content_size, transferred, f"{container}:{dst_info.path}")


def _files(manager):
    """The daemon's part of a copy: berth.container.archive on the local engine's
    containers; a daemon's client (berth -H) has stand-ins that ask the daemon."""
    return getattr(manager, "archive", archive)


def _stat_or_none(manager, container: str, path: str):
    """The daemon's stat of `path`, None on any failure: docker's client carries
    on and lets the copy itself report what is wrong."""
    try:
        return _files(manager).stat_path(manager, container, path)
    except BerthError:
        return None


# -- stats ---------------------------------------------------------------------------


@dataclass
class StatsEntry:
    """One row of `docker stats` (docker/cli's StatsEntry)."""

    container: str
    name: str = ""
    id: str = ""
    cpu_percentage: float = 0.0
    memory: float = 0.0
    memory_limit: float = 0.0
    memory_percentage: float = 0.0
    network_rx: float = 0.0
    network_tx: float = 0.0
    block_read: float = 0.0
    block_write: float = 0.0
    pids_current: int = 0
    invalid: bool = False


def calculate_cpu_percent_unix(previous: dict, current: dict) -> float:
    cpu_delta = current["cpu_usage"]["total_usage"] - previous["cpu_usage"]["total_usage"]
    system_delta = current.get("system_cpu_usage", 0) - previous.get("system_cpu_usage", 0)
    online = current.get("online_cpus") or len(current["cpu_usage"].get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def calculate_mem_usage_unix_no_cache(memory: dict) -> float:
    """Usage without the page cache that could be reclaimed: total_inactive_file
    on cgroup v1, inactive_file on v2 (docker/cli, cadvisor, CRI)."""
    usage = memory.get("usage", 0)
    stats = memory.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        return float(usage - stats["total_inactive_file"])
    if stats.get("inactive_file", 0) < usage:
        return float(usage - stats.get("inactive_file", 0))
    return float(usage)


def calculate_block_io(blkio: dict) -> tuple[int, int]:
    read = write = 0
    for entry in blkio.get("io_service_bytes_recursive") or []:
        op = entry.get("op", "")[:1].lower()
        if op == "r":
            read += entry["value"]
        elif op == "w":
            write += entry["value"]
    return read, write


def calculate_network(networks: dict | None) -> tuple[int, int]:
    rx = tx = 0
    for v in (networks or {}).values():
        rx += v["rx_bytes"]
        tx += v["tx_bytes"]
    return rx, tx


def stats_entry(container: str, response: dict) -> StatsEntry:
    """A row from one StatsJSON, as docker/cli's collect() computes it."""
    memory = calculate_mem_usage_unix_no_cache(response["memory_stats"])
    limit = float(response["memory_stats"].get("limit", 0))
    rx, tx = calculate_network(response.get("networks"))
    read, write = calculate_block_io(response["blkio_stats"])
    return StatsEntry(container=container, name=response["name"], id=response["id"],
                      cpu_percentage=calculate_cpu_percent_unix(response["precpu_stats"], response["cpu_stats"]),
                      memory=memory, memory_limit=limit,
                      memory_percentage=memory / limit * 100.0 if limit else 0.0,
                      network_rx=rx, network_tx=tx, block_read=read, block_write=write,
                      pids_current=response["pids_stats"].get("current", 0))


def stats_row(s: StatsEntry, trunc: bool) -> dict:
    """The template fields of a row (docker/cli's statsContext)."""
    def guarded(text: str, invalid: str = "--") -> str:
        return invalid if s.invalid else text

    return {
        "Container": s.container,
        "Name": s.name[1:] if len(s.name) > 1 else "--",
        "ID": s.id[:12] if trunc else s.id,
        "CPUPerc": guarded(f"{s.cpu_percentage:.2f}%"),
        "MemUsage": guarded(f"{bytes_size(s.memory)} / {bytes_size(s.memory_limit)}", "-- / --"),
        "MemPerc": guarded(f"{s.memory_percentage:.2f}%"),
        "NetIO": guarded(f"{human_size(s.network_rx)} / {human_size(s.network_tx)}"),
        "BlockIO": guarded(f"{human_size(s.block_read)} / {human_size(s.block_write)}"),
        "PIDs": guarded(str(s.pids_current)),
    }


class _Tracker:
    """The containers `docker stats` follows and their previous samples.

    Without names it follows what `ps` (or `ps -a`) lists, picking up new
    containers and, without -a, dropping those that stopped, as docker's
    event handlers do; named containers stay until the command ends.
    """

    def __init__(self, manager, names: list[str], all_: bool):
        self.manager = manager
        self.names = names
        self.all = all_
        self.keys: list[str] = list(dict.fromkeys(names))
        self.previous: dict[str, cstats.Sample | None] = {}

    def refresh(self) -> None:
        if self.names:
            return
        listed = [s.id for s in self.manager.list(all=self.all)]
        keep = [k for k in self.keys if k in listed or self.all and self._exists(k)]
        self.keys = keep + [k for k in listed if k not in keep]

    def _exists(self, key: str) -> bool:
        try:
            self.manager.get(key)
            return True
        except NotFound:
            return False

    def entries(self) -> list[StatsEntry]:
        out = []
        for key in self.keys:
            try:
                c = self.manager.get(key)
            except NotFound:
                out.append(StatsEntry(container=key, invalid=True))
                continue
            # A daemon's client (berth -H) samples through the daemon.
            current = getattr(self.manager, "stats", cstats).sample(c)
            out.append(stats_entry(key, cstats.stats_response(c, current, self.previous.get(key))))
            self.previous[key] = current
        return out


def cmd_stats(engine, args):
    manager = engine.containers
    errors = []
    for name in dict.fromkeys(args.containers):
        try:
            manager.get(name)
        except NotFound as e:
            errors.append(f"Error response from daemon: {e}")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    tracker = _Tracker(manager, args.containers, args.all)
    tracker.refresh()
    fmt = args.format or "table"
    trunc = not args.no_trunc

    def render(entries: list[StatsEntry]) -> str:
        return table.format_rows(fmt, [stats_row(e, trunc) for e in entries], STATS_HEADERS,
                           default_table=STATS_TABLE, type_name="*container.statsContext")

    if args.no_stream:
        # As dockerd's one-off stats: CPU from two samples an interval apart.
        tracker.entries()
        time.sleep(cstats.INTERVAL)
        entries = tracker.entries()
        if entries:
            sys.stdout.write(render(entries))
        return 0
    tty = sys.stdout.isatty()
    if tty:
        sys.stdout.write(CLEAR)
    while True:
        tracker.refresh()
        text = render(tracker.entries())
        if tty:
            text = HOME + "".join(line + ERASE_LINE + "\n" for line in text.splitlines()) + ERASE_BELOW
        sys.stdout.write(text)
        sys.stdout.flush()
        if not tracker.keys and args.containers:
            return 0
        time.sleep(cstats.INTERVAL)
