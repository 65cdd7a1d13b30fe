"""The network layer's pure parts: ports, links, DNS messages, IPAM, rules."""

import ipaddress
import struct

import pytest

from berth.errors import Conflict, InvalidArgument, Unavailable
from berth.network import dns, ipam, ports, rules
from berth.network.links import environment, hosts_names, parse_link
from berth.network.names import bridge_name, mac_for, owns_bridge, veth_name, veth_prefix
from berth.network.store import PortMapping


def test_port_requests():
    reqs = ports.requests({"80/tcp": {}, "53/udp": {}, "9000/tcp": {}},
                          {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "", "HostPort": ""}],
                           "53/udp": [{"HostIp": "", "HostPort": "5300-5310"}],
                           "443/tcp": [{"HostIp": "::", "HostPort": "8443"}]},
                          publish_all=True)
    assert reqs == [ports.PortRequest("udp", 53, "", (5300, 5310)),
                    ports.PortRequest("tcp", 80, "127.0.0.1", (8080, 8080)),
                    ports.PortRequest("tcp", 80, "", None),
                    ports.PortRequest("tcp", 9000, "", None)]
    with pytest.raises(InvalidArgument):
        ports.requests(None, {"80/icmp": [{}]}, False)
    with pytest.raises(InvalidArgument):
        ports.requests(None, {"80/tcp": [{"HostIp": "nonsense", "HostPort": "1"}]}, False)


def test_allocate():
    free = lambda proto, ip, port: port != 5301
    taken = [("tcp", "", 8080), ("udp", "127.0.0.1", 5300)]
    wanted = [ports.PortRequest("udp", 53, "", (5300, 5310)), ports.PortRequest("tcp", 80, "127.0.0.2", (8081, 8081)),
              ports.PortRequest("udp", 54, "", (5300, 5310))]
    got = ports.allocate("c", wanted, taken, free)
    assert [(m.proto, m.host_ip, m.host_port) for m in got] == [("udp", "", 5302), ("tcp", "127.0.0.2", 8081),
                                                                 ("udp", "", 5303)]
    # "every address" clashes with one address, and the other way round.
    with pytest.raises(Conflict, match="port is already allocated"):
        ports.allocate("c", [ports.PortRequest("tcp", 80, "127.0.0.1", (8080, 8080))], taken, free)
    got = ports.allocate("c", [ports.PortRequest("tcp", 80, "127.0.0.1", (5300, 5300))], taken, free)
    assert got[0].host_port == 5300  # the taken 5300 is UDP
    dyn = ports.allocate("c", [ports.PortRequest("tcp", 80, "", None)], [], lambda *a: True)
    first, last = ports.dynamic_range()
    assert first <= dyn[0].host_port <= last
    with pytest.raises(Unavailable):
        ports.allocate("c", [ports.PortRequest("tcp", 80, "", None)], [], lambda *a: False)


def test_docker_port_shapes():
    m = [PortMapping("c", "tcp", 80, "", 8080), PortMapping("c", "tcp", 80, "127.0.0.1", 8081),
         PortMapping("c", "udp", 53, "", 5353)]
    assert ports.port_lines(m) == ["53/udp -> 0.0.0.0:5353", "80/tcp -> 0.0.0.0:8080", "80/tcp -> 127.0.0.1:8081"]
    assert ports.port_lines(m, "80") == ["0.0.0.0:8080", "127.0.0.1:8081"]
    assert ports.port_lines(m, "53/udp") == ["0.0.0.0:5353"]
    assert ports.settings_ports({"80/tcp": {}, "443/tcp": {}}, m[:1]) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None}
    assert ports.summary_ports({"443/tcp": {}}, m[:1]) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}, {"PrivatePort": 443, "Type": "tcp"}]


def test_link_environment_and_hosts():
    assert parse_link("db") == ("db", "db")
    assert parse_link("db:data") == ("db", "data")
    assert parse_link("/db:/web/data") == ("db", "data")
    env = environment("my-db", "web", "172.17.0.2", {"5432/tcp": {}, "5433/tcp": {}, "53/udp": {}},
                      ["PATH=/bin", "HOME=/root", "PASSWORD=x"])
    assert env[0] == "MY_DB_PORT=tcp://172.17.0.2:5432"
    assert "MY_DB_PORT_5432_TCP_START=tcp://172.17.0.2:5432" in env
    assert "MY_DB_PORT_5432_TCP_PORT_END=5433" in env
    assert "MY_DB_PORT_53_UDP=udp://172.17.0.2:53" in env
    assert "MY_DB_PORT_5433_TCP_ADDR=172.17.0.2" in env
    assert "MY_DB_NAME=/web/my-db" in env
    assert "MY_DB_ENV_PASSWORD=x" in env and not any("ENV_PATH" in e or "ENV_HOME" in e for e in env)
    assert hosts_names("data", "db", "0123456789ab") == "data 0123456789ab db"
    assert hosts_names("db", "db", "0123456789ab") == "db 0123456789ab"


