"""One conformance suite for every OCI runtime berth drives: the built-in
runtime, runc and (where it runs) crun, all through the same OCIRuntime
wrapper and the same Docker-default specs.  Every test ends with the
harness proving that no process, mount or cgroup is left behind."""

import os
import re
import select
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from berth.errors import CommandNotFound, Conflict, NotExecutable, NotFound
from berth.runtime.capabilities import DOCKER_DEFAULT_CAPABILITIES, mask
from berth.runtime.interface import ConsoleSocket, Stdio
from berth.runtime.spec import IDMapping, Mount, Resources, Rlimit, User

from runtime_testlib import HOST, Harness, cgroup_dirs

DOCKER_CAPS = f"{mask(DOCKER_DEFAULT_CAPABILITIES):016x}"


def status_field(output: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(\S+)", output, re.M)
    assert m, f"{name} missing from {output!r}"
    return m.group(1)


def test_init_is_pid1_and_host_is_invisible(harness):
    r = harness.run(["sh", "-c", "echo pid=$$; ps -o pid,comm; echo ---; cat /proc/mounts; "
                     "echo ---; ip -o link; echo ---; hostname"])
    assert r.exit_code == 0, r
    head, mounts, links, hostname = r.output.split("---\n")
    head = head.splitlines()
    assert head[0] == "pid=1"
    # Only the shell and ps itself (after ps's header): no host process is visible.
    assert len(head[2:]) == 2, head
    assert str(harness.tmp_path) not in mounts and "/work" not in mounts
    assert [line.split(":")[1].strip() for line in links.strip().splitlines()] == ["lo"]
    assert hostname.strip() == "berthbox"


def test_env_cwd_and_user_apply(harness):
    r = harness.run(["sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g; id -G; echo "$HOME"'],
                    process={"env": ["PATH=/bin", "GREETING=hello world"], "cwd": "/tmp",
                             "user": User(uid=65534, gid=65534, additional_gids=(65534, 1234))})
    assert r.exit_code == 0, r
    assert r.output.splitlines() == ["hello world", "/tmp", "65534", "65534", "65534 1234", "/"]


def test_exit_codes_propagate(harness):
    assert harness.run(["sh", "-c", "exit 42"]).exit_code == 42
    assert harness.run(["true"]).exit_code == 0
    # A child killed by SIGKILL reports 128+9 through its parent's exit status.
    assert harness.run(["sh", "-c", 'sh -c "kill -9 \\$\\$"; exit $?']).exit_code == 137


@pytest.mark.parametrize("args, error", [
    (["no-such-command"], CommandNotFound),
    (["/no/such/file"], CommandNotFound),
    (["/etc/passwd"], NotExecutable),
    (["/tmp"], NotExecutable),
])
def test_unrunnable_command_fails_create(harness, args, error):
    spec = harness.spec(args)
    with pytest.raises(error) as info:
        harness.create(spec)
    assert args[0] in str(info.value)
    cid = spec["linux"]["cgroupsPath"].rsplit("/", 1)[1]
    with pytest.raises(NotFound):
        harness.runtime.state(cid)
    assert not cgroup_dirs(spec["linux"]["cgroupsPath"])


def test_pids_limit_stops_a_fork_bomb(harness):
    r = harness.run(["sh", "-c", "i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done; "
                     "echo survived"],
                    sandbox={"resources": Resources(pids_limit=20)}, timeout=30)
    assert r.exit_code != 0, r
    assert "survived" not in r.output
    assert re.search(r"can't fork|Resource temporarily unavailable", r.output), r


def test_memory_limit_kills_a_hog(harness):
    r = harness.run(["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo rc=$?"],
                    sandbox={"resources": Resources(memory=32 * 1024 * 1024)}, timeout=60)
    assert "rc=137" in r.output, r  # dd was OOM-killed (SIGKILL); the shell survived
    assert harness.run(["true"]).exit_code == 0  # and the machine carries on


DENIED = (
    "[ -e /proc/sysrq-trigger ] && { echo h > /proc/sysrq-trigger && echo sysrq-ok; }; "
    "echo x > /proc/sys/kernel/hostname && echo procsys-ok; "
    "touch /sys/kernel/x 2>/dev/null && echo sys-ok; grep -q ' /sys sysfs ro' /proc/mounts && echo sys-ro; "
    "mknod /blk b 7 0 && echo mknod-ok; dd if=/blk of=/dev/null bs=1 count=1 && echo blkdev-ok; "
    "mount -t tmpfs none /mnt && echo mount-ok; "
    "echo junk > /mod.ko; insmod /mod.ko; echo insmod=$?; "
    "unshare -U true && echo unshare-ok; "
    "ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo ping-ok; "
    "true"
)


def test_unprivileged_container_is_confined(harness):
    r = harness.run(["sh", "-c", DENIED])
    out = r.output
    for allowed in ("sysrq-ok", "procsys-ok", "sys-ok", "blkdev-ok", "mount-ok", "unshare-ok"):
        assert allowed not in out, r
    assert "sys-ro" in out
    assert "mknod-ok" in out  # Docker grants CAP_MKNOD; the device cgroup stops the open
    assert "Operation not permitted" in out and "insmod=0" not in out
    assert "ping-ok" in out  # NET_RAW is in Docker's default set


def test_raw_sockets_need_net_raw(harness):
    r = harness.run(["sh", "-c", "ping -c 1 -W 1 127.0.0.1; echo rc=$?"],
                    sandbox={"cap_drop": ("NET_RAW",)})
    assert "rc=0" not in r.output and "permission denied" in r.output.lower(), r


def test_privileged_container_may_do_more(harness):
    r = harness.run(["sh", "-c", DENIED + "; grep -E ' /(sys|proc/sys) ' /proc/mounts"],
                    sandbox={"privileged": True})
    out = r.output
    for allowed in ("blkdev-ok", "mount-ok", "unshare-ok", "ping-ok"):
        assert allowed in out, r
    assert "sys-ro" not in out
    assert " /proc/sys proc" not in out  # no readonly remount of /proc/sys


def test_seccomp_blocks_namespace_syscalls(harness):
    confined = harness.run(["sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true; echo rc=$?"])
    assert status_field(confined.output, "Seccomp") == "2"
    assert "rc=0" not in confined.output and "Operation not permitted" in confined.output, confined
    free = harness.run(["sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true; echo rc=$?"],
                       sandbox={"seccomp": "unconfined"})
    assert status_field(free.output, "Seccomp") == "0"
    assert "rc=0" in free.output, free


def test_capabilities_and_no_new_privs(harness):
    r = harness.run(["cat", "/proc/self/status"])
    assert status_field(r.output, "NoNewPrivs") == "0"  # Docker's default
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert status_field(r.output, field) == DOCKER_CAPS, field
    assert int(status_field(r.output, "CapInh"), 16) == 0
    assert int(status_field(r.output, "CapAmb"), 16) == 0

    r = harness.run(["cat", "/proc/self/status"], process={"no_new_privileges": True})
    assert status_field(r.output, "NoNewPrivs") == "1"
    assert status_field(r.output, "CapEff") == DOCKER_CAPS

    r = harness.run(["cat", "/proc/self/status"], process={"user": User(uid=1000, gid=1000)})
    assert int(status_field(r.output, "CapEff"), 16) == 0
    assert status_field(r.output, "CapBnd") == DOCKER_CAPS


def test_user_namespace(harness, busybox_tar):
    # The container's root is an unprivileged host user: the bundle must be
    # reachable by it, which pytest's private temporary directories are not.
    top = Path(tempfile.mkdtemp(prefix="berth-userns-"))
    top.chmod(0o755)
    h = Harness(harness.runtime, top, busybox_tar)
    try:
        r = h.run(["sh", "-c", "id -u; cat /proc/self/uid_map; ls -ln /dev/null; touch /tmp/x && echo ok"],
                  sandbox={"uid_mappings": (IDMapping(0, 100000, 65536),)})
    finally:
        problems = h.cleanup()
        shutil.rmtree(top)
    assert not problems, problems
    assert r.exit_code == 0, r
    lines = r.output.splitlines()
    assert lines[0] == "0" and lines[1].split() == ["0", "100000", "65536"]
    # Device nodes cannot be made in a user namespace: the host's are bound in,
    # owned by a user the namespace does not map.
    assert lines[2].split()[2:4] == ["65534", "65534"] and lines[3] == "ok", r


def test_masked_and_readonly_paths(harness):
    r = harness.run(["sh", "-c", "wc -c < /proc/keys; ls -A /sys/firmware | wc -l; "
                     "echo 1 > /proc/sys/net/ipv4/ip_forward 2>&1 || echo ro"])
    lines = r.output.splitlines()
    assert lines[0].strip() == "0" and lines[1].strip() == "0", r
    assert "Read-only file system" in r.output, r


def test_readonly_rootfs_mounts_and_sysctls(harness, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from host\n")
    mounts = (Mount.bind(str(shared), "/data"), Mount.bind(str(shared), "/data-ro", readonly=True),
              Mount.tmpfs("/scratch"))
    r = harness.run(["sh", "-c", "touch /rootfile 2>&1; cat /data/in; echo out > /data/out; "
                     "touch /data-ro/x 2>&1; touch /scratch/ok && echo scratch-ok; "
                     "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; "
                     "cat /proc/sys/kernel/msgmax; ulimit -n"],
                    sandbox={"readonly_rootfs": True, "mounts": mounts,
                             "sysctls": {"kernel.msgmax": "4096"}},
                    process={"rlimits": (Rlimit("nofile", 512, 1024),)})
    out = r.output
    assert out.count("Read-only file system") == 2, r
    assert "from host" in out and "scratch-ok" in out
    assert (shared / "out").read_text() == "out\n"
    assert out.splitlines()[-3:] == ["0", "4096", "512"], r


def test_terminal_over_console_socket(harness):
    spec = harness.spec(["sh"], process={"terminal": True, "console_size": (24, 80)})
    with ConsoleSocket() as console:
        cid, pid = harness.create(spec, console_socket=console.path)
        master = console.receive(timeout=10)
    try:
        harness.runtime.start(cid)
        os.write(master, b"stty size; tty; echo hi$((40+2))\n")
        seen = _read_until(master, b"hi42", timeout=10)
        assert b"24 80" in seen and b"/dev/pts/" in seen, seen
        os.write(master, b"exit 7\n")
        assert harness.wait(pid, timeout=10) == 7
    finally:
        os.close(master)


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    # The echo of our input also contains the text: wait for the computed output.
    while needle not in data.replace(b"hi$((40+2))", b""):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{needle!r} not seen in {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_exec_joins_the_running_container(harness):
    spec = harness.spec(["sleep", "1000"])
    cid, pid = harness.create(spec, start=True)
    assert harness.runtime.state(cid).status == "running"
    process = dict(spec["process"], args=["sh", "-c", "echo $$; ps -o pid,comm; hostname; exit 3"])
    r, w = os.pipe()
    try:
        code = harness.runtime.exec(cid, process, stdio=Stdio(stdout=w, stderr=w), detach=False)
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    assert code == 3
    lines = out.splitlines()
    assert lines[0] != "1"  # a new process in the same PID namespace...
    assert re.search(r"^\s*1\s+sleep$", out, re.M), out  # ...that sees init as PID 1
    assert lines[-1] == "berthbox"

    detached = harness.runtime.exec(cid, dict(process, args=["sh", "-c", "exit 5"]), detach=True)
    assert harness.wait(detached, timeout=10) == 5

    with pytest.raises(CommandNotFound):
        harness.runtime.exec(cid, dict(process, args=["nope"]), detach=True)


def test_lifecycle_and_teardown_leave_nothing(harness):
    spec = harness.spec(["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    cid, pid = harness.create(spec)
    rt = harness.runtime
    assert rt.state(cid).status == "created" and rt.state(cid).pid == pid
    rt.start(cid)
    with pytest.raises(Conflict):
        rt.start(cid)
    assert rt.state(cid).status == "running"
    rt.pause(cid)
    assert rt.state(cid).status == "paused"
    rt.resume(cid)
    assert rt.state(cid).status == "running"
    with pytest.raises(Conflict):
        rt.delete(cid)
    deadline = time.monotonic() + 5
    while len(_cgroup_procs(spec)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    children = _cgroup_procs(spec)
    assert pid in children and len(children) == 3
    rt.kill(cid, "KILL", all=True)
    assert harness.wait(pid, timeout=10) == 137
    assert rt.state(cid).status == "stopped"
    rt.delete(cid)
    with pytest.raises(NotFound):
        rt.state(cid)
    for child in children:
        assert not os.path.exists(f"/proc/{child}") or _is_zombie_of_ours(child)
    assert not cgroup_dirs(spec["linux"]["cgroupsPath"])


def test_delete_of_created_and_running_containers(harness):
    rt = harness.runtime
    spec = harness.spec(["sleep", "1000"])
    cid, pid = harness.create(spec)
    rt.delete(cid)  # a created container needs no --force
    assert harness.wait(pid, timeout=10) == 137
    spec = harness.spec(["sleep", "1000"])
    cid, pid = harness.create(spec, start=True)
    rt.delete(cid, force=True)
    assert harness.wait(pid, timeout=10) == 137
    assert not cgroup_dirs(spec["linux"]["cgroupsPath"])


def test_unknown_container_is_not_found(harness):
    rt = harness.runtime
    for call in (rt.state, rt.start, rt.pause, lambda cid: rt.kill(cid, 9), rt.delete):
        with pytest.raises(NotFound):
            call("no-such-container")


def _cgroup_procs(spec) -> set[int]:
    pids = set()
    for d in cgroup_dirs(spec["linux"]["cgroupsPath"]):
        with open(os.path.join(d, "cgroup.procs")) as f:
            pids.update(int(x) for x in f.read().split())
    return pids


def _is_zombie_of_ours(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] == "Z"


def test_host_info_is_sane():
    assert HOST.machine and HOST.kernel >= (3, 0)
