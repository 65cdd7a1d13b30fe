"""`berth build`: Docker's classic `docker build`, flags, output and exit codes."""

from __future__ import annotations

import argparse
import io
import os
import sys

from berth.cli.parser import add_command
from berth.errors import BerthError, InvalidArgument
from berth.units import parse_size


def register(sub) -> None:
    add_flags(add_command(sub, "build", cmd_build, "Build an image from a Dockerfile",
                          usage="berth build [OPTIONS] PATH | URL | -"))


def add_flags(p) -> None:
    """The flags of `build` (also for `image build`)."""
    p.add_argument("context", metavar="PATH | URL | -")
    p.add_argument("-t", "--tag", action="append", default=[],
                   help="Name and optionally a tag in the 'name:tag' format")
    p.add_argument("-f", "--file", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
    p.add_argument("--build-arg", action="append", default=[], help="Set build-time variables")
    p.add_argument("--label", action="append", default=[], help="Set metadata for an image")
    p.add_argument("--target", help="Set the target build stage to build.")
    p.add_argument("--network", default="default",
                   help="Set the networking mode for the RUN instructions during build")
    p.add_argument("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("--iidfile", help="Write the image ID to the file")
    p.add_argument("-m", "--memory", help="Memory limit")
    p.add_argument("--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
    p.add_argument("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    p.add_argument("--cpu-period", type=int, help="Limit the CPU CFS (Completely Fair Scheduler) period")
    p.add_argument("--cpu-quota", type=int, help="Limit the CPU CFS (Completely Fair Scheduler) quota")
    p.add_argument("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("--shm-size", help="Size of /dev/shm")
    p.add_argument("--ulimit", action="append", default=[], help="Ulimit options")
    p.add_argument("--cgroup-parent", help="Set the parent cgroup for the \"RUN\" instructions during build")
    p.add_argument("--isolation", help="Container isolation technology (on Linux only \"default\")")
    p.add_argument("--compress", action="store_true",
                   help="Compress the build context using gzip (accepted: berth reads the context in place)")
    _bool_flag(p, "--disable-content-trust", default=True, help="Skip image verification (berth verifies none)")
    _bool_flag(p, "-q", "--quiet", help="Suppress the build output and print image ID on success")
    _bool_flag(p, "--no-cache", help="Do not use cache when building the image")
    _bool_flag(p, "--rm", default=True, help="Remove intermediate containers after a successful build")
    _bool_flag(p, "--force-rm", help="Always remove intermediate containers")
    _bool_flag(p, "--pull", help="Always attempt to pull a newer version of the image")
    p.add_argument("--ca-bundle", metavar="FILE",
                   help="Trust this CA bundle in RUN steps (mounted read-only, never committed)")
    _bool_flag(p, "--host-ca", help="Trust the host's CA bundle in RUN steps (as --ca-bundle)")


def _bool_flag(p, *names: str, default: bool = False, help: str) -> None:
    """A Go boolean flag: `--rm`, `--rm=true`, `--rm=false` (never takes the next word)."""
    dest = names[-1].lstrip("-").replace("-", "_")
    p.add_argument(*names, dest=dest, action="store_const", const=True, default=default, help=help)
    for name in names:
        if name.startswith("--"):
            for value in (True, False):
                p.add_argument(f"{name}={str(value).lower()}", dest=dest, action="store_const", const=value,
                               help=argparse.SUPPRESS)


def _build_args(values: list[str]) -> dict[str, str | None]:
    """--build-arg KEY=VALUE, or KEY alone: its value in this environment, if any."""
    out: dict[str, str | None] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"--build-arg\" flag: "
                                  "variable name is empty")
        out[key] = value if sep else os.environ.get(key)
    return out


def _labels(values: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (item.partition("=") for item in values)}


def cmd_build(engine, args) -> int:
    from berth.build.builder import BuildFailed, BuildOptions
    from berth.build.context import human_size
    from berth.engine.build import host_ca_bundle

    ca_bundle = args.ca_bundle
    if args.host_ca and not ca_bundle:
        ca_bundle = host_ca_bundle()
        if not ca_bundle:
            raise InvalidArgument("--host-ca: no CA bundle found on this host")
    options = BuildOptions(tags=args.tag, build_args=_build_args(args.build_arg), target=args.target,
                           no_cache=args.no_cache, remove=args.rm, force_remove=args.force_rm,
                           labels=_labels(args.label), network_mode=args.network,
                           extra_hosts=args.add_host, platform=args.platform, pull=args.pull,
                           ca_bundle=ca_bundle, resources=_resources(args))
    stdout = sys.stdout.buffer
    buffered = io.BytesIO()
    started = False

    def out(data: bytes) -> None:
        nonlocal started
        started = True
        if args.quiet:
            buffered.write(data)
        else:
            stdout.write(data)
            stdout.flush()

    try:
        context = _context(engine, args)
    except BerthError as e:
        print(e, file=sys.stderr)
        return 1
    try:
        if not args.quiet:
            # Docker's CLI reports what it sends, and ends the line as its progress output does.
            stdout.write(f"Sending build context to Docker daemon {human_size(context.size):>8}\r\r\n"
                         .encode())
            stdout.flush()
        result = engine.build.build(context, options, out)
    except BerthError as e:
        if args.quiet:
            sys.stderr.buffer.write(buffered.getvalue())
        message = str(e) if started else f"Error response from daemon: {e}"
        sys.stdout.flush()
        print(message, file=sys.stderr)
        return e.exit_code if isinstance(e, BuildFailed) else 1
    finally:
        context.close()
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(result.image_id)
    if args.quiet:
        print(result.image_id)
    return 0


def _resources(args) -> dict:
    """The RUN steps' limits, as the HostConfig fields `run` sets from the same flags."""
    from berth.cli.runflags import parse_ulimits
    out = {"Memory": parse_size(args.memory) if args.memory else 0,
           "MemorySwap": (-1 if args.memory_swap == "-1" else parse_size(args.memory_swap)) if args.memory_swap else 0,
           "CpuShares": args.cpu_shares or 0, "CpuPeriod": args.cpu_period or 0, "CpuQuota": args.cpu_quota or 0,
           "CpusetCpus": args.cpuset_cpus or "", "CpusetMems": args.cpuset_mems or "",
           "ShmSize": parse_size(args.shm_size) if args.shm_size else 0, "Ulimits": parse_ulimits(args.ulimit),
           "CgroupParent": args.cgroup_parent or "", "Isolation": args.isolation or ""}
    return {key: value for key, value in out.items() if value}


def _context(engine, args):
    if args.file == "-" and args.context == "-":
        raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
    if args.context == "-":
        return engine.build.context_from_stream(sys.stdin.buffer, args.file)
    if args.context.startswith(("http://", "https://", "git://", "git@")):
        raise InvalidArgument("unable to prepare context: remote build contexts (URLs and git "
                              "repositories) are not supported; pass a directory or a tar on stdin")
    text = None
    if args.file == "-":
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    return engine.build.context_from_directory(args.context, None if text is not None else args.file, text)
