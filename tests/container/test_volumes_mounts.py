"""A container's mounts: planning at create, copy-up of image content, the
runtime mounts of each run, and removal of anonymous volumes."""

import os
import shutil
import stat
import time

import pytest

from berth.container.paths import run_dir
from berth.container.volumes import (
    ANONYMOUS_LABEL, BIND, TMPFS, VOLUME, MountPoint, VolumeStore, activate_mounts, copy_up, deactivate_mounts,
    is_mountpoint, parse_mount_spec, parse_volume_spec, plan_mounts, populate_volumes, prepare_mounts,
    remove_anonymous_volumes)
from berth.errors import InvalidArgument, NotFound
from berth.store.state import State


@pytest.fixture
def state(root):
    s = State(root)
    try:
        yield s
    finally:
        s.db.close()
        shutil.rmtree(run_dir(root), ignore_errors=True)


def add_container(state, cid=None) -> str:
    cid = cid or os.urandom(32).hex()
    with state.db.transaction() as conn:
        conn.execute("INSERT OR IGNORE INTO images(id, manifest_digest, manifest_media_type, size, added_at)"
                     " VALUES ('sha256:test', 'sha256:m', 'application/json', 0, 0)")
        conn.execute("INSERT INTO containers(id, name, image_id, created, status, config, state)"
                     " VALUES (?, ?, 'sha256:test', ?, 'created', '{}', '{}')", (cid, "c" + cid[:11], time.time()))
    return cid


@pytest.fixture
def image_root(tmp_path):
    """An "image" root filesystem with content under /data and /etc, and a canary outside it."""
    rootfs = tmp_path / "rootfs"
    data = rootfs / "data"
    (data / "sub").mkdir(parents=True)
    (data / "file").write_text("from the image")
    os.chown(data / "file", 1234, 5678)
    os.chmod(data / "file", 0o4751)
    (data / "sub" / "deep").write_text("deep")
    os.chown(data / "sub", 42, 43)
    os.chmod(data / "sub", 0o710)
    os.link(data / "file", data / "hardlink")
    os.symlink("/etc/passwd", data / "abs-link")
    os.symlink("../../../../../../etc/shadow", data / "rel-link")
    os.mkfifo(data / "fifo", 0o640)
    os.mknod(data / "null", 0o620 | stat.S_IFCHR, os.makedev(1, 3))
    os.utime(data / "sub" / "deep", ns=(1_000_000_000, 2_000_000_000))
    os.setxattr(data / "file", "user.note", b"xattr kept")
    os.chown(data, 7, 8)
    os.chmod(data, 0o750)
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "passwd").write_text("image passwd")
    (rootfs / "plainfile").write_text("not a directory")
    return rootfs


# -- copy-up ------------------------------------------------------------------------------

