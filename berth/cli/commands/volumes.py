"""Volume commands: volume create, ls, inspect, rm, prune."""

from __future__ import annotations

import re
import sys

from berth.cli import output
from berth.cli.parser import add_command, filter_arg, filters_of
from berth.units import human_size
from berth.errors import BerthError, InvalidArgument

VOLUMES_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUMES_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                   "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
                   "Availability": "AVAILABILITY", "Status": "STATUS"}

PRUNE_WARNING = ("WARNING! This will remove anonymous local volumes not used by at least one container.\n"
                 "Are you sure you want to continue?")
PRUNE_ALL_WARNING = ("WARNING! This will remove all local volumes not used by at least one container.\n"
                     "Are you sure you want to continue?")


def register(sub) -> None:
    volume = add_command(sub, "volume", None, "Manage volumes")
    vsub = volume.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=type(volume))
    volume.set_defaults(handler=lambda engine, args: volume.print_help())

    p = add_command(vsub, "create", cmd_create, "Create a volume", usage="berth volume create [OPTIONS] [VOLUME]")
    p.add_argument("volume", nargs="?", metavar="VOLUME")
    p.add_argument("-d", "--driver", default="local", help='Specify volume driver name (default "local")')
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")
    p.add_argument("--name", help="Specify volume name")

    p = add_command(vsub, "ls", cmd_ls, "List volumes", aliases=("list",),
                    usage="berth volume ls [OPTIONS]")
    p.add_argument("-f", "--filter", action="append", type=filter_arg,
                   help="Provide filter values (e.g. 'dangling=true')")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")

    p = add_command(vsub, "inspect", cmd_inspect, "Display detailed information on one or more volumes",
                    usage="berth volume inspect [OPTIONS] VOLUME [VOLUME...]")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--format", help="Format output using a custom template")

    p = add_command(vsub, "rm", cmd_rm, "Remove one or more volumes", aliases=("remove",),
                    usage="berth volume rm [OPTIONS] VOLUME [VOLUME...]")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")

    p = add_command(vsub, "prune", cmd_prune, "Remove unused local volumes", usage="berth volume prune [OPTIONS]")
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones")
    p.add_argument("--filter", action="append", type=filter_arg, help="Provide filter values (e.g. 'label=<label>')")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")


def _key_values(items: list[str]) -> dict[str, str]:
    """Docker's ConvertKVStringsToMap: `k=v`, or `k` for an empty value."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def natural_key(name: str) -> list:
    """sortorder.NaturalLess: runs of digits compare as numbers."""
    return [(1, int(part), part) if part.isdigit() else (0, 0, part) for part in re.split(r"(\d+)", name) if part]


def cmd_create(engine, args):
    if args.name and args.volume:
        raise InvalidArgument("conflicting options: either specify --name or provide positional arg, not both")
    volume = engine.volumes.create(args.name or args.volume, driver=args.driver,
                                   labels=_key_values(args.label), options=_key_values(args.opt))
    print(volume["Name"])


def cmd_ls(engine, args):
    volumes = sorted(engine.volumes.list(filters_of(args.filter)), key=lambda v: natural_key(v["Name"]))
    if args.quiet:
        output.lines(v["Name"] for v in volumes)
        return
    output.formatted(args.format or VOLUMES_TABLE, [_row(v) for v in volumes], VOLUMES_HEADERS)


def _row(v: dict) -> dict:
    """The fields docker/cli's volume formatter offers; usage needs `system df -v`."""
    labels = v["Labels"] or {}
    return {"Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"], "Mountpoint": v["Mountpoint"],
            "Labels": ",".join(f"{k}={val}" for k, val in sorted(labels.items())),
            "Label": lambda name: labels.get(name, ""),
            "Links": "N/A", "Size": "N/A", "Group": "N/A", "Availability": "N/A", "Status": "N/A"}


def cmd_inspect(engine, args):
    return output.inspect_each(args.names, engine.volumes.inspect, args.format, kind="volume")


def cmd_rm(engine, args):
    failed = False
    for name in args.names:
        try:
            engine.volumes.remove(name, force=args.force)
        except BerthError as e:  # Docker reports each and goes on
            print(f"Error: {e}", file=sys.stderr)
            failed = True
            continue
        print(name)
    return 1 if failed else 0


def cmd_prune(engine, args):
    filters = filters_of(args.filter)
    if args.all and "all" in filters:
        raise InvalidArgument("conflicting options: cannot specify both --all and --filter all=1")
    if not args.force and sys.stdin.isatty():
        if not output.confirm(PRUNE_ALL_WARNING if args.all else PRUNE_WARNING):
            return 0
    deleted, reclaimed = engine.volumes.prune(all=args.all, filters=filters)
    if deleted:
        print("Deleted Volumes:")
        output.lines(deleted)
        print()
    # units.HumanSize, go-units' default precision of 4 (unlike the image tables' 3).
    print(f"Total reclaimed space: {human_size(reclaimed, 4)}")
