"""`berth mkimage`: a Debian base image made here with debootstrap, no registry needed."""

from __future__ import annotations

import sys
from pathlib import Path

from berth.cli.parser import add_command

DESCRIPTION = """\
Make a Debian base image with debootstrap, without any registry (what Docker's
contrib/mkimage.sh did).  The suite is the tag unless --suite names it
(debian:bookworm is bookworm; latest is the host's release).  The root
filesystem is cached under the cache directory, keyed by suite, variant,
packages, mirror and architecture: a rerun returns the tagged image at once,
or re-imports the cached tarball when the image was removed."""


def register(sub) -> None:
    p = add_command(sub, "mkimage", cmd_mkimage,
                    "Make a Debian base image with debootstrap (no registry needed)",
                    usage="berth mkimage [OPTIONS] REPOSITORY[:TAG]")
    p.description = DESCRIPTION
    p.add_argument("name", metavar="REPOSITORY[:TAG]")
    p.add_argument("--suite", help="Debian suite or codename (default: the tag, or the host's release)")
    p.add_argument("--variant", default="minbase",
                   help="debootstrap variant: minbase (default, as the official image), buildd or default")
    p.add_argument("--include", action="append", default=[], metavar="PKG[,PKG...]",
                   help="Extra packages to install (repeatable, comma-separated)")
    p.add_argument("--mirror", default=None, help="Debian mirror (default http://deb.debian.org/debian)")
    p.add_argument("--cache-dir", default=None,
                   help="Where root filesystems are cached (default /var/cache/berth/mkimage)")
    p.add_argument("--no-cache", action="store_true", help="Run debootstrap again even when cached")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress debootstrap's progress output")


def cmd_mkimage(engine, args) -> int:
    from berth.engine import mkimage

    spec = mkimage.make_spec(args.name, suite=args.suite, variant=args.variant, include=args.include,
                             mirror=args.mirror or mkimage.DEFAULT_MIRROR)
    maker = mkimage.BaseImageMaker(engine.images, Path(args.cache_dir) if args.cache_dir
                                   else mkimage.DEFAULT_CACHE_DIR)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    made = maker.make(args.name, spec, no_cache=args.no_cache, log=log)
    how = {"image": "already made (cache key matches)",
           "cache": "imported from the cached root filesystem",
           "debootstrap": "bootstrapped"}[made.source]
    if not args.quiet:
        print(f"{args.name}: {how}", file=sys.stderr)
    print(made.id)
    return 0
