"""The volume store: create, look up, filters, removal while in use, prune,
sizes, and the local driver's mounted (tmpfs) volumes."""

import json
import os
import re
import shutil
import time

import pytest

from berth.container.paths import run_dir
from berth.container.volumes import ANONYMOUS_LABEL, VolumeStore, is_mountpoint, rfc3339_local
from berth.errors import Conflict, InvalidArgument, NotFound, Unavailable
from berth.store.state import State


@pytest.fixture
def state(root):
    s = State(root)
    try:
        yield s
    finally:
        s.db.close()
        shutil.rmtree(run_dir(root), ignore_errors=True)


@pytest.fixture
def store(state):
    return VolumeStore(state)


def add_container(state, cid=None) -> str:
    """A bare container row, enough for volume_users' foreign key."""
    cid = cid or os.urandom(32).hex()
    with state.db.transaction() as conn:
        conn.execute("INSERT OR IGNORE INTO images(id, manifest_digest, manifest_media_type, size, added_at)"
                     " VALUES ('sha256:test', 'sha256:m', 'application/json', 0, 0)")
        conn.execute("INSERT INTO containers(id, name, image_id, created, status, config, state)"
                     " VALUES (?, ?, 'sha256:test', ?, 'created', '{}', '{}')", (cid, "c" + cid[:11], time.time()))
    return cid


def delete_container(state, cid) -> None:
    with state.db.transaction() as conn:
        conn.execute("DELETE FROM containers WHERE id=?", (cid,))


# -- create and inspect ----------------------------------------------------------------

def test_create_lays_out_docker_directories(store, root):
    v = store.create("data", labels={"a": "b"}, options={})
    assert v.mountpoint == root / "volumes" / "data" / "_data"
    assert v.mountpoint.is_dir()
    assert oct(os.stat(root / "volumes" / "data").st_mode & 0o777) == "0o701"
    assert oct(os.stat(v.mountpoint).st_mode & 0o777) == "0o755"
    info = store.inspect("data")
    assert list(info) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert info["Driver"] == "local" and info["Scope"] == "local" and info["Name"] == "data"
    assert info["Labels"] == {"a": "b"} and info["Options"] == {}
    assert info["Mountpoint"] == str(v.mountpoint)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", info["CreatedAt"])


def test_labels_and_options_stay_null_when_not_given(store):
    info = store.create("plain").inspect()
    assert info["Labels"] is None and info["Options"] is None


def test_create_is_idempotent(store):
    first = store.create("data", labels={"a": "1"})
    (first.mountpoint / "keep").write_text("x")
    again = store.create("data", labels={"b": "2"}, options={"bogus": "1"})
    assert again.labels == {"a": "1"} and again.created == first.created
    assert (again.mountpoint / "keep").read_text() == "x"


def test_anonymous_volumes_get_a_hex_name_and_the_label(store):
    v = store.create()
    assert re.fullmatch(r"[0-9a-f]{64}", v.name)
    assert v.anonymous and v.labels == {ANONYMOUS_LABEL: ""}


