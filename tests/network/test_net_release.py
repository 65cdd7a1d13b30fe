"""Everything a container holds in the kernel is given back on every exit
path: rm, stop, its own exit, a crashed supervisor, an engine restart."""

import json
import os
import signal
import subprocess
import time

from berth.network import rules
from berth.network.names import bridge_name, netns_path, table_name, veth_prefix
from berth.network.netlink import create_netns
from nettest import HTTPD, free_port, http_get, leftovers, processes, wait_for_leftovers_gone


def _supervisor_pid(root, container_id: str) -> int:
    for pid, args in processes():
        if b"berth.container.supervisor" in b" ".join(args) and container_id.encode() in args:
            return pid
    raise AssertionError("no supervisor")


def test_stop_and_rm_release_everything(berth, bb, root):
    port = free_port()
    berth("network", "create", "app")
    berth("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", bb, "sh", "-c", HTTPD.format(body="x"))
    berth("run", "-d", "--name", "member", "--network", "app", bb, "sleep", "300")
    assert http_get("127.0.0.1", port) == "x\n"
    assert any(item.startswith("link") for item in leftovers(root))
    berth("stop", "-t", "1", "web", "member")
    assert wait_for_leftovers_gone(root) == []
    # Memberships outlive a stop: inspect still names the networks, without addresses.
    networks = json.loads(berth("inspect", "-f", "{{json .NetworkSettings.Networks}}", "member").stdout)
    assert list(networks) == ["app"] and networks["app"]["IPAddress"] == ""
    # A restart gets everything back.
    berth("start", "web")
    assert http_get("127.0.0.1", port) == "x\n"
    berth("rm", "-f", "web")
    assert wait_for_leftovers_gone(root) == []


def test_a_container_exiting_on_its_own_releases(berth, bb, root):
    berth("run", "--name", "brief", "-p", "80", bb, "true")
    assert wait_for_leftovers_gone(root) == []
    berth("run", "--rm", bb, "true")
    assert wait_for_leftovers_gone(root) == []


def test_restart_policy_keeps_the_namespace(berth, bb, root, tmp_path):
    """Between restarts the container keeps its namespace, address and MAC."""
    out = tmp_path / "out"
    out.mkdir()
    berth("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "-v", f"{out}:/out", bb, "sh", "-c",
          "cat /sys/class/net/eth0/address >> /out/seen; sleep 0.5; exit 1")
    deadline = time.monotonic() + 30
    while berth("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "flaky").stdout.split() != ["exited", "2"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    seen = (out / "seen").read_text().splitlines()
    assert len(seen) == 3 and len(set(seen)) == 1
    assert wait_for_leftovers_gone(root) == []


def test_a_crashed_supervisor_is_noticed_and_released(berth, bb, root):
    port = free_port()
    cid = berth("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", bb, "sh", "-c",
                HTTPD.format(body="x")).stdout.strip()
    assert http_get("127.0.0.1", port) == "x\n"
    pid = _supervisor_pid(root, cid)
    container_pid = int(berth("inspect", "-f", "{{.State.Pid}}", "web").stdout)
    os.kill(pid, signal.SIGKILL)
    os.kill(container_pid, signal.SIGKILL)
    time.sleep(0.2)
    # Any command is an engine start: the dead supervisor is noticed, its container released.
    berth("network", "ls")
    assert wait_for_leftovers_gone(root, timeout=2) == []
    assert berth("inspect", "-f", "{{.State.Status}}", "web").stdout.strip() == "exited"


def test_an_engine_start_removes_orphans(berth, bb, root):
    """Kernel objects of the root that no record explains (a start killed half
    way, a crash between steps) are removed by the next command."""
    bridge, veth = bridge_name(root, "dead" + "0" * 60, default=False), veth_prefix(root) + "dead000"
    netns = netns_path(root, "f" * 64)
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "vbpeer" + veth[-6:]], check=True)
    create_netns(netns)
    rules.apply(rules.RootRules(table_name(root), [rules.BridgeRules(bridge, "10.123.0.0/24")]))
    found = leftovers(root)
    assert {f"link {bridge}", f"link {veth}", f"mount {netns}", f"nft table ip {table_name(root)}"} <= set(found)
    berth("ps")
    assert leftovers(root) == []
    assert not os.path.exists(f"/sys/class/net/vbpeer{veth[-6:]}")
