"""The config.json builder: Docker's defaults, exactly, as pure functions."""

import json
from pathlib import Path

import pytest

from berth.errors import InvalidArgument
from berth.runtime.capabilities import CAPABILITIES, DOCKER_DEFAULT_CAPABILITIES
from berth.runtime.spec import (HOST, PRIVATE, Device, HostInfo, IDMapping, Mount, ProcessOptions,
                                Resources, Rlimit, SandboxOptions, User, default_spec,
                                effective_capabilities, exec_process_spec,
                                load_default_seccomp_profile, parse_device_cgroup_rule,
                                seccomp_from_profile)

SCHEMA_DIR = Path("/work/shared/reference/oci/runtime-spec-schema")
AMD64 = HostInfo(machine="x86_64", kernel=(6, 1))
ARM64 = HostInfo(machine="aarch64", kernel=(6, 1))


def spec_for(*, process=None, host=AMD64, **sandbox):
    return default_spec(process or ProcessOptions(args=["sh"]),
                        SandboxOptions(rootfs="rootfs", **sandbox), host)


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT4

    if not SCHEMA_DIR.is_dir():
        pytest.skip("OCI schemas are not available")
    registry = referencing.Registry().with_resources(
        (path.name, DRAFT4.create_resource(json.loads(path.read_text())))
        for path in SCHEMA_DIR.glob("*.json"))
    schema = json.loads((SCHEMA_DIR / "config-schema.json").read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


@pytest.mark.parametrize("sandbox", [
    {},
    {"privileged": True, "devices": (Device("/dev/fuse", "c", 10, 229),)},
    {"readonly_rootfs": True, "network": HOST, "pid": "/proc/1/ns/pid", "cgroups_path": "/berth/x",
     "resources": Resources(memory=64 << 20, cpus=1.5, pids_limit=100, cpu_shares=512),
     "uid_mappings": (IDMapping(0, 100000, 65536),), "mounts": (Mount.tmpfs("/run"),)},
])
def test_specs_validate_against_the_oci_schema(validator, sandbox):
    spec = spec_for(process=ProcessOptions(args=["sh"], terminal=True, console_size=(24, 80),
                                           rlimits=(Rlimit("nofile", 1024, 2048),)), **sandbox)
    errors = sorted(validator.iter_errors(spec), key=str)
    assert not errors, errors[0]


def test_docker_default_mounts():
    mounts = {m["destination"]: m for m in spec_for()["mounts"]}
    assert list(mounts) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                            "/dev/shm"]
    assert mounts["/dev"]["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert mounts["/dev/pts"]["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                             "mode=0620", "gid=5"]
    assert mounts["/dev/shm"]["options"][-1] == "size=67108864"
    assert "ro" in mounts["/sys"]["options"] and mounts["/sys"]["type"] == "sysfs"
    assert "ro" in mounts["/sys/fs/cgroup"]["options"] and mounts["/sys/fs/cgroup"]["type"] == "cgroup"


