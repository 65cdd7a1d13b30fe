"""Containers are kept apart unless linked or on one user-defined network."""

import json

from nettest import HTTPD, fetch_in, ip_of


def test_default_bridge_isolates_and_links_connect(berth, bb):
    berth("run", "-d", "--name", "web", "--expose", "80", "-e", "SECRET=42", bb, "sh", "-c",
          HTTPD.format(body="web"))
    address = ip_of(berth, "web")
    assert address
    # The host reaches it; an unlinked container does not, by address.
    assert fetch_in(berth, bb, address) == ""
    # A linked one reaches it by the link's alias, and sees Docker's link variables.
    assert fetch_in(berth, bb, "site", "--link", "web:site") == "web"
    out = berth("run", "--rm", "--name", "client", "--link", "web:site", bb, "sh", "-c",
                "grep -w site /etc/hosts; env | grep ^SITE_ | sort").stdout.splitlines()
    assert out[0].split() == [address, "site", berth("inspect", "-f", "{{.Config.Hostname}}", "web").stdout.strip(),
                              "web"]
    assert f"SITE_PORT=tcp://{address}:80" in out
    assert f"SITE_PORT_80_TCP_ADDR={address}" in out
    assert "SITE_NAME=/client/site" in out
    assert "SITE_ENV_SECRET=42" in out
    # Linking does not open the way back, nor to unexposed ports.
    assert fetch_in(berth, bb, address, "--link", "web:site", port=81) == ""


def test_link_needs_a_running_container(berth, bb):
    berth("create", "--name", "idle", bb, "sleep", "1")
    p = berth("run", "--rm", "--link", "idle:x", bb, "true", check=False)
    assert p.returncode == 125 and "Cannot link to a non running container" in p.stderr
    p = berth("run", "--rm", "--link", "ghost:x", bb, "true", check=False)
    assert p.returncode == 125 and "ghost" in p.stderr


