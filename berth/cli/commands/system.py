"""Engine-wide commands: version, info, system df/check/prune, inspect."""

from __future__ import annotations

import platform
import sys

import berth
from berth.cli import output
from berth.cli.parser import add_command, filter_arg, filters_of
from berth.units import bytes_size, format_rfc3339_nano, human_size, parse_timestamp


def register(sub) -> None:
    p = add_command(sub, "version", cmd_version, "Show the berth version information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p = add_command(sub, "info", cmd_info, "Display system-wide information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p = add_command(sub, "inspect", cmd_inspect, "Return low-level information on berth objects")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("--type", choices=["image", "container", "volume", "network"],
                   help="Return JSON for specified type")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")

    register_events(sub)
    system = add_command(sub, "system", None, "Manage berth")
    ssub = system.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=type(system))
    system.set_defaults(handler=lambda engine, args: system.print_help())
    p = add_command(ssub, "df", cmd_df, "Show berth disk usage")
    p.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    p.add_argument("--format", help="Format output using a custom template")
    p = add_command(ssub, "info", cmd_info, "Display system-wide information")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p = add_command(ssub, "check", cmd_check,
                    "Verify the store: every referenced blob present and intact, nothing dangling")
    p.add_argument("--repair", action="store_true",
                   help="Remove dangling blobs and staging files left by interrupted operations")


def _client_version() -> dict:
    return {"Platform": {"Name": "berth"}, "Version": berth.__version__, "ApiVersion": berth.API_VERSION,
            "DefaultAPIVersion": berth.API_VERSION, "GitCommit": "", "GoVersion": "python" + platform.python_version(),
            "Os": "linux", "Arch": platform.machine(), "BuildTime": "", "Context": "default"}


def cmd_version(engine, args):
    data = {"Client": _client_version(), "Server": engine.system.version()}
    if args.format:
        print(output.render(args.format, data))
        return
    c, s = data["Client"], data["Server"]
    print("Client:")
    print(f" Version:           {c['Version']}")
    print(f" API version:       {c['ApiVersion']}")
    print(f" Python version:    {platform.python_version()}")
    print(f" OS/Arch:           {c['Os']}/{s['Arch']}")
    print(f" Context:           {c['Context']}")
    print()
    print("Server: berth")
    print(" Engine:")
    print(f"  Version:          {s['Version']}")
    print(f"  API version:      {s['ApiVersion']} (minimum version {s['MinAPIVersion']})")
    print(f"  Python version:   {platform.python_version()}")
    print(f"  OS/Arch:          {s['Os']}/{s['Arch']}")
    print(f"  Kernel version:   {s['KernelVersion']}")


def cmd_info(engine, args):
    info = engine.system.info()
    if args.format:
        print(output.render(args.format, info))
        return
    print("Client:")
    print(f" Version:    {berth.__version__}")
    print(" Context:    default")
    print(" Debug Mode: false")
    print()
    print("Server:")
    for label, key in (("Containers", "Containers"),):
        print(f" {label}: {info[key]}")
    print(f"  Running: {info['ContainersRunning']}")
    print(f"  Paused: {info['ContainersPaused']}")
    print(f"  Stopped: {info['ContainersStopped']}")
    print(f" Images: {info['Images']}")
    print(f" Server Version: {info['ServerVersion']}")
    print(f" Storage Driver: {info['Driver']}")
    for k, v in info["DriverStatus"]:
        print(f"  {k}: {v}")
    print(f" Logging Driver: {info['LoggingDriver']}")
    print(f" Cgroup Driver: {info['CgroupDriver']}")
    print(f" Cgroup Version: {info['CgroupVersion']}")
    print(" Plugins:")
    for k, v in info["Plugins"].items():
        print(f"  {k}: {' '.join(v)}")
    print(f" Runtimes: {' '.join(sorted(info['Runtimes']))}")
    print(f" Default Runtime: {info['DefaultRuntime']}")
    print(" Security Options:")
    for opt in info["SecurityOptions"]:
        name = opt.split(",")[0].split("=", 1)[1]
        print(f"  {name}")
        for extra in opt.split(",")[1:]:
            k, _, v = extra.partition("=")
            print(f"   {k.capitalize()}: {v}")
    print(f" Kernel Version: {info['KernelVersion']}")
    print(f" Operating System: {info['OperatingSystem']}")
    print(f" OSType: {info['OSType']}")
    print(f" Architecture: {info['Architecture']}")
    print(f" CPUs: {info['NCPU']}")
    print(f" Total Memory: {bytes_size(info['MemTotal'])}")
    print(f" Name: {info['Name']}")
    print(f" ID: {info['ID']}")
    print(f" Berth Root Dir: {info['DockerRootDir']}")
    print(" Debug Mode: false")
    print(" Experimental: false")


