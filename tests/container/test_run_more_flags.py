"""run/create flags: --cgroup-parent, --annotation, --userns, and the per-device
block IO limits (--device-{read,write}-{bps,iops}, --blkio-weight-device),
checked in the kernel's cgroup files, the OCI bundle and inspect."""

import json
import os
import sys
from pathlib import Path

import pytest

from berthtest import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))
from apitest import ApiDaemon, clean_root, require_docker_cli  # noqa: E402

CGROUP = Path("/sys/fs/cgroup")
NONET = ("--network", "none")


def root_disk() -> tuple[str, int, int]:
    """(/dev path, major, minor) of the whole disk under the root filesystem."""
    dev = os.stat("/").st_dev
    sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not sys_dev.exists():
        pytest.skip("the root filesystem is not on a block device")
    sys_dev = sys_dev.resolve()
    if (sys_dev / "partition").exists():
        sys_dev = sys_dev.parent
    major, minor = (int(x) for x in (sys_dev / "dev").read_text().split(":"))
    path = f"/dev/{sys_dev.name}"
    if not os.path.exists(path):
        pytest.skip(f"{path} is not present")
    return path, major, minor


def own_cgroups(pid) -> dict[str, str]:
    """{controllers: path} from /proc/PID/cgroup ("" for the unified tree)."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls] = path
    return out


def hierarchy_dirs(inner: str) -> list[Path]:
    """`inner` (a path inside the cgroup trees) in every mounted hierarchy that has it."""
    return [d / inner.lstrip("/") for d in [CGROUP, *CGROUP.iterdir()]
            if d.is_dir() and (d / inner.lstrip("/")).is_dir()]


def remove_parent(inner: str) -> None:
    for d in hierarchy_dirs(inner):
        d.rmdir()


def inspect(berth, name, template="{{json .HostConfig}}"):
    return json.loads(berth("inspect", "-f", template, name).stdout)


def bundle_config(berth, cid) -> dict:
    return json.loads((berth.root / "containers" / cid / "bundle" / "config.json").read_text())


def test_cgroup_parent_absolute_and_relative(berth, bb):
    parent = f"/berth-test-parent-{os.getpid()}"
    relative = f"berth-test-rel-{os.getpid()}/sub"
    try:
        cid = berth("run", "-d", *NONET, "--name", "abs", "--cgroup-parent", parent, bb, "sleep", "60").stdout.strip()
        pid = inspect(berth, "abs", "{{.State.Pid}}")
        placed = own_cgroups(pid)
        for ctrls in ("memory", "pids", "blkio", ""):
            assert next(p for k, p in placed.items() if ctrls in k.split(",")) == f"{parent}/{cid}"
        assert inspect(berth, "abs")["CgroupParent"] == parent
        assert bundle_config(berth, cid)["linux"]["cgroupsPath"] == f"{parent}/{cid}"
        assert "sleep 60" in berth("top", "abs").stdout   # top finds the processes under the parent
        leaves = hierarchy_dirs(f"{parent}/{cid}")
        assert len(leaves) >= 4
        berth("rm", "-f", "abs")
        assert not any(leaf.exists() for leaf in leaves)
        assert hierarchy_dirs(parent)          # the parent stays, as with runc

        # A relative parent sits below the runtime's own cgroup (berth's, as runc's).
        cid = berth("run", "-d", *NONET, "--name", "rel", "--cgroup-parent", relative, bb,
                    "sleep", "60").stdout.strip()
        placed = own_cgroups(inspect(berth, "rel", "{{.State.Pid}}"))
        mine = own_cgroups("self")
        for ctrls in ("memory", "pids", ""):
            key = next(k for k in placed if ctrls in k.split(","))
            assert placed[key] == os.path.join(mine[key], relative, cid)
        assert bundle_config(berth, cid)["linux"]["cgroupsPath"] == f"{relative}/{cid}"
        berth("rm", "-f", "rel")
        assert not hierarchy_dirs(os.path.join(mine["memory"], relative, cid)[1:])
    finally:
        berth("rm", "-f", "abs", "rel", check=False)
        remove_parent(parent)
        for own in set(own_cgroups("self").values()):
            remove_parent(os.path.join(own, relative))
            remove_parent(os.path.join(own, relative.split("/")[0]))


def test_oom_kill_noticed_under_a_relative_parent(berth, bb):
    relative = f"berth-test-oom-{os.getpid()}"
    try:
        p = berth("run", "--name", "hog", *NONET, "--cgroup-parent", relative, "--memory", "32m", bb, "sh", "-c",
                  "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; "
                  "while true; do x=$x$x; done", check=False, timeout=60)
        assert p.returncode == 137
        state = json.loads(berth("inspect", "-f", "{{json .State}}", "hog").stdout)
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
    finally:
        berth("rm", "-f", "hog", check=False)
        for own in set(own_cgroups("self").values()):
            remove_parent(os.path.join(own, relative))


def test_annotations_in_the_bundle_and_inspect(berth, bb):
    cid = berth("run", "-d", *NONET, "--name", "annotated", "--annotation", "com.example.team=a",
                "--annotation", "com.example.flag", "--annotation", "com.example.team=b", bb,
                "sleep", "60").stdout.strip()
    expected = {"com.example.team": "b", "com.example.flag": ""}
    assert inspect(berth, "annotated")["Annotations"] == expected
    assert bundle_config(berth, cid)["annotations"] == expected
    berth("rm", "-f", "annotated")
    r = berth("create", "--annotation", "=x", bb, "true", check=False)
    assert r.returncode == 125
    assert r.stderr.strip().endswith("invalid Annotations: the empty string is not permitted as an annotation key")
    assert berth("ps", "-aq").stdout == ""


def test_userns_host_only(berth, bb):
    out = berth("run", "--rm", *NONET, "--userns", "host", bb, "cat", "/proc/self/uid_map").stdout
    assert out.split() == ["0", "0", "4294967295"]
    berth("create", "--name", "hostns", "--userns=host", bb, "true")
    assert inspect(berth, "hostns")["UsernsMode"] == "host"
    berth("rm", "hostns")
    for mode in ("private", "remap", "container:x"):
        r = berth("run", "--rm", "--userns", mode, bb, "true", check=False)
        assert r.returncode == 125
        assert len(r.stderr.strip().splitlines()) == 1
        assert f'invalid --userns mode "{mode}"' in r.stderr and 'only "host"' in r.stderr
    assert berth("ps", "-aq").stdout == ""


def test_block_io_limits_in_the_cgroup(berth, bb):
    disk, major, minor = root_disk()
    cid = berth("run", "-d", *NONET, "--name", "throttled", "--device-read-bps", f"{disk}:1mb",
                "--device-write-bps", f"{disk}:2048", "--device-read-iops", f"{disk}:100",
                "--device-write-iops", f"{disk}:200", "--blkio-weight-device", f"{disk}:300", bb,
                "sleep", "60").stdout.strip()
    hc = inspect(berth, "throttled")
    assert hc["BlkioDeviceReadBps"] == [{"Path": disk, "Rate": 1048576}]
    assert hc["BlkioDeviceWriteBps"] == [{"Path": disk, "Rate": 2048}]
    assert hc["BlkioDeviceReadIOps"] == [{"Path": disk, "Rate": 100}]
    assert hc["BlkioDeviceWriteIOps"] == [{"Path": disk, "Rate": 200}]
    assert hc["BlkioWeightDevice"] == [{"Path": disk, "Weight": 300}]
    block_io = bundle_config(berth, cid)["linux"]["resources"]["blockIO"]
    dev = {"major": major, "minor": minor}
    assert block_io == {"weightDevice": [{**dev, "weight": 300}],
                        "throttleReadBpsDevice": [{**dev, "rate": 1048576}],
                        "throttleWriteBpsDevice": [{**dev, "rate": 2048}],
                        "throttleReadIOPSDevice": [{**dev, "rate": 100}],
                        "throttleWriteIOPSDevice": [{**dev, "rate": 200}]}
    placed = own_cgroups(inspect(berth, "throttled", "{{.State.Pid}}"))
    blkio_key = next((k for k in placed if "blkio" in k.split(",")), None)
    if blkio_key is not None:
        d = CGROUP / blkio_key / placed[blkio_key].lstrip("/")
        if not d.is_dir():
            d = CGROUP / "blkio" / placed[blkio_key].lstrip("/")
        for name, rate in (("read_bps", 1048576), ("write_bps", 2048), ("read_iops", 100), ("write_iops", 200)):
            assert (d / f"blkio.throttle.{name}_device").read_text() == f"{major}:{minor} {rate}\n"
    else:
        io_max = (CGROUP / placed[""].lstrip("/") / "io.max").read_text()
        assert f"{major}:{minor} rbps=1048576 wbps=2048 riops=100 wiops=200" in io_max
    berth("rm", "-f", "throttled")


def test_block_io_flag_errors(berth, bb):
    disk, _, _ = root_disk()
    for flag, value, message in (
            ("--device-read-bps", disk, f"bad format: {disk}"),
            ("--device-read-bps", "vda:1mb", "bad format for device path: vda:1mb"),
            ("--device-write-bps", f"{disk}:lots", f"invalid rate for device: {disk}:lots. The correct format is "
                                                   "<device-path>:<number>[<unit>]"),
            ("--device-read-iops", f"{disk}:1mb", f"invalid rate for device: {disk}:1mb. The correct format is "
                                                  "<device-path>:<number>. Number must be a positive integer"),
            ("--device-write-iops", f"{disk}:-1", f"invalid rate for device: {disk}:-1."),
            ("--blkio-weight-device", f"{disk}:5", f"invalid weight for device: {disk}:5"),
            ("--blkio-weight-device", f"{disk}:x", f"invalid weight for device: {disk}:x")):
        r = berth("create", flag, value, bb, "true", check=False)
        assert r.returncode == 125, (flag, value, r.stderr)
        assert f'invalid argument "{value}" for "{flag}" flag: {message}' in r.stderr
    # Device paths are looked at when the container starts, as Docker does.
    for value, message in (("/dev/berth-no-such-disk:1mb", "stat /dev/berth-no-such-disk: no such file or directory"),
                           ("/dev/null:1mb", "/dev/null is not a block device")):
        r = berth("run", "--rm", *NONET, "--device-read-bps", value, bb, "true", check=False)
        assert r.returncode == 125 and message in r.stderr
    assert berth("ps", "-aq").stdout == ""


@pytest.mark.docker
def test_inspect_matches_docker(berth, bb, docker, busybox_tar):
    disk, _, _ = root_disk()
    if "bb:latest" not in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout:
        docker("import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    flags = ["--cgroup-parent", "berth-compare/x", "--userns", "host", "--device-read-bps", f"{disk}:1mb",
             "--device-write-bps", f"{disk}:3k", "--device-read-iops", f"{disk}:10",
             "--device-write-iops", f"{disk}:20"]
    keys = ("CgroupParent", "UsernsMode", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
            "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")
    ours, theirs = [], []
    for args in (flags, []):
        berth("create", "--name", "cmp", *args, bb, "true")
        docker("create", "--name", "berth-cmp", *args, "bb", "true")
        try:
            ours.append({k: inspect(berth, "cmp")[k] for k in keys})
            theirs.append({k: json.loads(docker("inspect", "-f", "{{json .HostConfig}}", "berth-cmp").stdout)[k]
                           for k in keys})
        finally:
            berth("rm", "cmp")
            docker("rm", "berth-cmp")
    assert ours == theirs


def test_through_the_api_with_the_docker_cli(root, tmp_path, busybox_tar):
    require_docker_cli()
    disk, major, minor = root_disk()
    parent = f"/berth-test-api-{os.getpid()}"
    from berthtest import Berth
    Berth(root)("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    api = ApiDaemon(root, tmp_path).start()
    try:
        cid = api.docker("run", "-d", *NONET, "--cgroup-parent", parent, "--annotation", "org.example.k=v",
                         "--userns", "host", "--device-write-bps", f"{disk}:4mb", "busybox",
                         "sleep", "60").stdout.strip()
        hc = json.loads(api.docker("inspect", "-f", "{{json .HostConfig}}", cid).stdout)
        assert hc["CgroupParent"] == parent and hc["UsernsMode"] == "host"
        assert hc["Annotations"] == {"org.example.k": "v"}
        assert hc["BlkioDeviceWriteBps"] == [{"Path": disk, "Rate": 4 << 20}]
        pid = json.loads(api.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout)
        placed = own_cgroups(pid)
        assert placed["memory"] == f"{parent}/{cid}"
        assert bundle_config(Berth(root), cid)["annotations"] == {"org.example.k": "v"}
        if "blkio" in placed:
            assert (CGROUP / "blkio" / parent.lstrip("/") / cid / "blkio.throttle.write_bps_device").read_text() \
                == f"{major}:{minor} {4 << 20}\n"
        # The daemon refuses what berth cannot do, and makes nothing.
        r = api.request("POST", "/containers/create", {"Image": "busybox", "HostConfig": {"UsernsMode": "private"}})
        assert r.status == 400 and 'invalid --userns mode "private"' in r.json()["message"]
        api.docker("rm", "-f", cid)
        wait_for(lambda: not hierarchy_dirs(f"{parent}/{cid}"))
        assert api.docker("ps", "-aq").stdout == ""
    finally:
        api.stop()
        clean_root(root)
        remove_parent(parent)


def test_isolation_default_only(berth, bb):
    berth("create", "--name", "iso", "--isolation", "default", bb)
    assert inspect(berth, "iso")["Isolation"] == "default"
    bad = berth("run", "--rm", "--isolation", "hyperv", bb, "true", check=False)
    assert bad.returncode == 125
    assert bad.stderr.strip() == 'Error: Invalid isolation: "hyperv" - linux only supports \'default\''
    assert berth("ps", "-aq", "--no-trunc").stdout.split() == [berth("inspect", "-f", "{{.Id}}", "iso").stdout.strip()]
