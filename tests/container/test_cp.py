"""`berth cp`: Docker's copy rules, both directions, running and stopped
containers, volumes, and paths that try to leave the container.

The expected messages and layouts are what Docker (20.10 daemon, 28 CLI)
prints for the same commands.
"""

import io
import os
import tarfile
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture
def ctr(berth, bb):
    """Makes containers from the busybox image; removes them (and their volumes) afterwards."""
    made = []

    def make(*args, run=True, setup=None):
        cid = berth(*(["run", "-d"] if run else ["create"]), *args, "bb", "sleep", "300").stdout.strip()
        made.append(cid)
        if setup:
            berth("exec", cid, "sh", "-c", setup)
        return cid[:12]
    yield make
    for cid in made:
        berth("rm", "-f", "-v", cid, check=False)


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return [m.name + ("/" if m.isdir() else "") for m in t.getmembers()]


def make_tar(*members) -> bytes:
    """(name, kind, payload) triples: kind "file", "dir", "symlink" (payload = target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(payload), 0o644
                t.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def cat(berth, c, path) -> str:
    return berth("exec", c, "cat", path).stdout


# -- from the container ------------------------------------------------------------


def test_file_into_directory_and_as_new_name(berth, ctr, tmp_path):
    c = ctr()
    berth("cp", f"{c}:/etc/passwd", tmp_path)
    assert (tmp_path / "passwd").read_text().startswith("root:x:0:0")
    berth("cp", f"{c}:/etc/passwd", tmp_path / "renamed")
    assert (tmp_path / "renamed").read_text() == (tmp_path / "passwd").read_text()
    # An existing file is overwritten.
    (tmp_path / "existing").write_text("old")
    berth("cp", f"{c}:/etc/group", tmp_path / "existing")
    assert (tmp_path / "existing").read_text().startswith("root:x:0:")


def test_directory_rules(berth, ctr, tmp_path):
    c = ctr(setup="mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b")
    berth("cp", f"{c}:/d", tmp_path / "new")            # missing: created with that name
    assert (tmp_path / "new/sub/b").read_text() == "b\n"
    (tmp_path / "into").mkdir()
    berth("cp", f"{c}:/d", tmp_path / "into")           # existing directory: copied into it
    assert (tmp_path / "into/d/a").read_text() == "a\n"
    (tmp_path / "contents").mkdir()
    berth("cp", f"{c}:/d/.", tmp_path / "contents")     # "/.": the content, not the directory
    assert sorted(os.listdir(tmp_path / "contents")) == ["a", "sub"]
    berth("cp", f"{c}:/d/.", tmp_path / "fresh")
    assert sorted(os.listdir(tmp_path / "fresh")) == ["a", "sub"]


def test_errors_in_dockers_words(berth, ctr, tmp_path):
    c = ctr()
    p = berth("cp", f"{c}:/nosuch", tmp_path, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == f"Error response from daemon: Could not find the file /nosuch in container {c}"
    p = berth("cp", f"{c}:/etc/passwd", tmp_path / "nodir/x", check=False)
    assert p.stderr.strip() == f'invalid output path: directory "{tmp_path}/nodir" does not exist'
    p = berth("cp", f"{c}:/etc/passwd", f"{tmp_path}/newdir/", check=False)
    assert (p.returncode, p.stderr.strip()) == (1, "no such directory")
    (tmp_path / "file").write_text("x")
    p = berth("cp", f"{c}:/etc", tmp_path / "file", check=False)
    assert (p.returncode, p.stderr.strip()) == (1, "cannot copy directory")
    p = berth("cp", "nosuchctr:/etc", tmp_path, check=False)
    assert p.stderr.strip() == "Error response from daemon: No such container: nosuchctr"
    p = berth("cp", f"{c}:/etc", f"{c}:/x", check=False)
    assert p.stderr.strip() == "copying between containers is not supported"
    p = berth("cp", "a", "b", check=False)
    assert p.stderr.strip() == "must specify at least one container source"


def test_to_stdout_is_the_daemons_archive(berth, ctr):
    c = ctr(setup="mkdir -p /d/sub && echo a > /d/a")
    assert tar_names(berth("cp", f"{c}:/d", "-", binary=True).stdout) == ["d/", "d/a", "d/sub/"]
    assert tar_names(berth("cp", f"{c}:/d/.", "-", binary=True).stdout) == ["./", "./a", "./sub/"]
    data = berth("cp", f"{c}:/etc/passwd", "-", binary=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        (member,) = t.getmembers()
        assert member.name == "passwd"
        assert t.extractfile(member).read().startswith(b"root:x:0:0")


def test_symlinks_copied_as_links_unless_followed(berth, ctr, tmp_path):
    c = ctr(setup="ln -s /etc /tmp/etclink && ln -s passwd /etc/pwlink && ln -s /nonexist /tmp/broken")
    berth("cp", f"{c}:/tmp/etclink", tmp_path)
    assert os.readlink(tmp_path / "etclink") == "/etc"
    berth("cp", "-L", f"{c}:/tmp/etclink", tmp_path / "followed")
    assert (tmp_path / "followed/passwd").is_file()
    berth("cp", f"{c}:/tmp/etclink/", tmp_path / "slash")     # a trailing "/" follows the link too
    assert (tmp_path / "slash/passwd").is_file()
    berth("cp", "-L", f"{c}:/etc/pwlink", tmp_path)           # the link's name, the target's content
    assert not (tmp_path / "pwlink").is_symlink()
    assert (tmp_path / "pwlink").read_text().startswith("root:")
    berth("cp", f"{c}:/tmp/broken", tmp_path)
    assert os.readlink(tmp_path / "broken") == "/nonexist"
    p = berth("cp", "-L", f"{c}:/tmp/broken", tmp_path / "b2", check=False)
    assert p.stderr.strip() == f"Error response from daemon: Could not find the file /nonexist in container {c}"


def test_symlink_to_root_stays_in_the_container(berth, ctr, tmp_path):
    marker = f"container-shadow-{uuid.uuid4().hex}"
    c = ctr(setup=f"ln -s / /evil && ln -s ../../../../../../etc /updir && echo {marker} > /etc/shadow")
    for src in ("/evil/etc/shadow", "/updir/shadow", "/evil/../../etc/shadow"):
        dest = tmp_path / uuid.uuid4().hex
        p = berth("cp", f"{c}:{src}", dest, check=False)
        # Either the container's file or a failure; never the host's shadow.
        assert p.returncode != 0 or dest.read_text() == marker + "\n", src
    berth("cp", "-L", f"{c}:/evil/etc", tmp_path / "etc")
    assert (tmp_path / "etc/shadow").read_text() == marker + "\n"
    assert (tmp_path / "etc/hostname").read_text().strip() == c


def test_writes_through_container_symlinks_stay_inside(berth, ctr, tmp_path):
    c = ctr(setup="ln -s / /evil && ln -s /tmp /tmplink")
    name = f"berth-cp-{uuid.uuid4().hex}"
    (tmp_path / name).write_text("payload")
    berth("cp", tmp_path / name, f"{c}:/evil/tmp/")
    berth("cp", tmp_path / name, f"{c}:/tmplink")            # a link to a directory: copied into it
    assert not os.path.exists(f"/tmp/{name}")
    assert cat(berth, c, f"/tmp/{name}") == "payload"


# -- into the container ----------------------------------------------------------------


def test_file_and_directory_into_container(berth, ctr, tmp_path):
    c = ctr()
    (tmp_path / "f").write_text("one")
    (tmp_path / "tree/sub").mkdir(parents=True)
    (tmp_path / "tree/a").write_text("a")
    (tmp_path / "tree/sub/b").write_text("b")
    os.symlink("a", tmp_path / "tree/lnk")
    berth("cp", tmp_path / "f", f"{c}:/tmp")                  # into a directory
    berth("cp", tmp_path / "f", f"{c}:/tmp/g")                # as a new name
    berth("cp", tmp_path / "tree", f"{c}:/t1")                # a directory as a new name
    berth("cp", tmp_path / "tree", f"{c}:/tmp")               # into a directory
    berth("cp", f"{tmp_path}/tree/.", f"{c}:/t2")             # its content
    berth("cp", f"{tmp_path}/tree/", f"{c}:/t3/")
    assert cat(berth, c, "/tmp/f") == cat(berth, c, "/tmp/g") == "one"
    listing = berth("exec", c, "find", "/t1", "/tmp/tree", "/t2", "/t3").stdout.split()
    for top in ("/t1", "/tmp/tree", "/t2", "/t3"):
        assert {f"{top}/a", f"{top}/sub/b", f"{top}/lnk"} <= set(listing)
    assert berth("exec", c, "readlink", "/t1/lnk").stdout.strip() == "a"


def test_errors_into_container(berth, ctr, tmp_path):
    c = ctr()
    (tmp_path / "f").write_text("one")
    p = berth("cp", tmp_path / "f", f"{c}:/nosuchdir/x", check=False)
    assert p.stderr.strip() == f"Error response from daemon: Could not find the file /nosuchdir in container {c}"
    p = berth("cp", tmp_path / "f", f"{c}:/nosuchdir/", check=False)
    assert (p.returncode, p.stderr.strip()) == (1, "no such directory")
    p = berth("cp", tmp_path, f"{c}:/etc/passwd", check=False)
    assert p.stderr.strip() == "cannot copy directory"
    p = berth("cp", tmp_path / "missing", f"{c}:/tmp", check=False)
    assert p.stderr.strip() == f"lstat {tmp_path}/missing: no such file or directory"
    p = berth("cp", "-", f"{c}:/etc/passwd", input=b"", check=False)
    assert p.stderr.decode().strip() == f'destination "{c}:/etc/passwd" must be a directory'


def test_tar_from_stdin(berth, ctr):
    c = ctr()
    berth("cp", "-", f"{c}:/tmp", input=make_tar(("x", "dir", None), ("x/y", "file", b"why"),
                                                   (".wh.z", "file", b"not a whiteout")))
    assert cat(berth, c, "/tmp/x/y") == "why"
    assert cat(berth, c, "/tmp/.wh.z") == "not a whiteout"


def test_hostile_stdin_tar_is_refused(berth, ctr):
    c = ctr()
    name = f"berth-escape-{uuid.uuid4().hex}"
    for evil in (f"../{name}", f"../../../../{name}", f"a/../../{name}"):
        p = berth("cp", "-", f"{c}:/", input=make_tar((evil, "file", b"bad")), check=False)
        assert p.returncode == 1
        assert "is outside of" in p.stderr.decode()
    p = berth("cp", "-", f"{c}:/tmp", input=make_tar(("up", "symlink", f"../../{name}")), check=False)
    assert p.returncode == 1 and "invalid symlink" in p.stderr.decode()
    # A link the archive itself plants is resolved inside the container too.
    berth("cp", "-", f"{c}:/tmp", input=make_tar(("root", "symlink", "/"),
                                                   (f"root/tmp/{name}", "file", b"inside")))
    assert cat(berth, c, f"/tmp/{name}") == "inside"
    assert not os.path.exists(f"/{name}") and not os.path.exists(f"/tmp/{name}")


def test_ownership_as_docker_applies_it(berth, ctr, tmp_path):
    (tmp_path / "owned").write_text("x")
    os.chown(tmp_path / "owned", 1234, 5678)
    plain = ctr()
    berth("cp", tmp_path / "owned", f"{plain}:/tmp/kept")
    berth("cp", "-a", tmp_path / "owned", f"{plain}:/tmp/kept-a")
    assert berth("exec", plain, "stat", "-c", "%u:%g", "/tmp/kept", "/tmp/kept-a").stdout.split() == \
        ["1234:5678", "1234:5678"]
    user = ctr("--user", "nobody")
    berth("cp", "-a", tmp_path / "owned", f"{user}:/tmp/user")
    assert berth("exec", user, "stat", "-c", "%u:%g", "/tmp/user").stdout.strip() == "65534:65534"
    # Copies out belong to whoever runs cp, as with Docker's client.
    berth("cp", f"{user}:/tmp/user", tmp_path / "back")
    st = os.stat(tmp_path / "back")
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


# -- stopped containers and volumes --------------------------------------------------------


def test_stopped_container_both_ways(berth, ctr, tmp_path):
    c = ctr(run=False)
    (tmp_path / "f").write_text("before start")
    berth("cp", tmp_path / "f", f"{c}:/tmp/f")
    berth("cp", f"{c}:/tmp/f", tmp_path / "back")
    assert (tmp_path / "back").read_text() == "before start"
    with open("/proc/self/mountinfo") as m:
        assert str(berth.root) not in m.read()            # nothing left mounted
    berth("start", c)
    assert cat(berth, c, "/tmp/f") == "before start"
    berth("stop", "-t", "0", c)
    berth("cp", f"{c}:/etc/hostname", tmp_path / "hn")     # the container's own network files
    assert (tmp_path / "hn").read_text().strip() == c


def test_volumes_of_a_running_container(berth, ctr, tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "host.txt").write_text("from host")
    c = ctr("-v", f"{bind}:/data", "-v", f"cpvol-{uuid.uuid4().hex[:8]}:/vol", "-v", f"{bind}:/ro:ro")
    (tmp_path / "f").write_text("into volume")
    berth("cp", tmp_path / "f", f"{c}:/vol/f")
    berth("cp", tmp_path / "f", f"{c}:/data/f")
    assert cat(berth, c, "/vol/f") == "into volume"
    assert (bind / "f").read_text() == "into volume"
    berth("exec", c, "sh", "-c", "echo made inside > /vol/inside")
    berth("cp", f"{c}:/vol/inside", tmp_path / "inside")
    assert (tmp_path / "inside").read_text() == "made inside\n"
    berth("cp", f"{c}:/data/host.txt", tmp_path / "h")
    assert (tmp_path / "h").read_text() == "from host"
    (tmp_path / "g").write_text("refused")
    p = berth("cp", tmp_path / "g", f"{c}:/ro/", check=False)
    assert p.stderr.strip() == "Error response from daemon: mounted volume is marked read-only"
    assert not (bind / "g").exists()


def test_read_only_rootfs_refuses_copies_in(berth, ctr, tmp_path):
    c = ctr("--read-only")
    (tmp_path / "f").write_text("x")
    p = berth("cp", tmp_path / "f", f"{c}:/tmp/", check=False)
    assert p.stderr.strip() == "Error response from daemon: container rootfs is marked read-only"
    berth("cp", f"{c}:/etc/passwd", tmp_path / "out")      # reading is fine