def test_user_network_resolves_names_and_aliases(berth, bb):
    berth("network", "create", "app")
    # --dns 127.0.0.1: names the resolver does not know go nowhere off this host.
    berth("run", "-d", "--name", "api", "--network", "app", "--network-alias", "backend", "--dns", "127.0.0.1",
          bb, "sh", "-c", HTTPD.format(body="api"))
    assert fetch_in(berth, bb, "api", "--network", "app") == "api"
    assert fetch_in(berth, bb, "backend", "--network", "app") == "api"
    assert fetch_in(berth, bb, "api.app", "--network", "app") == "api"
    # Two long-running members reach each other by name, both ways.
    berth("run", "-d", "--name", "worker", "--network", "app", bb, "sh", "-c", HTTPD.format(body="worker"))
    cmd = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {} 80 | tail -n 1"
    assert berth("exec", "worker", "sh", "-c", cmd.format("api")).stdout == "api\n"
    assert berth("exec", "api", "sh", "-c", cmd.format("worker")).stdout == "worker\n"
    # The resolver is the network's; the default bridge knows no names.
    resolv = berth("exec", "api", "cat", "/etc/resolv.conf").stdout
    gateway = json.loads(berth("network", "inspect", "app").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"nameserver {gateway}" in resolv
    assert fetch_in(berth, bb, "api", "--dns", "127.0.0.1") == ""
    # A removed member stops resolving at once.
    assert ip_of(berth, "worker", "app") in berth("exec", "api", "nslookup", "worker").stdout
    berth("rm", "-f", "worker")
    assert berth("exec", "api", "nslookup", "worker", check=False).returncode != 0


def test_networks_are_isolated_from_each_other(berth, bb):
    berth("network", "create", "one")
    berth("network", "create", "two")
    berth("run", "-d", "--name", "alpha", "--network", "one", bb, "sh", "-c", HTTPD.format(body="a"))
    address = ip_of(berth, "alpha", "one")
    assert fetch_in(berth, bb, address, "--network", "one") == "a"
    assert fetch_in(berth, bb, address, "--network", "two") == ""
    assert fetch_in(berth, bb, address) == ""


def test_connect_and_disconnect_a_running_container(berth, bb):
    berth("network", "create", "late")
    berth("run", "-d", "--name", "srv", "--network", "late", bb, "sh", "-c", HTTPD.format(body="srv"))
    berth("run", "-d", "--name", "cli", "--dns", "127.0.0.1", bb, "sleep", "300")
    cmd = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc srv 80 | tail -n 1"
    assert berth("exec", "cli", "sh", "-c", cmd, check=False).stdout == ""
    berth("network", "connect", "--alias", "peer", "late", "cli")
    assert berth("exec", "cli", "ls", "/sys/class/net").stdout.split() == ["eth0", "eth1", "lo"]
    # The resolver of `late` answers on its gateway; the container's resolv.conf
    # names the default bridge's servers, so ask the resolver directly.
    gateway = json.loads(berth("network", "inspect", "late").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    srv = ip_of(berth, "srv", "late")
    assert srv in berth("exec", "cli", "nslookup", "srv", gateway).stdout
    cmd = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {srv} 80 | tail -n 1"
    assert berth("exec", "cli", "sh", "-c", cmd).stdout == "srv\n"
    networks = json.loads(berth("inspect", "-f", "{{json .NetworkSettings.Networks}}", "cli").stdout)
    assert set(networks) == {"bridge", "late"} and networks["late"]["Aliases"] == ["peer"]
    p = berth("network", "connect", "late", "cli", check=False)
    assert p.returncode == 1 and "already exists in network late" in p.stderr
    berth("network", "disconnect", "late", "cli")
    assert berth("exec", "cli", "ls", "/sys/class/net").stdout.split() == ["eth0", "lo"]
    p = berth("network", "rm", "late", check=False)
    assert p.returncode == 1 and "has active endpoints" in p.stderr


def test_none_and_host(berth, bb):
    assert berth("run", "--rm", "--network", "none", bb, "ls", "/sys/class/net").stdout.split() == ["lo"]
    host = berth("run", "--rm", "--network", "host", bb, "ls", "/sys/class/net").stdout.split()
    assert "eth0" in host or len(host) > 1
    berth("run", "-d", "--name", "owner", bb, "sleep", "300")
    shared = berth("run", "--rm", "--network", "container:owner", bb, "cat", "/sys/class/net/eth0/address")
    assert shared.stdout.strip() == berth("inspect", "-f", "{{.NetworkSettings.MacAddress}}", "owner").stdout.strip()


def _tcp_dns_query(server: str, name: str) -> list[str]:
    """The A records of `name` asked over TCP (RFC 1035 4.2.2), as a client
    whose UDP answer came truncated asks again."""
    import socket
    import struct
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question
    with socket.create_connection((server, 53), timeout=5) as s:
        s.sendall(len(query).to_bytes(2, "big") + query)
        length = int.from_bytes(s.recv(2), "big")
        reply = b""
        while len(reply) < length:
            reply += s.recv(length - len(reply))
    qid, _flags, _qd, ancount = struct.unpack("!HHHH", reply[:8])
    assert qid == 0x1234
    answers, pos = [], 12 + len(question)
    for _ in range(ancount):
        rdlength = struct.unpack("!H", reply[pos + 10:pos + 12])[0]
        answers.append(socket.inet_ntoa(reply[pos + 12:pos + 12 + rdlength]))
        pos += 12 + rdlength
    return answers


def test_the_network_resolver_answers_over_tcp(berth, bb):
    berth("network", "create", "tcpdns")
    berth("run", "-d", "--name", "srv", "--network", "tcpdns", bb, "sleep", "300")
    gateway = json.loads(berth("network", "inspect", "tcpdns").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert _tcp_dns_query(gateway, "srv") == [ip_of(berth, "srv", "tcpdns")]
    assert _tcp_dns_query(gateway, "srv.tcpdns") == [ip_of(berth, "srv", "tcpdns")]
