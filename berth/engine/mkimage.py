"""Base images without a registry: Debian root filesystems made with debootstrap.

What Docker's contrib/mkimage.sh did for hosts that cannot pull: bootstrap a
minimal Debian, trim it the way the official `debian` image is trimmed
(debuerreotype), and import it with the official image's config
(Cmd ["bash"], Env PATH).

debootstrap takes the better part of a minute, so its result is kept as a
rootfs tarball under /var/cache/berth/mkimage, keyed by everything that
shapes the tree (suite, variant, packages, mirror, architecture and the
recipe below).  The key is also stored on the image as a label: a rerun
whose key matches the image already tagged returns it without touching
the disk, and one whose image was removed re-imports the tarball in
seconds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from berth.engine.images import ImageService
from berth.errors import InvalidArgument, NotFound, Unavailable
from berth.image.reference import parse_normalized_named
from berth.layer.diff import diff_tar

# Bump whenever the post-processing below changes what a rootfs contains:
# cache entries and images made by an older recipe then stop matching.
RECIPE = 1

DEFAULT_CACHE_DIR = Path("/var/cache/berth/mkimage")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DEFAULT_VARIANT = "minbase"
# debootstrap's variants; "-" is its own name for the default (required +
# important priorities).
VARIANTS = ("minbase", "buildd", "-")
KEY_LABEL = "berth.mkimage.key"
# The official image's PATH, so RUN steps find /usr/local/bin first as there.
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP_SCRIPTS = Path("/usr/share/debootstrap/scripts")
# Suites with no -updates or -security archive.
_ROLLING = {"sid", "unstable", "experimental", "rc-buggy"}
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_SUITE = re.compile(r"^[a-z][a-z0-9.-]*$")
_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386",
           "ppc64le": "ppc64el", "s390x": "s390x", "riscv64": "riscv64"}

# apt and dpkg settings of the official image (debuerreotype's
# minimizing config, once contrib/mkimage/debootstrap): nothing cached
# after an install, no translations, compressed indexes, no services
# started by maintainer scripts, no fsync per unpacked file.
APT_CONFIG = {
    "etc/apt/apt.conf.d/docker-clean": (
        "# Since for most Docker users, package installs happen in \"docker build\" steps,\n"
        "# they essentially become individual layers due to the way Docker handles\n"
        "# layering, especially using CoW filesystems.  What this means for us is that\n"
        "# the caches that APT keeps end up just wasting space in those layers, making\n"
        "# our layers unnecessarily large (especially since we'll normally never use\n"
        "# these caches again and will instead just \"docker build\" again and make a brand\n"
        "# new image).\n\n"
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'),
    "etc/apt/apt.conf.d/docker-autoremove-suggests": (
        "# Since Docker users are looking for the smallest possible final images, the\n"
        "# following emerges as a very common pattern:\n"
        "#   RUN apt-get update && apt-get install -y <packages> && <do some compilation work>"
        " && apt-get purge -y --auto-remove <packages>\n"
        "# By default, APT will actually _keep_ packages installed via Recommends or\n"
        "# Depends if another package Suggests them, even and including if the package\n"
        "# that originally caused them to be installed is removed.  Setting this to\n"
        "# \"false\" ensures that APT is appropriately aggressive about removing the\n"
        "# packages it added.\n\n"
        'Apt::AutoRemove::SuggestsImportant "false";\n'),
    "etc/apt/apt.conf.d/docker-gzip-indexes": (
        "# Since Docker users using \"RUN apt-get update && apt-get install -y ...\" in\n"
        "# their Dockerfiles don't go delete the lists files afterwards, we want them to\n"
        "# be as small as possible on-disk, so we explicitly request that Apt keep them\n"
        "# compressed on-disk too instead of decompressing them.\n\n"
        'Acquire::GzipIndexes "true";\n'),
    "etc/apt/apt.conf.d/docker-no-languages": (
        "# In Docker, we don't often need the \"Translations\" files, so we're just wasting\n"
        "# time and space by downloading them, and this inhibits that.  For users that do\n"
        "# need them, it's a simple matter to delete this file and \"apt-get update\". :)\n\n"
        'Acquire::Languages "none";\n'),
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": (
        "# For most Docker users, package installs happen during \"docker build\", which\n"
        "# doesn't survive power loss and gets restarted clean afterwards anyhow, so\n"
        "# this minor tweak gives us a nice speedup (much nicer on spinning disks,\n"
        "# obviously).\n\n"
        "force-unsafe-io\n"),
}
POLICY_RC_D = (
    "#!/bin/sh\n\n"
    "# For most Docker users, \"apt-get install\" only happens during \"docker build\",\n"
    "# where starting services doesn't work and often fails in humorous ways.  This\n"
    "# prevents those failures by stopping the services from attempting to start.\n\n"
    "exit 101\n")

Log = Callable[[str], None]


@dataclass(frozen=True)
class BaseImageSpec:
    """Everything that shapes a base image's root filesystem."""

    suite: str
    arch: str
    variant: str = DEFAULT_VARIANT
    include: tuple[str, ...] = ()
    mirror: str = DEFAULT_MIRROR

    @property
    def key(self) -> str:
        """The cache key: equal for equal trees, different for any change."""
        doc = {"recipe": RECIPE, "suite": self.suite, "arch": self.arch, "variant": self.variant,
               "include": sorted(self.include), "mirror": self.mirror}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """The spec as the mkimage command line that makes it (the image's comment)."""
        words = [f"--suite {self.suite}", f"--variant {'default' if self.variant == '-' else self.variant}"]
        if self.include:
            words.append(f"--include {','.join(self.include)}")
        if self.mirror != DEFAULT_MIRROR:
            words.append(f"--mirror {self.mirror}")
        return f"berth mkimage {' '.join(words)} (debootstrap, {self.arch})"


