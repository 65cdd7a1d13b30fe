"""The built-in runtime's own parts: CLI, hooks, cgroup plumbing, seccomp
compilation, error wording and clean failure."""

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from berth.errors import BerthError, CommandNotFound, Conflict, NotExecutable, NotFound
from berth.runtime.builtin import cgroups as cg
from berth.runtime.builtin.seccomp import Filter, compile_program
from berth.runtime.oci import OCIRuntime, _translate, builtin_command
from berth.runtime.spec import Mount

from runtime_testlib import CGROUP_PARENT, HOST, Harness, cgroup_dirs


@pytest.fixture
def builtin(tmp_path, busybox_tar):
    h = Harness(OCIRuntime.builtin(tmp_path / "state"), tmp_path, busybox_tar)
    try:
        yield h
    finally:
        problems = h.cleanup()
    assert not problems, problems


def cli(h: Harness, *args, **kwargs):
    return subprocess.run(builtin_command() + ["--root", h.runtime.state_root, *args],
                          capture_output=True, text=True, timeout=60, **kwargs)


def test_cli_usage_errors(builtin):
    r = cli(builtin, "frobnicate")
    assert r.returncode == 1 and "no such command: frobnicate" in r.stderr
    r = cli(builtin, "delete", "--bogus", "x")
    assert r.returncode == 1 and "flag provided but not defined: --bogus" in r.stderr
    r = cli(builtin, "state", "../escape")
    assert r.returncode == 1 and "invalid container id format" in r.stderr
    r = cli(builtin, "--help")
    assert r.returncode == 0 and "create" in r.stdout


def test_state_output_is_oci_state(builtin):
    spec = builtin.spec(["sleep", "100"])
    spec["annotations"] = {"org.example": "yes"}
    cid, pid = builtin.create(spec)
    r = cli(builtin, "state", cid)
    state = json.loads(r.stdout)
    assert state["ociVersion"] and state["id"] == cid and state["pid"] == pid
    assert state["status"] == "created" and state["bundle"] == str(builtin.bundle)
    assert state["annotations"] == {"org.example": "yes"}
    r = cli(builtin, "ps", "--format", "json", cid)
    assert json.loads(r.stdout) == [pid]
    with pytest.raises(Conflict, match="container with id exists"):
        builtin.runtime.create(cid, builtin.bundle)


def test_cli_run_returns_the_exit_status(builtin):
    spec = builtin.spec(["sh", "-c", "exit 9"])
    builtin.write(spec)
    cid = spec["linux"]["cgroupsPath"].rsplit("/", 1)[1]
    r = cli(builtin, "run", "--bundle", str(builtin.bundle), cid)
    assert r.returncode == 9
    assert not (Path(builtin.runtime.state_root) / cid).exists()


def test_hooks_receive_the_state(builtin, tmp_path):
    log = tmp_path / "hooks.log"

    def hook(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"read s; echo {name} \"$s\" >> {log}"]}
    spec = builtin.spec(["true"])
    spec["hooks"] = {k: [hook(k)] for k in ("prestart", "createRuntime", "createContainer",
                                            "poststart", "poststop")}
    result = builtin.run(["true"], spec=spec)
    assert result.exit_code == 0
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [e[0] for e in entries] == ["prestart", "createRuntime", "createContainer", "poststart",
                                       "poststop"]
    for _, payload in entries:
        assert json.loads(payload)["id"] == spec["linux"]["cgroupsPath"].rsplit("/", 1)[1]
    assert json.loads(entries[0][1])["pid"] > 0


