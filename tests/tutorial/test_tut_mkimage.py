"""`berth mkimage`: base images from debootstrap, without a registry."""

import json
import os
import stat
import time

import pytest

from berth.engine import mkimage
from berth.errors import InvalidArgument


def spec(**kw):
    kw.setdefault("arch", "amd64")
    return mkimage.make_spec(kw.pop("name", "debian:bookworm"), **kw)


# -- specs and keys --------------------------------------------------------------------------

def test_suite_comes_from_the_tag_or_the_flag():
    assert spec().suite == "bookworm"
    assert spec(name="debian:trixie").suite == "trixie"
    assert spec(name="mybase:v1", suite="sid").suite == "sid"
    assert spec(name="debian").suite == mkimage.host_codename()
    assert spec(name="debian:latest").suite == mkimage.host_codename()


def test_bad_specs_are_refused():
    with pytest.raises(InvalidArgument, match="not a Debian suite"):
        spec(name="mybase:v1")
    with pytest.raises(InvalidArgument, match="not a Debian suite"):
        spec(name="ubuntu:jammy")          # debootstrap knows it, but not from Debian's archive
    with pytest.raises(InvalidArgument, match="not a Debian suite"):
        spec(suite="../../etc")
    with pytest.raises(InvalidArgument, match="invalid package name"):
        spec(include=["curl,--foreign"])
    with pytest.raises(InvalidArgument, match="invalid variant"):
        spec(variant="fakechroot")
    with pytest.raises(InvalidArgument, match="invalid mirror"):
        spec(mirror="ftp.debian.org")
    with pytest.raises(InvalidArgument, match="digest"):
        spec(name="debian@sha256:" + "a" * 64)


def test_key_covers_what_shapes_the_tree_and_nothing_else():
    base = spec()
    assert spec(include=["curl", "git"]).key == spec(include=["git,curl", "curl"]).key
    assert spec(mirror="http://deb.debian.org/debian/").key == base.key
    assert spec(name="other:name", suite="bookworm").key == base.key
    different = [spec(suite="trixie"), spec(variant="buildd"), spec(include=["curl"]),
                 spec(mirror="http://127.0.0.1:3142/debian"),
                 mkimage.make_spec("debian:bookworm", arch="arm64")]
    assert len({base.key, *(s.key for s in different)}) == 1 + len(different)


def test_debootstrap_command():
    s = spec(include=["python3", "curl"])
    assert mkimage.debootstrap_command(s, "/t", "/d") == [
        "debootstrap", "--arch=amd64", "--components=main", "--cache-dir=/d", "--variant=minbase",
        "--include=curl,python3", "bookworm", "/t", "http://deb.debian.org/debian"]
    assert "--variant=-" not in mkimage.debootstrap_command(spec(variant="default"), "/t", "/d")


