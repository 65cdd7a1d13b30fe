"""Containers through the real CLI: run, exit codes, logs, ps, stop, rm."""

import json
import time

import pytest

from berthtest import berth_argv, wait_for


def test_run_output_and_exit_codes(berth, bb):
    p = berth("run", "--rm", bb, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    assert berth("ps", "-aq").stdout == ""  # --rm removed it before run returned
    p = berth("run", "--rm", bb, "/nonexistent", check=False)
    assert p.returncode == 127 and "no such file or directory" in p.stderr
    p = berth("run", "--rm", bb, "/etc/passwd", check=False)
    assert p.returncode == 126 and "permission denied" in p.stderr
    p = berth("run", "--rm", "--pull", "never", "no-such-image", check=False)
    assert p.returncode == 125 and "No such image" in p.stderr
    p = berth("run", "--rm", "--bogus", bb, check=False)
    assert p.returncode == 125 and "unknown flag: --bogus" in p.stderr


def test_sandbox_facts(berth, bb):
    out = berth("run", "--rm", "--network", "none", "-h", "box", "-e", "A=1", "-w", "/tmp", "-u", "nobody", bb, "sh", "-c",
                "echo $$; hostname; echo $A; pwd; id -u; ps -o pid | wc -l; ls /sys/class/net; "
                "grep NoNewPrivs /proc/self/status; cat /proc/self/status | grep CapBnd").stdout.split("\n")
    assert out[0] == "1"                       # the command is PID 1
    assert out[1:5] == ["box", "1", "/tmp", "65534"]
    assert int(out[5]) <= 4                    # host processes are invisible
    assert out[6] == "lo"                      # only loopback in a private netns
    assert out[7].split() == ["NoNewPrivs:", "0"]
    assert out[8].split()[1] == "00000000a80425fb"  # Docker's default capability set


@pytest.mark.parametrize("command", [
    "echo h > /proc/sysrq-trigger",
    "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda",  # creating is allowed, as in Docker; using is not
    "mount -t tmpfs none /mnt",
    "echo 1 > /sys/kernel/mm/ksm/run",
    "insmod /nonexistent.ko",
])
def test_privileged_operations_fail(berth, bb, command):
    p = berth("run", "--rm", bb, "sh", "-c", command, check=False)
    assert p.returncode != 0, p.stdout


def test_privileged_allows_mount(berth, bb):
    p = berth("run", "--rm", "--privileged", bb, "sh", "-c", "mount -t tmpfs none /tmp && echo ok")
    assert p.stdout == "ok\n"


def test_no_new_privileges_and_caps(berth, bb):
    out = berth("run", "--rm", "--security-opt", "no-new-privileges", "--cap-drop", "ALL", bb,
                "sh", "-c", "grep -E 'NoNewPrivs|CapEff' /proc/self/status").stdout
    assert "NoNewPrivs:\t1" in out and "CapEff:\t0000000000000000" in out


def test_pids_limit_stops_fork_bomb(berth, bb):
    p = berth("run", "--rm", "--pids-limit", "20", bb, "sh", "-c",
              # Only shell builtins after the loop: forking is what the limit stops.
              # busybox sh gives up when a fork fails, so the bomb runs in a subshell.
              "(for i in $(seq 1 50); do sleep 5 & done) 2>/dev/null; set -- /proc/[0-9]*; echo $#",
              check=False, timeout=60)
    assert int(p.stdout.split()[-1]) <= 21


def test_memory_limit_kills_hog(berth, bb):
    name = "hog"
    p = berth("run", "--name", name, "--memory", "32m", bb, "sh", "-c",
              "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; "
              "while true; do x=$x$x; done", check=False, timeout=60)
    assert p.returncode == 137
    state = json.loads(berth("inspect", "-f", "{{json .State}}", name).stdout)
    assert state["OOMKilled"] is True and state["ExitCode"] == 137


def test_detached_lifecycle(berth, bb):
    cid = berth("run", "-d", "--name", "web", bb, "sh", "-c", "echo started; trap 'echo bye; exit 0' TERM; "
                "while true; do sleep 0.1; done").stdout.strip()
    assert len(cid) == 64
    ps = berth("ps").stdout.splitlines()
    assert ps[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    assert ps[1].startswith(cid[:12]) and ps[1].rstrip().endswith("web") and "Up " in ps[1]
    assert berth("inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}}", "web").stdout == \
        "running true /web\n"
    assert berth("exec", "web", "cat", "/etc/hostname").stdout == cid[:12] + "\n"
    assert berth("exec", "web", "sh", "-c", "exit 5", check=False).returncode == 5
    assert berth("exec", "web", "nope", check=False).returncode == 127
    top = berth("top", "web").stdout.splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and len(top) >= 2
    p = berth("rm", "web", check=False)
    assert p.returncode == 1 and "stop the container before removing" in p.stderr
    start = time.monotonic()
    assert berth("stop", "web").stdout == "web\n"
    assert time.monotonic() - start < 5       # the TERM trap ran: no 10 s wait
    assert berth("logs", "web").stdout == "started\nbye\n"
    assert berth("wait", "web").stdout == "0\n"
    assert "Exited (0)" in berth("ps", "-a").stdout
    berth("start", "web")
    assert berth("inspect", "-f", "{{.State.Running}}", "web").stdout == "true\n"
    berth("kill", "web")
    assert berth("inspect", "-f", "{{.State.ExitCode}}", "web").stdout == "137\n"
    berth("rename", "web", "web2")
    berth("rm", "web2")
    assert berth("ps", "-aq").stdout == ""


def test_stop_escalates_to_kill(berth, bb):
    berth("run", "-d", "--name", "stubborn", bb, "sleep", "100")
    start = time.monotonic()
    berth("stop", "-t", "1", "stubborn")   # sleep as PID 1 ignores SIGTERM
    assert 1 <= time.monotonic() - start < 5
    assert berth("inspect", "-f", "{{.State.ExitCode}}", "stubborn").stdout == "137\n"


def test_restart_policy_on_failure(berth, bb):
    berth("run", "-d", "--name", "flaky", "--restart", "on-failure:2", bb, "sh", "-c", "echo try; exit 1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = json.loads(berth("inspect", "-f", "{{json .State}}", "flaky").stdout)
        if state["Status"] == "exited":
            break
        time.sleep(0.2)
    assert berth("inspect", "-f", "{{.RestartCount}} {{.State.ExitCode}}", "flaky").stdout == "2 1\n"
    assert berth("logs", "flaky").stdout == "try\ntry\ntry\n"


def test_rm_force_wins_over_a_restart_policy(berth, bb):
    """rm -f around the moment init dies: the supervisor may already have
    decided to restart; the removal must still end the container, quickly."""
    for delay in (0.05, 0.1, 0.15, 0.3):
        cid = berth("run", "-d", "--restart", "always", bb, "sh", "-c", "sleep 0.1; exit 1").stdout.strip()
        time.sleep(delay)
        started = time.monotonic()
        berth("rm", "-f", cid)
        assert time.monotonic() - started < 10
        assert berth("ps", "-aq").stdout == ""


def test_logs_options(berth, bb):
    berth("run", "--name", "chatty", bb, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done")
    assert berth("logs", "--tail", "2", "chatty").stdout == "line4\nline5\n"
    stamped = berth("logs", "-t", "chatty").stdout.splitlines()
    assert stamped[0].endswith("Z line1") and stamped[0][:4].isdigit()


def test_ps_filters_and_format(berth, bb):
    berth("create", "--name", "c1", "--label", "team=a", bb)
    berth("run", "--name", "c2", bb, "true")
    assert berth("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")[:2] == \
        ["c2 exited", "c1 created"]
    assert berth("ps", "-a", "-f", "label=team=a", "--format", "{{.Names}}").stdout == "c1\n"
    assert berth("ps", "-a", "-f", "status=exited", "--format", "{{.Names}}").stdout == "c2\n"
    assert berth("ps", "-l", "--format", "{{.Names}}").stdout == "c2\n"
    assert berth("ps", "-q").stdout == ""


def test_name_conflict_and_rmi_in_use(berth, bb):
    berth("create", "--name", "same", bb)
    p = berth("create", "--name", "same", bb, check=False)
    assert p.returncode == 125 and 'name "/same" is already in use' in p.stderr
    p = berth("rmi", bb, check=False)
    assert p.returncode == 1 and "is using its referenced image" in p.stderr


def test_commit_diff_export(berth, bb, tmp_path):
    berth("run", "--name", "changer", bb, "sh", "-c", "echo data > /root/new; rm /etc/group")
    # As docker diff lists it: the runtime's mount points (/etc/hosts and
    # the like, which busybox lacks) are no changes.
    assert berth("diff", "changer").stdout.splitlines() == ["C /etc", "D /etc/group", "C /root", "A /root/new"]
    image_id = berth("commit", "-c", 'CMD ["cat", "/root/new"]', "-m", "msg", "changer", "committed:1").stdout.strip()
    assert image_id.startswith("sha256:")
    import json
    import tarfile
    berth("save", "-o", tmp_path / "committed.tar", "committed:1")
    with tarfile.open(tmp_path / "committed.tar") as saved:
        top = json.load(saved.extractfile("manifest.json"))[0]["Layers"][-1]
        with tarfile.open(fileobj=saved.extractfile(top)) as layer:
            assert sorted(layer.getnames()) == ["etc", "etc/.wh.group", "root", "root/new"]
    assert berth("run", "--rm", "committed:1").stdout == "data\n"
    out = tmp_path / "fs.tar"
    berth("export", "-o", out, "changer")
    names = tarfile.open(out).getnames()
    assert "root/new" in names and "etc/group" not in names and "bin/busybox" in names


def test_events_journal(berth, bb):
    berth("run", "--rm", "--name", "evt", bb, "true")
    time.sleep(1.1)  # --until 0s means the start of this second, as in Docker
    out = berth("events", "--since", "1m", "--until", "0s", "--filter", "container=evt",
                "--format", "{{.Action}} {{.Actor.Attributes.name}}").stdout.split("\n")
    assert out[:5] == ["create evt", "attach evt", "start evt", "die evt", "destroy evt"]
    tagged = berth("events", "--since", "1m", "--until", "0s", "-f", "type=image", "--format",
                   "{{.Action}}").stdout.split()
    assert tagged[:1] == ["import"]


@pytest.mark.parametrize("runtime", ["berth", "runc"])
def test_same_container_under_each_runtime(berth, bb, runtime):
    """One config.json, two runtimes: the same sandbox either way."""
    out = berth("run", "--rm", "--runtime", runtime, bb, "sh", "-c",
                "echo $$; grep CapBnd /proc/self/status; ls /sys/class/net").stdout.split("\n")
    # Both join the network namespace berth made: eth0 on the default bridge.
    assert out[0] == "1" and out[1].split()[1] == "00000000a80425fb" and out[2:4] == ["eth0", "lo"]
    assert berth("run", "--rm", "--runtime", runtime, bb, "sh", "-c", "exit 9", check=False).returncode == 9
    berth("run", "-d", "--name", f"svc-{runtime}", "--runtime", runtime, bb, "sleep", "30")
    assert berth("exec", f"svc-{runtime}", "echo", "in").stdout == "in\n"
    berth("rm", "-f", f"svc-{runtime}")


def test_crun_refusal_is_one_line(berth, bb):
    p = berth("run", "--rm", "--runtime", "crun", bb, "true", check=False)
    if p.returncode == 0:
        pytest.skip("crun runs here (pure cgroup v2 host)")
    assert p.returncode == 125 and len(p.stderr.strip().splitlines()) == 1
    assert berth("ps", "-aq").stdout == ""


def test_signals_are_proxied_and_logs_follow(berth, bb):
    import signal as sig
    import subprocess
    proc = subprocess.Popen([*berth_argv(berth.root), "run", "--rm", bb,
                             "sh", "-c", 'trap "echo got-int; exit 3" INT; echo ready; '
                                         "while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(sig.SIGINT)             # --sig-proxy (the default) forwards it
    assert proc.wait(timeout=20) == 3 and proc.stdout.read() == "got-int\n"
    berth("run", "-d", "--name", "talker", bb, "sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.3; done")
    # -f ends by itself when the container exits, with every line.
    assert berth("logs", "-f", "talker", timeout=30).stdout == "n1\nn2\nn3\n"


def test_volumes_from(berth, bb, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("host\n")
    berth("run", "-d", "--name", "src", "-v", "/data", "-v", f"{shared}:/ctx:ro", bb,
          "sh", "-c", "echo one > /data/x; sleep 300")
    wait_for(lambda: berth("exec", "src", "cat", "/data/x", check=False).stdout == "one\n")
    # The same volume and bind, as they are in src; writes land in src's volume.
    out = berth("run", "--rm", "--volumes-from", "src", bb, "sh", "-c",
                "echo two >> /data/x; cat /data/x /ctx/f; touch /ctx/g 2>/dev/null || echo ro").stdout
    assert out == "one\ntwo\nhost\nro\n"
    assert berth("exec", "src", "cat", "/data/x").stdout == "one\ntwo\n"
    # :ro makes everything read-only; an explicit -v takes a destination over.
    assert berth("run", "--rm", "--volumes-from", "src:ro", bb, "sh", "-c",
                 "echo three >> /data/x", check=False).returncode != 0
    assert berth("run", "--rm", "--volumes-from", "src", "-v", f"{shared}:/data", bb,
                 "cat", "/data/f").stdout == "host\n"
    berth("run", "--name", "dst", "--volumes-from", "src", bb, "true")
    mounts = json.loads(berth("inspect", "-f", "{{json .Mounts}}", "dst").stdout)
    src_mounts = json.loads(berth("inspect", "-f", "{{json .Mounts}}", "src").stdout)
    assert sorted(m["Destination"] for m in mounts) == ["/ctx", "/data"]
    assert {m.get("Name") for m in mounts} == {m.get("Name") for m in src_mounts}
    # rm -v of the borrower leaves the volume src still uses.
    berth("rm", "-v", "dst")
    assert berth("exec", "src", "cat", "/data/x").stdout == "one\ntwo\n"
    for bad, message in (("nosuch", "No such container: nosuch"), ("src:bad", "invalid mode: bad")):
        r = berth("run", "--rm", "--volumes-from", bad, bb, "true", check=False)
        assert r.returncode == 125 and message in r.stderr


def test_devices_dns_options_and_label_files(berth, bb, tmp_path):
    out = berth("run", "--rm", "--network", "none", "--device", "/dev/null:/dev/mynull",
                "--device", "/dev/kmsg:/dev/k:r", bb, "sh", "-c",
                "echo hi > /dev/mynull && echo usable; ls -l /dev/k; echo x > /dev/k 2>/dev/null || echo denied").stdout
    lines = out.splitlines()
    assert lines[0] == "usable" and lines[1].startswith("c") and "1,  11" in lines[1] and lines[2] == "denied"
    for bad, message in (("/dev/nosuch", 'adding custom device "/dev/nosuch": no such file or directory'),
                         ("/dev/null:/x:bad", 'bad format for path: /dev/null:/x:bad')):
        r = berth("run", "--rm", "--network", "none", "--device", bad, bb, "true", check=False)
        assert r.returncode == 125 and message in r.stderr
    resolv = berth("run", "--rm", "--network", "none", "--dns", "10.0.0.2", "--dns-search", "example.com",
                   "--dns-option", "ndots:2", bb, "cat", "/etc/resolv.conf").stdout
    assert resolv == "nameserver 10.0.0.2\nsearch example.com\noptions ndots:2\n"
    (tmp_path / "labels").write_text("team=a\n# a comment\n\nowner=b\n")
    berth("create", "--name", "labelled", "--label-file", tmp_path / "labels", "--label", "owner=c", bb, "true")
    assert json.loads(berth("inspect", "-f", "{{json .Config.Labels}}", "labelled").stdout) == \
        {"team": "a", "owner": "c"}
