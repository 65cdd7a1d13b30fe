"""Image commands: images, import, tag, rmi, save, load, insert, history, image prune."""

from __future__ import annotations

import sys

from berth.cli import output
from berth.cli.commands import registry as registry_commands
from berth.cli.parser import add_command, filter_arg, filters_of
from berth.units import human_size
from berth.errors import InvalidArgument

IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                  "VirtualSize": "SIZE", "Containers": "CONTAINERS"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def register(sub) -> None:
    p = add_command(sub, "images", cmd_images, "List images")
    _images_flags(p)
    p = add_command(sub, "import", cmd_import, "Import the contents from a tarball to create a filesystem image",
                    usage="berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]")
    _import_flags(p)
    p = add_command(sub, "tag", cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
                    usage="berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
    p.add_argument("source")
    p.add_argument("target")
    p = add_command(sub, "rmi", cmd_rmi, "Remove one or more images")
    _rmi_flags(p)
    p = add_command(sub, "save", cmd_save, "Save one or more images to a tar archive (streamed to STDOUT by default)")
    _save_flags(p)
    p = add_command(sub, "load", cmd_load, "Load an image from a tar archive or STDIN")
    _load_flags(p)
    p = add_command(sub, "insert", cmd_insert, "Insert a file in an image",
                    usage="berth insert IMAGE URL|FILE PATH")
    p.add_argument("image")
    p.add_argument("source")
    p.add_argument("path")
    p = add_command(sub, "history", cmd_history, "Show the history of an image")
    _history_flags(p)

    image = add_command(sub, "image", None, "Manage images")
    isub = image.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=type(image))
    image.set_defaults(handler=_needs_subcommand(image))
    for name, aliases, handler, flags, help_ in (
            ("ls", ("list",), cmd_images, _images_flags, "List images"),
            ("import", (), cmd_import, _import_flags, "Import the contents from a tarball to create a filesystem image"),
            ("rm", ("remove",), cmd_rmi, _rmi_flags, "Remove one or more images"),
            ("save", (), cmd_save, _save_flags, "Save one or more images to a tar archive"),
            ("load", (), cmd_load, _load_flags, "Load an image from a tar archive or STDIN"),
            ("history", (), cmd_history, _history_flags, "Show the history of an image"),
            ("prune", (), cmd_prune, _prune_flags, "Remove unused images"),
            ("inspect", (), cmd_image_inspect, _inspect_flags, "Display detailed information on one or more images")):
        flags(add_command(isub, name, handler, help_, aliases=aliases))
    for name, handler, flags, help_ in (
            ("pull", registry_commands.cmd_pull, registry_commands.pull_flags, "Download an image from a registry"),
            ("push", registry_commands.cmd_push, registry_commands.push_flags, "Upload an image to a registry")):
        flags(add_command(isub, name, handler, help_))
    from berth.cli.commands.build import add_flags as build_flags, cmd_build
    build_flags(add_command(isub, "build", cmd_build, "Build an image from a Dockerfile"))
    p = add_command(isub, "tag", cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source")
    p.add_argument("target")


def _needs_subcommand(parser):
    def handler(engine, args):
        parser.print_help()
        return 0
    return handler


def _images_flags(p):
    p.add_argument("repository", nargs="?", help="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true", help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument("-f", "--filter", action="append", type=filter_arg, help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")


def _import_flags(p):
    p.add_argument("source", help="file|URL|-")
    p.add_argument("repository", nargs="?", help="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[], help="Apply Dockerfile instruction to the created image")
    p.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")


def _rmi_flags(p):
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")


def _save_flags(p):
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")


def _load_flags(p):
    p.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


def _history_flags(p):
    p.add_argument("image")
    p.add_argument("-H", "--human", action=_BoolFlag, default=True, help="Print sizes and dates in human readable format")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--format", help="Format output using a custom template")


def _prune_flags(p):
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", type=filter_arg, help="Provide filter values (e.g. \"until=<timestamp>\")")


def _inspect_flags(p):
    p.add_argument("names", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="Format output using a custom template")


class _BoolFlag(__import__("argparse").Action):
    """Go's boolean flags: `-H`, `-H=true`, `--human=false`."""

    def __init__(self, option_strings, dest, **kw):
        kw.pop("nargs", None)
        super().__init__(option_strings, dest, nargs="?", const=True, **kw)

    def __call__(self, parser, namespace, value, option_string=None):
        if isinstance(value, str):
            value = value.lower() in ("1", "true", "t", "yes")
        setattr(namespace, self.dest, value)


# -- handlers ----------------------------------------------------------------

def _short(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id.split(":", 1)[-1][:12]


def cmd_images(engine, args):
    filters = filters_of(args.filter)
    if args.repository:
        filters.setdefault("reference", []).append(args.repository)
    summaries = engine.images.list(all=args.all, filters=filters)
    rows = []
    for s in summaries:
        digests = {d.split("@", 1)[0]: d.split("@", 1)[1] for d in s.repo_digests}
        pairs = [(t.rsplit(":", 1)[0], t.rsplit(":", 1)[1]) for t in s.repo_tags] or (
            [(d.split("@")[0], "<none>") for d in s.repo_digests] or [("<none>", "<none>")])
        for repo, tag in pairs:
            rows.append({
                "ID": _short(s.id, args.no_trunc), "Repository": repo, "Tag": tag,
                "Digest": digests.get(repo, "<none>"),
                "CreatedSince": output.ago(s.created), "CreatedAt": output.local_time(s.created),
                "Size": human_size(s.size), "VirtualSize": human_size(s.size),
                "SharedSize": human_size(s.shared_size), "UniqueSize": human_size(s.size - s.shared_size),
                "Containers": str(s.containers),
            })
    if args.quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        output.lines(seen)
        return
    fmt = args.format or (IMAGES_TABLE_DIGESTS if args.digests else IMAGES_TABLE)
    output.formatted(fmt, rows, IMAGES_HEADERS)


def cmd_import(engine, args):
    image = engine.images.import_image(args.source, stdin=sys.stdin.buffer, repository=args.repository,
                                       changes=args.change, message=args.message)
    print(image.id)


def cmd_tag(engine, args):
    engine.images.tag(args.source, args.target)


def cmd_rmi(engine, args):
    failed = False
    for name in args.images:
        try:
            for entry in engine.images.remove(name, force=args.force, prune=not args.no_prune):
                key, value = next(iter(entry.items()))
                print(f"{key}: {value}")
        except Exception as e:  # noqa: BLE001 - Docker reports each and goes on
            from berth.errors import BerthError
            if not isinstance(e, BerthError):
                raise
            print(f"Error: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def cmd_save(engine, args):
    output.archive_to(args.output, lambda f: engine.images.save(args.images, f))


def cmd_load(engine, args):
    if args.input:
        try:
            src = open(args.input, "rb")
        except FileNotFoundError:
            raise InvalidArgument(f"open {args.input}: no such file or directory") from None
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        src = sys.stdin.buffer
    with src:
        lines = engine.images.load(src)
    if not args.quiet:
        output.lines(lines)


def cmd_insert(engine, args):
    image = engine.images.insert(args.image, args.source, args.path, stdin=sys.stdin.buffer)
    print(image.id.split(":", 1)[1][:12])


def cmd_history(engine, args):
    entries = engine.images.history(args.image)
    if args.quiet:
        output.lines(_short(e.id, args.no_trunc) if e.id != "<missing>" else e.id for e in entries)
        return
    rows = []
    for e in entries:
        created_by = e.created_by.replace("\t", " ")
        if not args.no_trunc:
            created_by = output.ellipsis(created_by, 45)
        rows.append({
            "ID": e.id if e.id == "<missing>" else _short(e.id, args.no_trunc),
            "CreatedSince": output.ago(e.created) if args.human else output.local_time(e.created),
            "CreatedAt": output.local_time(e.created),
            "CreatedBy": created_by,
            "Size": human_size(e.size) if args.human else str(e.size),
            "Comment": e.comment,
        })
    output.formatted(args.format or HISTORY_TABLE, rows, HISTORY_HEADERS)


def cmd_prune(engine, args):
    if not args.force and sys.stdin.isatty():
        warning = ("WARNING! This will remove all images without at least one container associated to them."
                   if args.all else "WARNING! This will remove all dangling images.")
        if not output.confirm(warning + "\nAre you sure you want to continue?"):
            return 0
    report = engine.images.prune(all=args.all, filters=filters_of(args.filter))
    if report.deleted:
        print("Deleted Images:")
        for entry in report.deleted:
            key, value = next(iter(entry.items()))
            print(f"{key.lower()}: {value}")
        print()
    print(f"Total reclaimed space: {human_size(report.space_reclaimed)}")


def cmd_image_inspect(engine, args):
    return output.inspect_each(args.names, engine.images.inspect, args.format, kind="image")