def _query(name: str, qtype: int = dns.TYPE_A) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, dns.CLASS_IN)


def test_dns_messages():
    q = dns.parse_query(_query("Web.App"))
    assert (q.id, q.name, q.qtype) == (0x1234, "web.app", dns.TYPE_A)
    reply = dns.answer(q, ["10.0.0.2", "10.0.0.3"])
    qid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, flags & 0x8000, flags & 0x0100, flags & 0xF, qd, an) == (0x1234, 0x8000, 0x0100, 0, 1, 2)
    assert reply.endswith(ipaddress.IPv4Address("10.0.0.3").packed)
    empty = dns.answer(dns.parse_query(_query("web", dns.TYPE_AAAA)), [])
    assert struct.unpack("!H", empty[6:8])[0] == 0
    with pytest.raises(dns.Malformed):
        dns.parse_query(b"\0\1")
    assert struct.unpack("!H", dns.error(_query("x"), dns.SERVFAIL)[2:4])[0] & 0xF == dns.SERVFAIL


def test_ipam():
    taken = [ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("172.18.5.0/24")]
    assert str(ipam.choose_subnet(taken)) == "172.19.0.0/16"
    assert ipam.gateway_for(ipaddress.ip_network("10.0.0.0/24")) == "10.0.0.1"
    with pytest.raises(InvalidArgument):
        ipam.gateway_for(ipaddress.ip_network("10.0.0.0/24"), "10.0.1.1")
    with pytest.raises(Conflict, match="Pool overlaps"):
        ipam.check_free(ipaddress.ip_network("172.17.3.0/24"), taken)
    net = ipaddress.ip_network("10.0.0.0/29")
    assert ipam.next_address(net, "10.0.0.1", {"10.0.0.2"}) == "10.0.0.3"
    with pytest.raises(Unavailable):
        ipam.next_address(net, "10.0.0.1", {f"10.0.0.{i}" for i in range(2, 7)})
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet("fd00::/64")
    assert all(r.prefixlen > 0 for r in ipam.host_routes())


def test_names(tmp_path):
    b = bridge_name(tmp_path, "ab" * 32, default=False)
    assert len(b) == 15 and b.startswith("berth") and owns_bridge(tmp_path, b)
    assert not owns_bridge(tmp_path / "other", b)
    v = veth_name(tmp_path)
    assert len(v) == 15 and v.startswith(veth_prefix(tmp_path))
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_rules_render():
    plan = rules.RootRules("berth_t", [rules.BridgeRules("berthtdef", "172.17.0.0/16", isolated=True,
                                                         ports=("vb1", "vb2")),
                                       rules.BridgeRules("berthtint", "10.9.0.0/24", internal=True)],
                           links=[rules.LinkRule("berthtdef", "172.17.0.3", "172.17.0.2", "tcp", 80)],
                           dnats=[rules.DnatRule("tcp", "127.0.0.1", 8080, "172.17.0.2", 80, "berthtdef")])
    text = rules.render(plan)
    assert text.startswith("table ip berth_t\ndelete table ip berth_t\n")
    assert "elements = { 127.0.0.1 . tcp . 8080 }" in text
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.17.0.2:80" in text
    assert 'ip saddr 172.17.0.0/16 oifname != "berthtdef" masquerade' in text
    assert 'ip saddr 10.9.0.0/24 oifname != "berthtint" masquerade' not in text
    assert 'oifname "berthtdef" ip saddr 127.0.0.0/8 masquerade' in text
    assert 'iifname "berthtint" oifname != "berthtint" drop' in text
    assert 'iifname "berthtdef" oifname "berthtdef" ip saddr 172.17.0.3 ip daddr 172.17.0.2 tcp dport 80 accept' \
        in text
    assert 'iifname @isolated0 oifname @isolated0 drop' in text
    plan.bridged_frames_in_ip_hooks = True
    assert "table bridge berth_t {" not in rules.render(plan)
    assert rules.render(rules.RootRules("berth_t")).count("delete table") == 2