def test_apt_sources_as_the_official_image():
    assert mkimage.apt_sources(spec()) == (
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    # sid has neither updates nor security; a private mirror is not assumed to carry them.
    for s in (spec(suite="sid"), spec(mirror="http://127.0.0.1:3142/debian")):
        text = mkimage.apt_sources(s)
        assert text.count("Types: deb") == 1 and "-updates" not in text


def test_finish_rootfs(tmp_path):
    root = tmp_path / "rootfs"
    files = {"etc/hostname": "buildhost\n", "etc/resolv.conf": "nameserver 10.0.0.1\n",
             "etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n",
             "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": "x" * 100,
             "var/cache/apt/pkgcache.bin": "x", "var/cache/apt/archives/bash_5.2_amd64.deb": "x",
             "var/log/dpkg.log": "install bash\n", "var/log/bootstrap.log": "log\n",
             "usr/bin/bash": "#!bash\n", "proc/leftover": "", "sys/leftover": ""}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "usr/sbin").mkdir(parents=True)
    (root / "dev/pts").mkdir(parents=True)
    os.mknod(root / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.symlink("/proc/self/fd", root / "dev/fd")

    mkimage.finish_rootfs(root, spec())

    for gone in ("etc/hostname", "etc/resolv.conf", "etc/apt/sources.list", "var/cache/apt/pkgcache.bin",
                 "var/cache/apt/archives/bash_5.2_amd64.deb", "var/log/bootstrap.log"):
        assert not os.path.lexists(root / gone), gone
    assert os.listdir(root / "dev") == [] and os.listdir(root / "proc") == [] and os.listdir(root / "sys") == []
    assert os.listdir(root / "var/lib/apt/lists") == ["partial"]
    assert (root / "var/log/dpkg.log").read_text() == ""
    assert (root / "usr/bin/bash").read_text() == "#!bash\n"
    assert "bookworm-security" in (root / "etc/apt/sources.list.d/debian.sources").read_text()
    assert 'Acquire::Languages "none";' in (root / "etc/apt/apt.conf.d/docker-no-languages").read_text()
    assert (root / "etc/dpkg/dpkg.cfg.d/docker-apt-speedup").read_text().endswith("force-unsafe-io\n")
    policy = root / "usr/sbin/policy-rc.d"
    assert policy.read_text().endswith("exit 101\n") and policy.stat().st_mode & 0o111


# -- the command -----------------------------------------------------------------------------

def test_unreachable_mirror_fails_in_one_line_and_leaves_nothing(berth, tmp_path):
    cache = tmp_path / "cache"
    p = berth("mkimage", "--cache-dir", cache, "--mirror", "http://127.0.0.1:9/debian", "debian:bookworm",
              check=False, timeout=120)
    assert p.returncode == 1
    error = p.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: debootstrap bookworm failed: ")
    assert not [n for n in os.listdir(cache) if n.endswith((".rootfs", ".tar", ".partial"))]
    assert berth("images", "-q").stdout == ""


@pytest.mark.slow
def test_made_cached_and_quick_on_reruns(berth):
    """The first run may debootstrap (about a minute, once per machine);
    afterwards the cached root filesystem is imported in seconds, and a
    rerun whose key matches the tagged image returns it at once."""
    first = berth("mkimage", "debian:bookworm", timeout=600)
    image_id = first.stdout.strip()
    assert image_id.startswith("sha256:")
    assert first.stderr.splitlines()[-1] in ("debian:bookworm: bootstrapped",
                                             "debian:bookworm: imported from the cached root filesystem")

    started = time.monotonic()
    again = berth("mkimage", "debian:bookworm")
    assert time.monotonic() - started < 5
    assert again.stdout.strip() == image_id
    assert again.stderr.splitlines()[-1] == "debian:bookworm: already made (cache key matches)"

    info = json.loads(berth("inspect", "debian:bookworm").stdout)[0]
    assert info["Config"]["Cmd"] == ["bash"]
    assert info["Config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert info["Config"]["Labels"] == {mkimage.KEY_LABEL: spec(arch=mkimage.host_arch()).key}
    assert len(info["RootFS"]["Layers"]) == 1

    # Removed, it comes back from the cached root filesystem: the same layer.
    berth("rmi", "debian:bookworm")
    started = time.monotonic()
    again = berth("mkimage", "debian:bookworm", timeout=120)
    assert time.monotonic() - started < 30
    assert again.stderr.splitlines()[-1] == "debian:bookworm: imported from the cached root filesystem"
    assert info["RootFS"]["Layers"] == json.loads(berth("inspect", "debian:bookworm").stdout)[0]["RootFS"]["Layers"]


@pytest.mark.slow
def test_the_base_image_is_debian_with_working_apt(berth):
    berth("mkimage", "-q", "debian:bookworm", timeout=600)
    p = berth("run", "--rm", "debian:bookworm", "bash", "-c",
              ". /etc/os-release && echo $VERSION_CODENAME && "
              "find /var/lib/apt/lists /var/cache/apt -type f ! -name lock | wc -l && "
              "apt-get update -qq && apt-cache policy bash | grep -c deb.debian.org", timeout=300)
    codename, cached_files, origins = p.stdout.splitlines()
    assert codename == "bookworm"
    assert cached_files == "0"          # shipped without lists or caches, as the official image
    assert int(origins) >= 1            # ... and apt-get update fetches them in a container
    berth("network", "prune", "-f", check=False)
