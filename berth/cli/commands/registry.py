"""Registry commands: pull, push, login, logout, search.

Progress is drawn the way the docker CLI draws it: a line per layer with a
bar (rich) on a terminal; on anything else, one plain line per status
change and no byte counts; nothing but the result with -q.
"""

from __future__ import annotations

import getpass
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from berth.cli import output
from berth.cli.parser import add_command, filter_arg, filters_of
from berth.errors import InvalidArgument, Unauthorized
from berth.image.reference import parse

if TYPE_CHECKING:     # `run` imports this module for pull_missing
    from berth.registry.progress import Progress

SEARCH_TABLE = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
SEARCH_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                  "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"}
SEARCH_DESCRIPTION_WIDTH = 45
PLAINTEXT_WARNING = ("\nWARNING! Your credentials are stored unencrypted in '{path}'.\n"
                     "Configure a credential helper to remove this warning. See\n"
                     "https://docs.docker.com/go/credential-store/\n")


def register(sub) -> None:
    p = add_command(sub, "pull", cmd_pull, "Download an image from a registry",
                    usage="berth pull [OPTIONS] NAME[:TAG|@DIGEST]")
    pull_flags(p)
    p = add_command(sub, "push", cmd_push, "Upload an image to a registry",
                    usage="berth push [OPTIONS] NAME[:TAG]")
    push_flags(p)
    p = add_command(sub, "login", cmd_login, "Authenticate to a registry",
                    usage="berth login [OPTIONS] [SERVER]")
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password or Personal Access Token (PAT)")
    p.add_argument("--password-stdin", action="store_true",
                   help="Take the Password or Personal Access Token (PAT) from stdin")
    p = add_command(sub, "logout", cmd_logout, "Log out from a registry", usage="berth logout [SERVER]")
    p.add_argument("server", nargs="?", metavar="SERVER")
    p = add_command(sub, "search", cmd_search, "Search for an image in a registry",
                    usage="berth search [OPTIONS] TERM")
    p.add_argument("term", metavar="TERM")
    p.add_argument("-f", "--filter", action="append", type=filter_arg,
                   help="Filter output based on conditions provided")
    p.add_argument("--format", help="Pretty-print search using a Go template")
    p.add_argument("--limit", type=int, default=25, help="Max number of search results")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")


def pull_flags(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images in the repository")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", default=True, help="Skip image verification")


def push_flags(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image to the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", default=True, help="Skip image signing")


# -- progress ----------------------------------------------------------------

def _rich_progress(stream: TextIO):
    """rich's Progress laid out as Docker's: lines in the order they came,
    each layer's line (`id: status [bar] done/total`) updated in place.
    (rich is imported here: most commands never draw a bar.)"""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress as RichProgress, ProgressColumn, TextColumn
    from rich.text import Text

    class WhenTransferring(ProgressColumn):
        """The wrapped column, shown only while bytes are moving for that layer."""

        def __init__(self, inner: ProgressColumn):
            super().__init__()
            self.inner = inner

        def render(self, task):
            return self.inner.render(task) if task.fields.get("moving") else Text("")

    class DockerProgress(RichProgress):
        def __init__(self, *columns, **options):
            self.lines: list = []   # fixed text, or the task of a line that changes
            super().__init__(*columns, **options)

        def get_renderables(self):
            tasks = {t.id: t for t in self.tasks}
            for item in list(self.lines):
                yield Text(item) if isinstance(item, str) else self.make_tasks_table([tasks[item]])

    return DockerProgress(TextColumn("{task.fields[layer]}: {task.description}"),
                          WhenTransferring(BarColumn(bar_width=50)), WhenTransferring(DownloadColumn()),
                          console=Console(file=stream, highlight=False), auto_refresh=True,
                          refresh_per_second=8)


class ProgressView:
    """A registry progress sink that draws on `stream`; use it as a context manager."""

    def __init__(self, stream: TextIO, *, quiet: bool = False, tty: bool | None = None):
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}
        self._rich = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "ProgressView":
        if self.tty and not self.quiet:
            # Started by the first event, so that nothing is drawn before there is something to show.
            self._rich = _rich_progress(self.stream)
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def __call__(self, event: Progress) -> None:
        if self.quiet:
            return
        with self._lock:
            if self._rich is not None:
                self._draw(event)
                return
            # No byte counts off a terminal, and no line repeating a layer's status.
            if event.is_transfer or (event.id and self._last.get(event.id) == event.status):
                return
            if event.id:
                self._last[event.id] = event.status
            self.stream.write(event.line() + "\n")
            self.stream.flush()

    def _draw(self, event: Progress) -> None:
        progress = self._rich
        if not progress.live.is_started:
            progress.start()
        if not event.id:
            progress.lines.append(event.status)
            return
        task = self._tasks.get(event.id)
        if task is None:
            task = progress.add_task(event.status, layer=event.id, moving=False, total=None)
            self._tasks[event.id] = task
            progress.lines.append(task)
        if event.is_transfer:
            progress.update(task, description=event.status, completed=event.current, total=event.total,
                            moving=True)
        else:
            progress.update(task, description=event.status, moving=False)