def cmd_inspect(engine, args):
    # The docker CLI's order when no --type is given: containers first.
    lookups = {"container": lambda name: engine.containers.inspect(name, size=args.size),
               "image": engine.images.inspect, "volume": engine.volumes.inspect}
    if args.type:
        lookup = lookups.get(args.type)
        if lookup is None:
            from berth.errors import InvalidArgument
            raise InvalidArgument(f"inspecting {args.type}s is not supported yet")
        return output.inspect_each(args.names, lookup, args.format, kind=args.type)

    def any_kind(name):
        from berth.errors import NotFound
        for lookup in lookups.values():
            try:
                return lookup(name)
            except NotFound:
                continue
        raise NotFound(f"No such object: {name}")

    return output.inspect_each(args.names, any_kind, args.format, kind="object")


def cmd_df(engine, args):
    usage = engine.system.disk_usage(engine.containers_using)
    total = usage["LayersSize"]
    reclaim = usage["ReclaimableImages"]
    pct = f" ({reclaim * 100 // total}%)" if total else ""
    rows = [
        {"Type": "Images", "TotalCount": str(len(usage["Images"])), "Active": str(usage["ActiveImages"]),
         "Size": human_size(total), "Reclaimable": human_size(reclaim) + pct},
        {"Type": "Containers", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
        {"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]
    output.formatted(args.format or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                     rows, {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                            "Reclaimable": "RECLAIMABLE"})


def cmd_check(engine, args):
    report = engine.system.check()
    problems = 0
    for label, items in (("missing blob", report.missing), ("corrupt blob", report.corrupt),
                         ("dangling blob", report.unreferenced), ("stale staging file", report.stale_staging),
                         ("inconsistent image", report.inconsistent)):
        for item in items:
            print(f"{label}: {item}")
            problems += 1
    if args.repair and (report.unreferenced or report.stale_staging):
        removed = engine.images.sweep()
        print(f"removed {len(removed)} dangling blob(s)")
        problems -= len(report.unreferenced) + len(report.stale_staging)
    if problems == 0:
        print("store OK")
        return 0
    print(f"{problems} problem(s) found", file=sys.stderr)
    return 1


def register_events(sub) -> None:
    p = add_command(sub, "events", cmd_events, "Get real time events from the server")
    p.add_argument("-f", "--filter", action="append", type=filter_arg, help="Filter output based on conditions provided")
    p.add_argument("--format", help="Format output using a custom template")
    p.add_argument("--since", help="Show all events created since timestamp")
    p.add_argument("--until", help="Stream events until this timestamp")


def cmd_events(engine, args):
    filters = filters_of(args.filter)
    since = parse_timestamp(args.since) if args.since else None
    until = parse_timestamp(args.until) if args.until else None
    template = output.template(args.format) if args.format and args.format != "json" else None
    for message in engine.system.events(filters, since=since, until=until):
        if args.format == "json":
            print(output.go_json(message))
        elif template is not None:
            print(template.execute(message))
        else:
            attrs = message["Actor"]["Attributes"]
            extra = ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs))
            stamp = format_rfc3339_nano(message["timeNano"])
            print(f"{stamp} {message['Type']} {message['Action']} {message['Actor']['ID']}"
                  + (f" ({extra})" if extra else ""))
        sys.stdout.flush()