@dataclass(frozen=True)
class MadeImage:
    id: str
    name: str
    # "image": the tagged image already matched; "cache": imported from the
    # cached rootfs; "debootstrap": bootstrapped now.
    source: str


def make_spec(name: str, *, suite: str | None = None, variant: str = DEFAULT_VARIANT,
              include: Iterable[str] = (), mirror: str = DEFAULT_MIRROR,
              arch: str | None = None) -> BaseImageSpec:
    """The spec `berth mkimage NAME [flags]` asks for.

    Without --suite the tag names it (`debian:bookworm`), and `latest` (or
    no tag) means the host's own release, as `debian:latest` is stable.
    """
    ref = parse_normalized_named(name)
    if ref.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    if suite is None:
        from_tag = ref.tag and ref.tag != "latest"
        suite = ref.tag if from_tag else host_codename()
        if from_tag and suite not in debian_suites():
            raise InvalidArgument(f"{suite!r} is not a Debian suite debootstrap knows; name one with --suite")
    elif not _SUITE.match(suite) or suite not in debian_suites():
        raise InvalidArgument(f"{suite!r} is not a Debian suite debootstrap knows")
    if variant == "default":
        variant = "-"
    if variant not in VARIANTS:
        raise InvalidArgument(f"invalid variant {variant!r}: choose minbase, buildd or default")
    packages = sorted({p.strip() for item in include for p in item.split(",")} - {""})
    for p in packages:
        if not _PACKAGE.match(p):
            raise InvalidArgument(f"invalid package name: {p!r}")
    mirror = mirror.rstrip("/")
    if not re.match(r"^(https?|file)://", mirror):
        raise InvalidArgument(f"invalid mirror {mirror!r}: expected an http://, https:// or file:// URL")
    return BaseImageSpec(suite=suite, arch=arch or host_arch(), variant=variant,
                         include=tuple(packages), mirror=mirror)


def debootstrap_command(spec: BaseImageSpec, target: Path, debs: Path) -> list[str]:
    cmd = ["debootstrap", f"--arch={spec.arch}", "--components=main", f"--cache-dir={debs}"]
    if spec.variant != "-":
        cmd.append(f"--variant={spec.variant}")
    if spec.include:
        cmd.append(f"--include={','.join(spec.include)}")
    return cmd + [spec.suite, str(target), spec.mirror]


def apt_sources(spec: BaseImageSpec) -> str:
    """deb822 sources as in the official image: the suite and its updates,
    and the security archive (only from the default mirror: a private
    mirror is not assumed to carry either)."""
    keyring = "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    rolling = spec.suite in _ROLLING
    official = spec.mirror == DEFAULT_MIRROR
    suites = spec.suite if rolling or not official else f"{spec.suite} {spec.suite}-updates"
    text = f"Types: deb\nURIs: {spec.mirror}\nSuites: {suites}\nComponents: main\n{keyring}"
    if official and not rolling:
        text += (f"\nTypes: deb\nURIs: {SECURITY_MIRROR}\nSuites: {spec.suite}-security\n"
                 f"Components: main\n{keyring}")
    return text