def test_failed_hook_fails_create_cleanly(builtin):
    spec = builtin.spec(["true"])
    spec["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    with pytest.raises(BerthError, match="error running hook /bin/false"):
        builtin.create(spec)
    assert not cgroup_dirs(spec["linux"]["cgroupsPath"])


def test_bad_mount_fails_create_cleanly(builtin):
    spec = builtin.spec(["true"], sandbox={"mounts": (Mount.bind("/no/such/dir", "/x"),)})
    with pytest.raises(BerthError, match="/no/such/dir"):
        builtin.create(spec)
    cid = spec["linux"]["cgroupsPath"].rsplit("/", 1)[1]
    with pytest.raises(NotFound):
        builtin.runtime.state(cid)
    assert not cgroup_dirs(spec["linux"]["cgroupsPath"])


def test_exec_format_error_is_reported_by_start(builtin):
    bad = builtin.rootfs / "bad"
    bad.write_text("not a program\n")
    bad.chmod(0o755)
    spec = builtin.spec(["/bad"])
    cid, pid = builtin.create(spec)
    with pytest.raises(NotExecutable, match="exec format error"):
        builtin.runtime.start(cid)
    assert builtin.wait(pid, timeout=10) == 126


def test_signals_are_reset_for_the_container(builtin):
    # Python ignores SIGPIPE; a container must not inherit that.
    r = builtin.run(["grep", "SigIgn", "/proc/self/status"])
    assert r.output.split()[1] == "0000000000000000", r


def test_exec_attached_forwards_exit_and_detached_leaves_no_zombie_on_failure(builtin):
    spec = builtin.spec(["sleep", "100"])
    cid, pid = builtin.create(spec, start=True)
    proc = dict(spec["process"], args=["nope"])
    with pytest.raises(CommandNotFound):
        builtin.runtime.exec(cid, proc, detach=True)
    # The failed process was reaped by the runtime, not handed to us as a zombie.
    assert os.waitpid(-1, os.WNOHANG) == (0, 0)
    assert builtin.runtime.exec(cid, dict(proc, args=["sh", "-c", "exit 4"]), detach=False) == 4


def test_pause_freezes_every_process(builtin):
    spec = builtin.spec(["sh", "-c", "while :; do :; done"])
    cid, pid = builtin.create(spec, start=True)
    builtin.runtime.pause(cid)
    with pytest.raises(Conflict):
        builtin.runtime.exec(cid, spec["process"])
    before = _cpu_ticks(pid)
    time.sleep(0.3)
    assert _cpu_ticks(pid) == before
    builtin.runtime.resume(cid)
    builtin.runtime.kill(cid, "SIGKILL")
    assert builtin.wait(pid) == 137


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# --- cgroups


HYBRID = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/systemd rw,nosuid shared:16 - cgroup cgroup rw,xattr,name=systemd
"""
PURE_V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_cgroup_paths_follow_runc_rules():
    mounts = cg.parse_mountinfo(HYBRID)
    paths, v2 = cg.resolve_paths("/berth/abc", "abc", mounts)
    assert not v2
    assert paths == {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/berth/abc",
                     "memory": "/sys/fs/cgroup/memory/berth/abc",
                     "name=systemd": "/sys/fs/cgroup/systemd/berth/abc",
                     "": "/sys/fs/cgroup/unified/berth/abc"}
    own = {"cpu,cpuacct": "/", "memory": "/session/7", "name=systemd": "/", "": "/"}
    rel, _ = cg.resolve_paths(None, "abc", mounts, own)
    assert rel["memory"] == "/sys/fs/cgroup/memory/session/7/abc"
    assert rel["cpu,cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/abc"
    paths, v2 = cg.resolve_paths("/../../etc", "x", cg.parse_mountinfo(PURE_V2))
    assert v2 and paths == {"": "/sys/fs/cgroup/etc"}  # ".." cannot climb out of the mount
    with pytest.raises(cg.CgroupError):
        cg.resolve_paths("system.slice:docker:abc", "abc", mounts)


def test_v1_device_rules_written_in_order():
    assert cg._device_rule({"allow": False, "access": "rwm"}) == "a"
    assert cg._device_rule({"type": "c", "major": 1, "minor": -1, "access": "rw"}) == "c 1:* rw"
    assert cg._device_rule({"type": "b", "major": None, "minor": 3, "access": "m"}) == "b *:3 m"


def test_unified_hierarchy_lifecycle():
    """Drive the pure-v2 code on this host's cgroup2 mount (no controllers
    needed): join, freeze, kill through cgroup.kill, remove."""
    v2 = cg.hierarchies()[1]
    if v2 is None:
        pytest.skip("no cgroup2 mount")
    path = os.path.join(v2[0], CGROUP_PARENT.lstrip("/"), "v2probe")
    group = cg.Cgroups({"": path}, pure_v2=True)
    group.create({})
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    try:
        group.add(child)
        assert group.procs() == {child}
        group.freeze()
        assert group.frozen()
        group.thaw()
        assert not group.frozen()
        group.destroy(timeout=10)
        _, status = os.waitpid(child, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert not os.path.exists(path)
    finally:
        try:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        if os.path.isdir(path):
            os.rmdir(path)


def test_v2_device_filter_semantics():
    from berth.runtime.builtin.devices import _normalize
    default, kept = _normalize([{"allow": True, "access": "rwm"},
                                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                                {"allow": False, "access": "rwm"},
                                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}])
    assert default is False and kept == [{"allow": True, "type": "c", "major": 1, "minor": 3,
                                          "access": "rw"}]


def test_v2_device_filter_enforces_docker_rules(tmp_path):
    """Attach the eBPF device program to a cgroup2 directory (the hybrid
    host's unified tree will do: v2 device control needs no controller)."""
    from berth.runtime.builtin import devices
    from berth.runtime.spec import _DEFAULT_DEVICE_RULES
    v2 = cg.hierarchies()[1]
    if v2 is None:
        pytest.skip("no cgroup2 mount")
    path = os.path.join(v2[0], CGROUP_PARENT.lstrip("/"), "devprobe")
    os.makedirs(path)
    nodes = {"blk": (0o060000, 7, 0), "kmsg": (0o020000, 1, 11), "null": (0o020000, 1, 3),
             "fuse": (0o020000, 10, 229)}
    for name, (kind, major, minor) in nodes.items():
        os.mknod(tmp_path / name, kind | 0o666, os.makedev(major, minor))
    try:
        devices.attach(path, list(_DEFAULT_DEVICE_RULES) + list(cg.RUNC_IMPLICIT_DEVICE_RULES))
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.read(r, 1)
            code = 0
            for bit, name in enumerate(nodes):
                try:
                    os.close(os.open(tmp_path / name, os.O_RDONLY | os.O_NONBLOCK))
                except PermissionError:
                    code |= 1 << bit
                except OSError:
                    pass
            try:
                os.mknod(tmp_path / "made", 0o060000 | 0o600, os.makedev(8, 0))
            except OSError:
                code |= 1 << 6
            os._exit(code)
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(child))
        os.write(w, b"x")
        _, status = os.waitpid(child, 0)
        denied = {name for bit, name in enumerate(nodes) if os.waitstatus_to_exitcode(status) & (1 << bit)}
        assert denied == {"blk", "kmsg", "fuse"}
        assert not os.waitstatus_to_exitcode(status) & (1 << 6)  # mknod itself is allowed
    finally:
        os.rmdir(path)


