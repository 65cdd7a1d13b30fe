"""Network commands: network create, ls, inspect, rm, connect, disconnect,
prune; and `port`."""

from __future__ import annotations

import sys

from berth.cli import output
from berth.cli.commands.volumes import _key_values, natural_key
from berth.cli.parser import add_command, filter_arg, filters_of
from berth.errors import BerthError, InvalidArgument

NETWORKS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORKS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                    "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one container.\n"
                 "Are you sure you want to continue?")


def register(sub) -> None:
    network = add_command(sub, "network", None, "Manage networks")
    nsub = network.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=type(network))
    network.set_defaults(handler=lambda engine, args: network.print_help())

    p = add_command(nsub, "create", cmd_create, "Create a network", usage="berth network create [OPTIONS] NETWORK")
    p.add_argument("name", metavar="NETWORK")
    p.add_argument("-d", "--driver", default="bridge", help='Driver to manage the Network (default "bridge")')
    p.add_argument("--subnet", action="append", default=[], help="Subnet in CIDR format that represents a network segment")
    p.add_argument("--gateway", action="append", default=[], help="IPv4 or IPv6 Gateway for the master subnet")
    p.add_argument("--internal", action="store_true", help="Restrict external access to the network")
    p.add_argument("--attachable", action="store_true", help="Enable manual container attachment")
    p.add_argument("--label", action="append", default=[], help="Set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], help="Set driver specific options")

    p = add_command(nsub, "ls", cmd_ls, "List networks", aliases=("list",), usage="berth network ls [OPTIONS]")
    p.add_argument("-f", "--filter", action="append", type=filter_arg, help="Provide filter values (e.g. 'driver=bridge')")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")

    p = add_command(nsub, "inspect", cmd_inspect, "Display detailed information on one or more networks",
                    usage="berth network inspect [OPTIONS] NETWORK [NETWORK...]")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")

    p = add_command(nsub, "rm", cmd_rm, "Remove one or more networks", aliases=("remove",),
                    usage="berth network rm NETWORK [NETWORK...]")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.add_argument("-f", "--force", action="store_true", help="Do not error if the network does not exist")

    p = add_command(nsub, "connect", cmd_connect, "Connect a container to a network",
                    usage="berth network connect [OPTIONS] NETWORK CONTAINER")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--alias", action="append", default=[], help="Add network-scoped alias for the container")
    p.add_argument("--link", action="append", default=[], help="Add link to another container")

    p = add_command(nsub, "disconnect", cmd_disconnect, "Disconnect a container from a network",
                    usage="berth network disconnect [OPTIONS] NETWORK CONTAINER")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="Force the container to disconnect from a network")

    p = add_command(nsub, "prune", cmd_prune, "Remove all unused networks", usage="berth network prune [OPTIONS]")
    p.add_argument("--filter", action="append", type=filter_arg, help="Provide filter values (e.g. 'until=<timestamp>')")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")

    p = add_command(sub, "port", cmd_port, "List port mappings or a specific mapping for the container",
                    usage="berth port CONTAINER [PRIVATE_PORT[/PROTO]]")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def cmd_create(engine, args):
    if len(args.subnet) > 1 or len(args.gateway) > 1:
        raise InvalidArgument("berth networks have one IPv4 subnet; give --subnet and --gateway once")
    if args.gateway and not args.subnet:
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    created = engine.networks.create(args.name, driver=args.driver, subnet=args.subnet[0] if args.subnet else None,
                                     gateway=args.gateway[0] if args.gateway else None, internal=args.internal,
                                     attachable=args.attachable, labels=_key_values(args.label),
                                     options=_key_values(args.opt))
    print(created["Id"])


def cmd_ls(engine, args):
    networks = sorted(engine.networks.list(filters_of(args.filter)), key=lambda n: natural_key(n["Name"]))
    if args.quiet:
        output.lines(n["Id"] if args.no_trunc else n["Id"][:12] for n in networks)
        return
    output.formatted(args.format or NETWORKS_TABLE, [_row(n, args.no_trunc) for n in networks], NETWORKS_HEADERS)


def _row(n: dict, no_trunc: bool) -> dict:
    labels = n["Labels"] or {}
    return {"ID": n["Id"] if no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
            "Scope": n["Scope"], "IPv6": str(n["EnableIPv6"]).lower(), "Internal": str(n["Internal"]).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "Label": lambda name: labels.get(name, ""), "CreatedAt": n["Created"]}


def cmd_inspect(engine, args):
    return output.inspect_each(args.names, engine.networks.inspect, args.format, kind="network")


def cmd_rm(engine, args):
    failed = False
    for name in args.names:
        try:
            engine.networks.remove(name)
        except BerthError as e:  # Docker reports each and goes on
            if args.force and type(e).__name__ == "NotFound":
                continue
            print(f"Error: {e}", file=sys.stderr)
            failed = True
            continue
        print(name)
    return 1 if failed else 0


def cmd_connect(engine, args):
    if args.link:
        raise InvalidArgument("--link on network connect is not supported; use --link on run or create")
    engine.networks.connect(args.network, args.container, aliases=args.alias)


def cmd_disconnect(engine, args):
    engine.networks.disconnect(args.network, args.container, force=args.force)


def cmd_prune(engine, args):
    if not args.force and sys.stdin.isatty():
        if not output.confirm(PRUNE_WARNING):
            return 0
    removed = engine.networks.prune(filters_of(args.filter))
    if removed:
        print("Deleted Networks:")
        output.lines(removed)


def cmd_port(engine, args):
    output.lines(engine.networks.port(args.container, args.private))