@pytest.mark.parametrize("name,message", [
    ("a", "create a: volume name is too short, names should be at least two alphanumeric characters"),
    ("bad!", 'create bad!: "bad!" includes invalid characters for a local volume name, only '
             '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
    ("../up", 'create ../up: "../up" includes invalid characters for a local volume name, only '
              '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
    (".hidden", 'create .hidden: ".hidden" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
])
def test_invalid_names(store, root, name, message):
    with pytest.raises(InvalidArgument) as e:
        store.create(name)
    assert str(e.value) == message
    assert not (root / "volumes" / name).exists()


@pytest.mark.parametrize("options,message", [
    ({"foo": "bar"}, 'create v1: invalid option: "foo"'),
    ({"type": "tmpfs"}, 'create v1: missing required option: "device"'),
    ({"device": "tmpfs"}, 'create v1: missing required option: "type"'),
    ({"size": "10m"}, "create v1: quota size requested but no quota support"),
    ({"size": "lots"}, "create v1: invalid size: 'lots'"),
])
def test_invalid_local_options(store, options, message):
    with pytest.raises(InvalidArgument) as e:
        store.create("v1", options=options)
    assert str(e.value) == message


def test_unknown_driver(store):
    with pytest.raises(NotFound) as e:
        store.create("v1", driver="nfs-plugin")
    assert str(e.value) == 'create v1: error looking up volume plugin nfs-plugin: plugin "nfs-plugin" not found'


def test_missing_volume(store):
    with pytest.raises(NotFound) as e:
        store.get("nope")
    assert str(e.value) == "get nope: no such volume"


def test_stale_directory_is_not_reused(store, root):
    """A directory left by an interrupted remove must not leak into a new volume."""
    stale = root / "volumes" / "reborn" / "_data"
    stale.mkdir(parents=True)
    (stale / "old-secret").write_text("x")
    v = store.create("reborn")
    assert list(v.mountpoint.iterdir()) == []


def test_created_at_is_rfc3339_in_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert rfc3339_local(0) == "1970-01-01T00:00:00Z"
        monkeypatch.setenv("TZ", "Europe/Berlin")
        time.tzset()
        assert rfc3339_local(0) == "1970-01-01T01:00:00+01:00"
    finally:
        monkeypatch.undo()
        time.tzset()


# -- list and filters ------------------------------------------------------------------

def test_list_filters(state, store):
    store.create("alpha", labels={"env": "prod", "tier": "db"})
    store.create("beta", labels={"env": "dev"})
    anon = store.create().name
    cid = add_container(state)
    store.use("alpha", cid)

    def names(**filters):
        return [v.name for v in store.list({k: v if isinstance(v, list) else [v] for k, v in filters.items()})]

    assert names() == sorted(["alpha", "beta", anon])
    assert names(dangling="true") == sorted(["beta", anon])
    assert names(dangling="0") == ["alpha"]
    assert names(name="alp") == ["alpha"]
    assert names(name="^b.t") == ["beta"]
    assert names(name=["alpha", "beta"]) == ["alpha", "beta"]
    assert names(label="env") == ["alpha", "beta"]
    assert names(label="env=prod") == ["alpha"]
    assert names(label=["env", "tier=db"]) == ["alpha"]
    assert names(label=ANONYMOUS_LABEL) == [anon]
    assert names(driver="local") == sorted(["alpha", "beta", anon])
    assert names(driver="other") == []


@pytest.mark.parametrize("filters,message", [
    ({"dangling": ["maybe"]}, "invalid filter 'dangling=maybe'"),
    ({"dangling": ["true", "false"]}, "invalid filter 'dangling=true,false'"),
    ({"until": ["1h"]}, "invalid filter 'until'"),
])
def test_list_filter_errors(store, filters, message):
    with pytest.raises(InvalidArgument) as e:
        store.list(filters)
    assert str(e.value) == message


# -- references and removal -------------------------------------------------------------

def test_remove_in_use_names_the_containers(state, store, root):
    store.create("busy")
    a, b = sorted([add_container(state), add_container(state)])
    store.use("busy", a)
    store.use("busy", b)
    with pytest.raises(Conflict) as e:
        store.remove("busy", force=True)
    assert str(e.value) == f"remove busy: volume is in use - [{a}, {b}]"
    store.release("busy", a)
    delete_container(state, b)  # the foreign key drops its reference with it
    assert store.users("busy") == []
    store.remove("busy")
    assert store.find("busy") is None
    assert not (root / "volumes" / "busy").exists()


def test_remove_missing(store):
    with pytest.raises(NotFound) as e:
        store.remove("ghost")
    assert str(e.value) == "get ghost: no such volume"
    store.remove("ghost", force=True)


def test_use_needs_the_volume(state, store):
    with pytest.raises(NotFound):
        store.use("ghost", add_container(state))


def test_release_container_and_anonymous_volumes(state, store):
    cid = add_container(state)
    named = store.create("named", user=cid).name
    anon = store.create(user=cid).name
    assert store.anonymous_volumes(cid) == [anon]
    assert store.release_container(cid) == sorted([named, anon])
    assert store.users(named) == [] and store.users(anon) == []


def test_remove_leaves_no_trash(store, root):
    v = store.create("gone")
    (v.mountpoint / "sub").mkdir()
    (v.mountpoint / "sub" / "f").write_text("x" * 100)
    store.remove("gone")
    assert sorted(os.listdir(root / "volumes")) == []


def test_remove_never_deletes_through_a_mount(state, store, tmp_path):
    """A volume whose _data is still mounted (a bind of a host dir) loses the mount, not the host's files."""
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "precious").write_text("keep me")
    v = store.create("bound", options={"type": "none", "device": str(host), "o": "bind"})
    path = store.mount("bound", "probe")
    try:
        assert (path / "precious").read_text() == "keep me"
        store.remove("bound")  # not used by any container: Docker would unmount and delete
    finally:
        if is_mountpoint(v.mountpoint):
            os.system(f"umount -l {v.mountpoint}")
    assert (host / "precious").read_text() == "keep me"


# -- prune ------------------------------------------------------------------------------------

def test_prune_takes_unused_anonymous_volumes_only(state, store):
    cid = add_container(state)
    used_anon = store.create(user=cid).name
    unused_anon = store.create()
    (unused_anon.mountpoint / "f").write_bytes(b"x" * 1000)
    store.create("named")
    store.create(options={"type": "tmpfs", "device": "tmpfs"})  # mount options: never pruned
    deleted, reclaimed = store.prune()
    assert deleted == [unused_anon.name] and reclaimed == 1000
    assert store.find(used_anon) is not None and store.find("named") is not None


def test_prune_all_and_label_filters(state, store):
    store.create("keep", labels={"keep": "yes"})
    store.create("drop", labels={"keep": "no"})
    store.create("other")
    deleted, _ = store.prune(all=True, filters={"label!": ["keep=yes"]})
    assert sorted(deleted) == ["drop", "other"]
    assert [v.name for v in store.list()] == ["keep"]
    deleted, _ = store.prune(filters={"all": ["true"], "label": ["keep"]})
    assert deleted == ["keep"]


@pytest.mark.parametrize("filters,message", [
    ({"all": ["true", "false"]}, "invalid filter 'all=[true false]': only one value is expected"),
    ({"all": ["yes"]}, "invalid filter 'all': strconv.ParseBool: parsing \"yes\": invalid syntax"),
    ({"dangling": ["true"]}, "invalid filter 'dangling'"),
])
def test_prune_filter_errors(store, filters, message):
    with pytest.raises(InvalidArgument) as e:
        store.prune(filters=filters)
    assert str(e.value) == message


# -- sizes ---------------------------------------------------------------------------------------

def test_usage_counts_files_once_and_skips_mounted_volumes(state, store):
    v = store.create("sized")
    (v.mountpoint / "a").write_bytes(b"x" * 300)
    os.link(v.mountpoint / "a", v.mountpoint / "hard")
    (v.mountpoint / "d").mkdir()
    (v.mountpoint / "d" / "b").write_bytes(b"y" * 20)
    os.symlink("a", v.mountpoint / "link")
    store.use("sized", add_container(state))
    store.create("tmp", options={"type": "tmpfs", "device": "tmpfs"})
    usage = {u.volume.name: u for u in store.usage()}
    assert list(usage) == ["sized"]
    assert usage["sized"].size == 300 + 20 + len("a") and usage["sized"].links == 1
    assert store.size("sized") == 321


# -- the local driver's mounted volumes -----------------------------------------------------------

def test_tmpfs_volume_is_mounted_while_used(state, store):
    v = store.create("scratch", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=1777"})
    assert v.needs_mount
    a, b = add_container(state), add_container(state)
    try:
        assert store.mount("scratch", a) == v.mountpoint
        assert is_mountpoint(v.mountpoint)
        (v.mountpoint / "shared").write_text("hello")
        store.mount("scratch", b)
        store.unmount("scratch", a)
        assert (v.mountpoint / "shared").read_text() == "hello"  # b still holds it
        store.unmount("scratch", b)
        assert not is_mountpoint(v.mountpoint)
        assert not (v.mountpoint / "shared").exists()  # a tmpfs forgets
        with open("/proc/self/mountinfo") as f:
            assert str(v.mountpoint) not in f.read()
    finally:
        if is_mountpoint(v.mountpoint):
            os.system(f"umount -l {v.mountpoint}")


def test_references_of_deleted_containers_do_not_pin_the_mount(state, store):
    v = store.create("scratch", options={"type": "tmpfs", "device": "tmpfs"})
    gone, live = add_container(state), add_container(state)
    try:
        store.mount("scratch", gone)
        delete_container(state, gone)  # died without unmounting
        store.mount("scratch", live)
        store.unmount("scratch", live)
        assert not is_mountpoint(v.mountpoint)
    finally:
        if is_mountpoint(v.mountpoint):
            os.system(f"umount -l {v.mountpoint}")


def test_failed_device_mount_reports_docker_words(state, store):
    store.create("broken", options={"type": "nosuchfs", "device": "nothing"})
    with pytest.raises(Unavailable) as e:
        store.mount("broken", add_container(state))
    assert str(e.value).startswith(f"error while mounting volume '{store.data_path('broken')}': "
                                   f"failed to mount local volume: mount nothing:{store.data_path('broken')}: ")
    assert not is_mountpoint(store.data_path("broken"))


def test_plain_volumes_need_no_mount(state, store):
    v = store.create("plain")
    assert store.mount("plain", add_container(state)) == v.mountpoint
    assert not is_mountpoint(v.mountpoint)


def test_rows_are_json(state, store):
    store.create("jj", labels={"k": "v"})
    row = state.db.query_one("SELECT labels, options, anonymous FROM volumes WHERE name='jj'")
    assert json.loads(row["labels"]) == {"k": "v"} and json.loads(row["options"]) is None
    assert row["anonymous"] == 0


def test_prune_sweeps_directories_without_a_row(store, root):
    """What an interrupted create or remove left: never listed, removed by the next prune."""
    store.create("real")
    (root / "volumes" / "orphan" / "_data").mkdir(parents=True)
    (root / "volumes" / ".trash-0123").mkdir()
    (root / "volumes" / ".trash-0123" / "f").write_text("x")
    store.prune()
    assert sorted(os.listdir(root / "volumes")) == ["real"]


def test_references_of_dead_processes_do_not_pin_the_mount(state, store):
    v = store.create("scratch", options={"type": "tmpfs", "device": "tmpfs"})
    cid = add_container(state)
    try:
        store.mount("scratch", "pid-999999999-dead")  # a copy-up whose process was killed
        store.mount("scratch", cid)
        store.unmount("scratch", cid)
        assert not is_mountpoint(v.mountpoint)
    finally:
        if is_mountpoint(v.mountpoint):
            os.system(f"umount -l {v.mountpoint}")


def _create_many(root, cids, name):
    s = State(root)
    try:
        for cid in cids:
            VolumeStore(s).create(name, user=cid)
    finally:
        s.db.close()


def test_concurrent_creates_of_one_name_make_one_volume(state, root):
    """Several processes (CLI calls) racing on one name: one volume, every reference kept."""
    import multiprocessing
    cids = [add_container(state) for _ in range(12)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_create_many, args=(root, cids[i::4], "raced")) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    store = VolumeStore(state)
    assert [v.name for v in store.list()] == ["raced"]
    assert store.users("raced") == sorted(cids)