def test_copy_up_preserves_what_docker_preserves(image_root, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    assert copy_up(image_root, "/data", vol)
    st = os.stat(vol)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o750)
    f = os.stat(vol / "file")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1234, 5678, 0o4751)  # setuid survives the chown
    assert (vol / "file").read_text() == "from the image"
    assert os.getxattr(vol / "file", "user.note") == b"xattr kept"
    assert os.stat(vol / "hardlink").st_ino == f.st_ino
    sub = os.stat(vol / "sub")
    assert (sub.st_uid, sub.st_gid, stat.S_IMODE(sub.st_mode)) == (42, 43, 0o710)
    assert os.stat(vol / "sub" / "deep").st_mtime_ns == 2_000_000_000
    assert os.readlink(vol / "abs-link") == "/etc/passwd"
    assert os.readlink(vol / "rel-link") == "../../../../../../etc/shadow"
    assert stat.S_ISFIFO(os.lstat(vol / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(vol / "fifo").st_mode) == 0o640
    null = os.lstat(vol / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)


def test_copy_up_only_into_an_empty_volume(image_root, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "mine").write_text("user data")
    assert not copy_up(image_root, "/data", vol)
    assert os.listdir(vol) == ["mine"]


def test_copy_up_of_a_missing_path_is_nothing(image_root, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    assert not copy_up(image_root, "/not/there", vol)
    assert os.listdir(vol) == []


def test_copy_up_over_a_file_is_refused(image_root, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    with pytest.raises(InvalidArgument, match="cannot mount volume over existing file, file exists"):
        copy_up(image_root, "/plainfile", vol)


@pytest.mark.parametrize("link", ["/etc", "../../../../etc", "/../../etc"])
def test_an_image_symlink_cannot_reach_the_host(image_root, tmp_path, link):
    """The volume path is a symlink in the image: it resolves inside the image, never to host /etc."""
    os.symlink(link, image_root / "escape")
    vol = tmp_path / "vol"
    vol.mkdir()
    assert copy_up(image_root, "/escape", vol)
    assert os.listdir(vol) == ["passwd"]
    assert (vol / "passwd").read_text() == "image passwd"


def test_an_intermediate_symlink_cannot_reach_the_host(image_root, tmp_path):
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "key").write_text("host secret")
    os.symlink(str(outside), image_root / "up")
    vol = tmp_path / "vol"
    vol.mkdir()
    assert not copy_up(image_root, "/up/secret", vol)  # /up -> <outside> does not exist in the image
    assert os.listdir(vol) == []


# -- planning at create --------------------------------------------------------------------

def test_plan_named_anonymous_bind_and_tmpfs(state, tmp_path):
    cid = add_container(state)
    host = tmp_path / "host"
    host.mkdir()
    specs = [parse_volume_spec(f"{host}:/h:ro"), parse_volume_spec("named:/n"),
             parse_mount_spec("type=volume,dst=/m,volume-label=x=y"),
             parse_mount_spec("type=tmpfs,dst=/t,tmpfs-size=1m")]
    points = plan_mounts(state, specs, {"/image-vol": {}, "/n": {}, "/tmpfs-covered": {}}, cid,
                         tmpfs={"/tmpfs-covered": ""})
    by_dest = {p.destination: p for p in points}
    assert sorted(by_dest) == ["/h", "/image-vol", "/m", "/n", "/t"]
    store = VolumeStore(state)

    assert by_dest["/h"].inspect() == {"Type": "bind", "Source": str(host), "Destination": "/h", "Mode": "ro",
                                       "RW": False, "Propagation": "rprivate"}
    named = by_dest["/n"].inspect()
    assert named == {"Type": "volume", "Name": "named", "Source": str(store.data_path("named")),
                     "Destination": "/n", "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    image_vol = by_dest["/image-vol"]
    assert image_vol.mode == "" and image_vol.anonymous and image_vol.copy_data
    assert store.get(image_vol.name).labels == {ANONYMOUS_LABEL: ""}
    mount_vol = by_dest["/m"]
    assert mount_vol.anonymous and mount_vol.mode == "z"
    assert store.get(mount_vol.name).labels == {"x": "y", ANONYMOUS_LABEL: ""}
    assert by_dest["/t"].inspect() == {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True,
                                       "Propagation": ""}
    assert sorted(store.users(n)[0] for n in ("named", image_vol.name, mount_vol.name)) == [cid] * 3
    assert sorted(store.anonymous_volumes(cid)) == sorted([image_vol.name, mount_vol.name])
    for p in points:
        assert MountPoint.from_record(p.to_record()) == p


@pytest.mark.parametrize("specs,tmpfs,message", [
    (["/a:/x", "/b:/x"], {}, "Duplicate mount point: /x"),
    (["/a:/x/"], {"/x": ""}, "Duplicate mount point: /x"),
    (["vol:/x", "type=bind,src=/,dst=/x/"], {}, "Duplicate mount point: /x/"),
    (["type=bind,src=/no/such/host/dir,dst=/x"], {},
     'invalid mount config for type "bind": bind source path does not exist: /no/such/host/dir'),
    (["bad!:/x"], {}, 'create bad!: "bad!" includes invalid characters for a local volume name, only '
                      '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                      "use absolute path"),
])
def test_plan_errors(state, specs, tmpfs, message):
    cid = add_container(state)
    parsed = [parse_mount_spec(s) if s.startswith("type=") else parse_volume_spec(s) for s in specs]
    with pytest.raises(InvalidArgument) as e:
        plan_mounts(state, parsed, {}, cid, tmpfs=tmpfs)
    assert str(e.value) == message


def test_a_failed_plan_creates_no_volume(state):
    cid = add_container(state)
    with pytest.raises(InvalidArgument):
        plan_mounts(state, [parse_volume_spec("good:/a"), parse_volume_spec("bad!:/b")], {"/c": {}}, cid)
    assert VolumeStore(state).list() == []


def test_plan_rejects_relative_config_volumes(state):
    with pytest.raises(InvalidArgument, match="mount path must be absolute"):
        plan_mounts(state, [], {"relative": {}}, add_container(state))


def test_plan_with_unknown_driver(state):
    with pytest.raises(NotFound, match='plugin "flocker" not found'):
        plan_mounts(state, [parse_volume_spec("v1:/a", "flocker")], {}, add_container(state))


# -- populating and running ---------------------------------------------------------------------

def test_populate_copies_into_new_volumes_not_nocopy_or_used_ones(state, image_root):
    cid = add_container(state)
    store = VolumeStore(state)
    used = store.create("used")
    (used.mountpoint / "mine").write_text("keep")
    specs = [parse_volume_spec("used:/data"), parse_volume_spec("fresh:/etc"),
             parse_volume_spec("skipped:/data/sub:nocopy")]
    points = plan_mounts(state, specs, {"/data/sub": {}}, cid)
    populate_volumes(state, points, image_root)
    assert os.listdir(used.mountpoint) == ["mine"]
    assert (store.data_path("fresh") / "passwd").read_text() == "image passwd"
    assert os.listdir(store.data_path("skipped")) == []


def test_activate_returns_oci_mounts_and_creates_bind_sources(state, tmp_path):
    cid = add_container(state)
    missing = tmp_path / "made" / "at" / "start"
    specs = [parse_volume_spec(f"{missing}:/b:ro"), parse_volume_spec("vv:/v"),
             parse_mount_spec("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=700"),
             parse_mount_spec(f"type=bind,src={tmp_path},dst=/nr,bind-nonrecursive,bind-propagation=rslave")]
    points = plan_mounts(state, specs, {}, cid)
    resolved = activate_mounts(state, points, cid)
    assert missing.is_dir()
    oci = {r.destination: r.mount.to_oci() for r in resolved}
    assert oci["/b"] == {"destination": "/b", "type": "bind", "source": str(missing),
                         "options": ["rbind", "ro", "rprivate"]}
    assert oci["/v"] == {"destination": "/v", "type": "bind", "source": str(VolumeStore(state).data_path("vv")),
                         "options": ["rbind"]}
    assert oci["/t"]["type"] == "tmpfs"
    assert oci["/t"]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "mode=700", "size=1m"]
    assert oci["/nr"]["options"] == ["bind", "rslave"]
    assert [r.readonly for r in resolved] == [True, False, False, False]
    deactivate_mounts(state, points, cid)


def test_a_tmpfs_volume_is_mounted_for_the_run_and_released_after(state, image_root):
    store = VolumeStore(state)
    store.create("scratch", options={"type": "tmpfs", "device": "tmpfs", "o": "size=2m"})
    a, b = add_container(state), add_container(state)
    try:
        resolved_a = prepare_mounts(state, [parse_volume_spec("scratch:/data")], {}, a, image_root)
        data = store.data_path("scratch")
        assert is_mountpoint(data)
        # Populated while mounted: the image's /data landed in the tmpfs.
        assert (data / "file").read_text() == "from the image"
        points_b = plan_mounts(state, [parse_volume_spec("scratch:/data")], {}, b)
        activate_mounts(state, points_b, b)
        deactivate_mounts(state, [r.point for r in resolved_a], a)
        assert is_mountpoint(data)  # b still runs
        deactivate_mounts(state, points_b, b)
        deactivate_mounts(state, points_b, b)  # twice is harmless
        assert not is_mountpoint(data)
    finally:
        if is_mountpoint(store.data_path("scratch")):
            os.system(f"umount -l {store.data_path('scratch')}")


def test_activation_failure_releases_what_it_took(state):
    store = VolumeStore(state)
    store.create("scratch", options={"type": "tmpfs", "device": "tmpfs"})
    store.create("broken", options={"type": "nosuchfs", "device": "x"})
    cid = add_container(state)
    points = plan_mounts(state, [parse_volume_spec("scratch:/a"), parse_volume_spec("broken:/b")], {}, cid)
    try:
        with pytest.raises(Exception, match="failed to mount local volume"):
            activate_mounts(state, points, cid)
        assert not is_mountpoint(store.data_path("scratch"))
    finally:
        if is_mountpoint(store.data_path("scratch")):
            os.system(f"umount -l {store.data_path('scratch')}")


# -- removal ----------------------------------------------------------------------------------

def test_rm_v_removes_anonymous_volumes_only(state):
    store = VolumeStore(state)
    cid, other = add_container(state), add_container(state)
    points = plan_mounts(state, [parse_volume_spec("named:/n"), parse_mount_spec("type=volume,dst=/m")],
                         {"/img": {}}, cid)
    anon = sorted(p.name for p in points if p.anonymous)
    shared = next(p.name for p in points if p.destination == "/img")
    store.use(shared, other)  # another container mounts the anonymous volume by name
    removed = remove_anonymous_volumes(state, points, cid)
    assert removed == [n for n in anon if n != shared]
    assert store.find("named") is not None and store.find(shared) is not None
    assert store.users("named") == [] and store.users(shared) == [other]


def test_types_are_docker_names():
    assert (BIND, VOLUME, TMPFS) == ("bind", "volume", "tmpfs")