def test_docker_default_linux_section():
    spec = spec_for(hostname="box")
    lx = spec["linux"]
    assert spec["hostname"] == "box"
    assert [n["type"] for n in lx["namespaces"]] == ["mount", "network", "uts", "pid", "ipc"]
    assert lx["maskedPaths"] == ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                 "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                 "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                                 "/sys/devices/virtual/powercap"]
    assert lx["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                   "/proc/sysrq-trigger"]
    assert lx["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert lx["resources"]["devices"][-1] == {"allow": False, "type": "c", "major": 10,
                                              "minor": 229, "access": "rwm"}
    assert lx["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                            "net.ipv4.ip_unprivileged_port_start": "0"}
    assert lx["devices"] == []
    assert "rlimits" not in spec["process"]  # Docker leaves rlimits to the runtime's own
    assert spec["process"]["noNewPrivileges"] is False
    assert spec["process"]["oomScoreAdj"] == 0


def test_cgroup_namespace_follows_the_host_cgroup_version():
    v2 = HostInfo(machine="x86_64", cgroup2=True)
    assert "cgroup" in [n["type"] for n in spec_for(host=v2)["linux"]["namespaces"]]
    assert "cgroup" not in [n["type"] for n in spec_for()["linux"]["namespaces"]]
    assert "cgroup" in [n["type"] for n in spec_for(cgroupns=PRIVATE)["linux"]["namespaces"]]


def test_namespace_modes():
    spec = spec_for(network=HOST, ipc="/proc/7/ns/ipc", uts=HOST, hostname="ignored")
    kinds = {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}
    assert "network" not in kinds and "uts" not in kinds and kinds["ipc"] == "/proc/7/ns/ipc"
    assert "hostname" not in spec
    assert spec["linux"]["sysctl"] == {}  # Docker sets netns sysctls only for a private netns
    with pytest.raises(InvalidArgument):
        spec_for(pid="bogus")


def test_capabilities_for_root_and_others():
    caps = spec_for()["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DOCKER_DEFAULT_CAPABILITIES)
    assert "inheritable" not in caps and "ambient" not in caps
    other = spec_for(process=ProcessOptions(args=["sh"], user=User(1000, 1000)))
    assert other["process"]["capabilities"] == {"bounding": list(DOCKER_DEFAULT_CAPABILITIES)}


def test_cap_add_and_drop():
    caps = effective_capabilities(cap_add=("net_admin",), cap_drop=("CAP_MKNOD", "chown"), host=AMD64)
    assert "CAP_NET_ADMIN" in caps and "CAP_MKNOD" not in caps and "CAP_CHOWN" not in caps
    assert effective_capabilities(cap_drop=("ALL",), cap_add=("KILL",), host=AMD64) == ["CAP_KILL"]
    everything = effective_capabilities(cap_add=("ALL",), cap_drop=("SYS_ADMIN",), host=AMD64)
    assert "CAP_SYS_ADMIN" not in everything and "CAP_SYS_MODULE" in everything
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_NOPE"'):
        effective_capabilities(cap_add=("nope",), host=AMD64)
    limited = HostInfo(capabilities=tuple(c for c in CAPABILITIES if c != "CAP_SYS_RESOURCE"))
    assert "CAP_SYS_RESOURCE" not in effective_capabilities(privileged=True, host=limited)
    assert "CAP_SYS_RESOURCE" not in effective_capabilities(cap_add=("SYS_RESOURCE",), host=limited)


def test_privileged():
    host = HostInfo(machine="x86_64", devices=(Device("/dev/sda", "b", 8, 0, 0o660, 0, 6),))
    spec = spec_for(privileged=True, host=host)
    lx = spec["linux"]
    assert spec["process"]["capabilities"]["bounding"] == list(CAPABILITIES)
    assert "seccomp" not in lx and "maskedPaths" not in lx and "readonlyPaths" not in lx
    assert lx["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert lx["devices"][0]["path"] == "/dev/sda"
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert "ro" not in mounts["/sys"]["options"] and "ro" not in mounts["/sys/fs/cgroup"]["options"]


def test_readonly_rootfs_and_user_mounts():
    spec = spec_for(readonly_rootfs=True,
                    mounts=(Mount.bind("/host/a", "/a/b"), Mount.bind("/host", "/a", readonly=True),
                            Mount.tmpfs("/dev/shm", ["size=1m"])))
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert "ro" in by_dest["/sys"]["options"] and "ro" not in by_dest["/dev"]["options"]
    # The user's /dev/shm replaces Docker's; parents mount before children.
    assert by_dest["/dev/shm"]["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests.index("/a") < dests.index("/a/b")
    assert by_dest["/a"]["options"] == ["rbind", "ro", "rprivate"]
    no_dev = spec_for(mounts=(Mount.bind("/dev", "/dev"),))
    assert not [m for m in no_dev["mounts"] if m["destination"].startswith("/dev/")]


def test_resources():
    r = spec_for(resources=Resources(memory=32 << 20, cpus=1.5, pids_limit=20, cpuset_cpus="0",
                                     cpu_shares=512))["linux"]["resources"]
    assert r["memory"] == {"limit": 32 << 20, "swap": 64 << 20}
    assert r["cpu"] == {"period": 100000, "quota": 150000, "shares": 512, "cpus": "0"}
    assert r["pids"] == {"limit": 20}
    assert spec_for(resources=Resources(pids_limit=0))["linux"]["resources"]["pids"] == {"limit": -1}
    assert spec_for(resources=Resources(memory=8 << 20, memory_swap=-1))["linux"]["resources"][
        "memory"]["swap"] == -1
    with pytest.raises(InvalidArgument, match="Minimum memory limit"):
        spec_for(resources=Resources(memory=1024))
    with pytest.raises(InvalidArgument):
        spec_for(resources=Resources(cpus=1.0, cpu_quota=5000))


def test_device_cgroup_rules():
    assert parse_device_cgroup_rule("c 1:3 rwm") == {"allow": True, "type": "c", "major": 1,
                                                     "minor": 3, "access": "rwm"}
    assert parse_device_cgroup_rule("a *:* m")["major"] == -1
    for bad in ("c 1:3", "x 1:3 rwm", "c a:3 rwm", "c 1:3 rwx"):
        with pytest.raises(InvalidArgument):
            parse_device_cgroup_rule(bad)
    rules = spec_for(device_cgroup_rules=("c 42:* rmw",))["linux"]["resources"]["devices"]
    assert rules[-1]["major"] == 42


def test_process_and_exec_process():
    proc = ProcessOptions(args=["top"], env=["A=1"], cwd="/srv", user=User(5, 6, (6, 7), 0o027),
                          terminal=True, console_size=(30, 100), no_new_privileges=True)
    spec = spec_for(process=proc, cap_add=("SYS_PTRACE",))
    p = spec["process"]
    assert p["user"] == {"uid": 5, "gid": 6, "additionalGids": [6, 7], "umask": 0o027}
    assert p["consoleSize"] == {"height": 30, "width": 100} and p["terminal"] is True
    assert p["noNewPrivileges"] is True and p["cwd"] == "/srv"
    execd = exec_process_spec(spec, ProcessOptions(args=["ps"], env=["B=2"]), host=AMD64)
    assert execd["args"] == ["ps"] and execd["env"] == ["B=2"] and execd["terminal"] is False
    assert "CAP_SYS_PTRACE" in execd["capabilities"]["effective"]
    assert execd["noNewPrivileges"] is True  # kept from the container, as moby does
    assert "consoleSize" not in execd
    priv = exec_process_spec(spec, ProcessOptions(args=["ps"]), privileged=True, host=AMD64)
    assert priv["capabilities"]["bounding"] == list(CAPABILITIES)
    with pytest.raises(InvalidArgument):
        spec_for(process=ProcessOptions(args=[]))
    with pytest.raises(InvalidArgument):
        spec_for(process=ProcessOptions(args=["x"], rlimits=(Rlimit("bogus", 1, 1),)))


# --- seccomp


def _names(seccomp, action="SCMP_ACT_ALLOW", with_args=None):
    out = set()
    for rule in seccomp["syscalls"]:
        if rule["action"] != action:
            continue
        if with_args is not None and bool(rule.get("args")) != with_args:
            continue
        out.update(rule["names"])
    return out


def test_default_seccomp_profile_conversion():
    seccomp = spec_for()["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and seccomp["defaultErrnoRet"] == 1
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _names(seccomp)
    assert {"read", "write", "execve", "arch_prctl", "chroot"} <= allowed
    assert "ptrace" in allowed  # included from kernel 4.8 on
    # Gated on capabilities Docker does not grant by default:
    assert not {"mount", "unshare", "setns", "init_module", "bpf", "reboot", "keyctl"} & allowed
    # clone is allowed only without namespace flags; clone3 answers ENOSYS so libc falls back.
    clone = [r for r in seccomp["syscalls"] if "clone" in r["names"]]
    assert len(clone) == 1 and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    clone3 = [r for r in seccomp["syscalls"] if r["names"] == ["clone3"]]
    assert clone3[0]["action"] == "SCMP_ACT_ERRNO" and clone3[0]["errnoRet"] == 38
    assert "keyctl" not in allowed


def test_seccomp_follows_capabilities_and_architecture():
    admin = spec_for(cap_add=("SYS_ADMIN",))["linux"]["seccomp"]
    allowed = _names(admin)
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= _names(admin, with_args=False)
    assert "umount2" in allowed
    assert not [r for r in admin["syscalls"] if r["names"] == ["clone3"] and r["action"] != "SCMP_ACT_ALLOW"]
    arm = spec_for(host=ARM64)["linux"]["seccomp"]
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in _names(arm) and "arm_fadvise64_64" in _names(arm)


def test_seccomp_min_kernel_and_validation():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["newcall"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.5"}},
        {"names": ["oldcall"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "6.5"}},
    ]}
    old = seccomp_from_profile(profile, [], HostInfo(kernel=(5, 10)))
    new = seccomp_from_profile(profile, [], HostInfo(kernel=(6, 8)))
    assert _names(old) == {"oldcall"} and _names(new) == {"newcall"}
    assert seccomp_from_profile({}, [], AMD64) is None
    with pytest.raises(InvalidArgument):
        seccomp_from_profile({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x"],
                              "archMap": [{"architecture": "x"}]}, [], AMD64)
    assert "seccomp" not in spec_for(seccomp="unconfined")["linux"]
    custom = spec_for(seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"name": "chmod", "action": "SCMP_ACT_ERRNO"}]})["linux"]["seccomp"]
    assert custom["syscalls"] == [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO"}]


def test_packaged_profile_is_dockers():
    profile = load_default_seccomp_profile()
    reference = Path("/work/shared/reference/seccomp/docker-default.json")
    if reference.exists():
        assert profile == json.loads(reference.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