# --- seccomp


def _in_child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_seccomp_filter_denies_with_the_configured_errno(tmp_path):
    config = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 0xFF, "valueTwo": 0x11, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["no_such_syscall_at_all"], "action": "SCMP_ACT_ERRNO"},
    ]}
    program = compile_program(config)

    def body():
        import ctypes
        from berth.runtime.builtin import linux
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        program.load()
        try:
            os.mkdir(tmp_path / "x")
            return 1
        except OSError as e:
            if e.errno != errno.EROFS:
                return 2
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.personality(0x11) != -1 or libc.personality(0xFFFFFFFF) == -1:
            return 3
        return 0
    assert _in_child(body) == 0
    assert not (tmp_path / "x").exists()


def test_docker_profile_compiles_and_is_cached(tmp_path):
    from berth.runtime.spec import default_spec, ProcessOptions, SandboxOptions
    spec = default_spec(ProcessOptions(args=["true"]), SandboxOptions(rootfs="/"), HOST)
    first = compile_program(spec["linux"]["seccomp"], str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 1
    again = compile_program(spec["linux"]["seccomp"], str(tmp_path))
    assert again.bpf == first.bpf == Filter(spec["linux"]["seccomp"]).export()


# --- error translation


@pytest.mark.parametrize("message, error", [
    ('runc create failed: unable to start container process: exec: "nope": executable file not '
     'found in $PATH', CommandNotFound),
    ('exec: "/x/y": stat /x/y: no such file or directory', CommandNotFound),
    ('runc create failed: unable to start container process: exec: "/etc": permission denied',
     NotExecutable),
    ("exec /bin/app: exec format error", NotExecutable),
    ("container does not exist", NotFound),
    ("cannot delete container c1 that is not stopped: running", Conflict),
    ("cannot start an already running container", Conflict),
    ("error mounting \"/a\" to rootfs at \"/b\": no such file or directory", BerthError),
])
def test_runtime_messages_map_to_berth_errors(message, error):
    err = _translate(message, "c1")
    assert type(err) is error
    if error is NotFound:
        assert str(err) == "No such container: c1"