def pull_missing(engine, name: str, *, policy: str = "missing", platform: str | None = None,
                 quiet: bool = False):
    """For `run`, `create` and `build`: the image, pulled first when Docker would,
    reporting on stderr as `docker run` does."""
    if policy in ("missing", "never") and platform is None and hasattr(engine, "state"):
        # The common case needs no registry code at all (it loads an HTTP stack),
        # nor the image service (tar, lzma, bz2, urllib and the Dockerfile parser).
        # (A daemon's client, berth -H, has no local state: its ensure_image asks the daemon.)
        from berth.image.store import ImageStore

        image = ImageStore(engine.state).find(name)
        if image is not None:
            return image

    def announce(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with ProgressView(sys.stderr, quiet=quiet) as view:
        return engine.registry.ensure_image(name, policy=policy, platform=platform, progress=view,
                                            announce=announce)


# -- commands ----------------------------------------------------------------

def cmd_pull(engine, args):
    ref = parse(args.name)
    if not args.all_tags and ref.tag is None and ref.digest is None and not args.quiet:
        print("Using default tag: latest", flush=True)
    with ProgressView(sys.stdout, quiet=args.quiet) as view:
        results = engine.registry.pull(args.name, platform=args.platform, all_tags=args.all_tags,
                                       progress=view)
    if args.all_tags:
        print(ref.name)
    else:
        print(str(results[0].reference))


def cmd_push(engine, args):
    ref = parse(args.name)
    if not args.all_tags and ref.tag is None and ref.digest is None and not args.quiet:
        print("Using default tag: latest", flush=True)
    with ProgressView(sys.stdout, quiet=args.quiet) as view:
        results = engine.registry.push(args.name, all_tags=args.all_tags, progress=view)
    if args.quiet:
        output.lines(str(r.reference) for r in results)


def cmd_login(engine, args):
    if args.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        if args.password_stdin:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    password = args.password
    if args.password_stdin:
        if not args.username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    username = args.username
    if not username and password is None:
        stored = engine.registry.stored_credentials(args.server)
        if stored is not None:
            try:
                return _logged_in(engine.registry.login(args.server, stored))
            except Unauthorized:
                pass   # stale: ask again, as docker login does
        username = _ask_username(stored.username if stored else "")
    elif not username:
        username = _ask_username("")
    if password is None:
        password = _ask_password()
    if not password:
        raise InvalidArgument("Password Required")
    from berth.registry.auth import Credentials
    return _logged_in(engine.registry.login(args.server, Credentials(username, password)))


def _interactive() -> None:
    if not sys.stdin.isatty():
        raise InvalidArgument("Cannot perform an interactive login from a non TTY device")


def _ask_username(default: str) -> str:
    _interactive()
    sys.stdout.write(f"Username ({default}): " if default else "Username: ")
    sys.stdout.flush()
    username = sys.stdin.readline().strip() or default
    if not username:
        raise InvalidArgument("Non-null Username Required")
    return username


def _ask_password() -> str:
    _interactive()
    return getpass.getpass("Password: ")


def _logged_in(outcome) -> int:
    if not outcome.helper:
        sys.stderr.write(PLAINTEXT_WARNING.format(path=outcome.stored_in))
    print("Login Succeeded")
    return 0


def cmd_logout(engine, args):
    server, _found = engine.registry.logout(args.server)
    print(f"Removing login credentials for {server}")


def cmd_search(engine, args):
    outcome = engine.registry.search(args.term, limit=args.limit, filters=filters_of(args.filter))
    if outcome.from_catalog:
        print(f"{outcome.registry} has no search API; listing the repositories in its catalog "
              f"that match \"{args.term.split('/', 1)[-1]}\"", file=sys.stderr)
    rows = []
    for r in outcome.results:
        description = " ".join(r.description.split())
        if not args.no_trunc:
            description = output.ellipsis(description, SEARCH_DESCRIPTION_WIDTH)
        rows.append({"Name": r.name, "Description": description, "StarCount": str(r.star_count),
                     "IsOfficial": "[OK]" if r.is_official else "",
                     "IsAutomated": "[OK]" if r.is_automated else ""})
    output.formatted(args.format or SEARCH_TABLE, rows, SEARCH_HEADERS)
