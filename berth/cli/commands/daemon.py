"""`berth daemon`: serve the Docker Engine API, so that docker, docker-py and
docker-compose drive berth."""

from __future__ import annotations

from berth.cli.parser import add_command
from berth.errors import InvalidArgument


def register(sub) -> None:
    p = add_command(sub, "daemon", cmd_daemon, "Serve the Docker Engine API on a socket",
                    usage="berth daemon [-H unix:///PATH.sock]... [OPTIONS]")
    p.add_argument("-H", "--host", action="append", default=[], metavar="ADDRESS",
                   help="Socket to listen on, repeatable: unix:///path (default unix:///run/berth/berth.sock), "
                        "or tcp://host:port with --tlsverify")
    p.add_argument("-G", "--group", default=None,
                   help="Group owning the unix sockets (mode 0660; default 'berth' when it exists)")
    p.add_argument("--tlsverify", action="store_true", help="Use TLS and require client certificates")
    p.add_argument("--tlscacert", help="CA that client certificates must be signed by")
    p.add_argument("--tlscert", help="The daemon's TLS certificate")
    p.add_argument("--tlskey", help="The daemon's TLS key")


def cmd_daemon(engine, args) -> int:
    from berth.api.daemon import DEFAULT_GROUP, TLSFiles, serve

    tls = None
    given = [args.tlscacert, args.tlscert, args.tlskey]
    if args.tlsverify:
        if not all(given):
            raise InvalidArgument("--tlsverify needs --tlscacert, --tlscert and --tlskey")
        tls = TLSFiles(ca=args.tlscacert, cert=args.tlscert, key=args.tlskey)
    elif any(given):
        raise InvalidArgument("TLS files are used only with --tlsverify")
    return serve(engine, args.host, group=args.group or DEFAULT_GROUP, group_required=args.group is not None,
                 tls=tls, debug=args.debug)