def finish_rootfs(root: Path, spec: BaseImageSpec) -> None:
    """Turn a fresh debootstrap tree into an image's root filesystem."""
    # The engine writes these per container; debootstrap copied the host's.
    for name in ("etc/hostname", "etc/resolv.conf", "etc/hosts", "etc/machine-id"):
        (root / name).unlink(missing_ok=True)
    # /dev is the runtime's (a tmpfs per container); its nodes here would
    # only be shadowed, and a 0/0 device reads as a whiteout in a layer.
    _empty_dir(root / "dev")
    for name in ("proc", "sys"):
        _empty_dir(root / name)

    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    sources = root / "etc/apt/sources.list.d/debian.sources"
    sources.parent.mkdir(parents=True, exist_ok=True)
    sources.write_text(apt_sources(spec))
    for rel, text in APT_CONFIG.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)

    # What the official image leaves out: package lists and caches (the
    # first RUN apt-get update fetches fresh ones), logs of the bootstrap,
    # and backups dpkg and debconf keep of their databases.
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/apt/archives/partial/*", "var/cache/debconf/*-old",
                    "var/lib/dpkg/*-old", "var/cache/ldconfig/aux-cache",
                    "var/log/bootstrap.log", "var/log/apt/eipp.log.xz"):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    for log in ("var/log/dpkg.log", "var/log/alternatives.log", "var/log/apt/history.log",
                "var/log/apt/term.log", "var/log/wtmp", "var/log/btmp", "var/log/lastlog",
                "var/log/faillog"):
        path = root / log
        if path.is_file():
            path.write_bytes(b"")


class BaseImageMaker:
    """`berth mkimage`: a tagged base image from debootstrap, cached."""

    def __init__(self, images: ImageService, cache_dir: Path = DEFAULT_CACHE_DIR):
        self.images = images
        self.cache_dir = Path(cache_dir)

    def make(self, name: str, spec: BaseImageSpec, *, no_cache: bool = False,
             log: Log = lambda line: None) -> MadeImage:
        key = spec.key
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(key, log):
            if not no_cache:
                existing = self._tagged_with_key(name, key)
                if existing is not None:
                    return MadeImage(existing, name, "image")
            tarball = self.cache_dir / f"{key}.tar"
            source = "cache"
            if no_cache or not tarball.is_file():
                self._bootstrap(spec, tarball, log)
                source = "debootstrap"
            image = self.images.import_image(
                str(tarball), repository=name, message=spec.describe(),
                changes=[f"ENV {PATH_ENV}", 'CMD ["bash"]', f"LABEL {KEY_LABEL}={key}"])
            return MadeImage(image.id, name, source)

    def _tagged_with_key(self, name: str, key: str) -> str | None:
        try:
            info = self.images.inspect(name)
        except NotFound:
            return None
        labels = info["Config"].get("Labels") or {}
        return info["Id"] if labels.get(KEY_LABEL) == key else None

    @contextmanager
    def _locked(self, key: str, log: Log) -> Iterator[None]:
        """One maker per key at a time: a second waits, then finds the cache."""
        with open(self.cache_dir / f"{key}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log("waiting for another mkimage of the same base image")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _bootstrap(self, spec: BaseImageSpec, tarball: Path, log: Log) -> None:
        if shutil.which("debootstrap") is None:
            raise Unavailable("debootstrap is not installed (apt-get install debootstrap)")
        if os.geteuid() != 0:
            raise Unavailable("mkimage must run as root: debootstrap needs chroot and mknod")
        target = self.cache_dir / f"{spec.key}.rootfs"
        debs = self.cache_dir / "debs"
        debs.mkdir(exist_ok=True)
        _remove_tree(target)  # left by an interrupted run
        try:
            target.mkdir()
            _run_debootstrap(debootstrap_command(spec, target, debs), target, log,
                             self.cache_dir / f"{spec.key}.debootstrap.log")
            finish_rootfs(target, spec)
            partial = tarball.with_suffix(".tar.partial")
            with open(partial, "wb") as out:
                diff_tar(target, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, tarball)
        finally:
            _remove_tree(target)


def _run_debootstrap(cmd: Sequence[str], target: Path, log: Log, keep_log: Path) -> None:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    log("$ " + " ".join(cmd))
    errors: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          text=True, errors="replace") as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            log(line)
            if line.startswith("E: "):
                errors.append(line[3:])
    if proc.returncode != 0:
        details = target / "debootstrap" / "debootstrap.log"
        where = ""
        if details.is_file():
            shutil.copyfile(details, keep_log)
            where = f" (details in {keep_log})"
        reason = errors[-1] if errors else f"exit status {proc.returncode}"
        raise Unavailable(f"debootstrap {cmd[-3]} failed: {reason}{where}")


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p.startswith(prefix) or p == prefix[:-1]]


def _remove_tree(path: Path) -> None:
    """rm -rf, but never through a mount: debootstrap mounts /proc and /sys
    in the target and leaves them there when it is interrupted."""
    if not path.exists():
        return
    for point in sorted(_mounts_below(path), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    left = _mounts_below(path)
    if left:
        raise Unavailable(f"cannot remove {path}: {left[0]} is still mounted")
    shutil.rmtree(path)


def _empty_dir(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    else:
        path.unlink(missing_ok=True)
        path.mkdir()


def debian_suites() -> set[str]:
    """Suites debootstrap can make from a Debian archive (not Ubuntu's or Kali's)."""
    found = set()
    if not DEBOOTSTRAP_SCRIPTS.is_dir():
        return found
    for script in DEBOOTSTRAP_SCRIPTS.iterdir():
        try:
            text = script.resolve().read_text(errors="replace")
        except OSError:
            continue
        if "debian-archive-keyring" in text:
            found.add(script.name)
    return found


def host_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.MULTILINE)
    return m.group(1) if m else "stable"


def host_arch() -> str:
    machine = platform.machine()
    if machine not in _ARCHES:
        raise Unavailable(f"no Debian architecture known for {machine}")
    return _ARCHES[machine]
