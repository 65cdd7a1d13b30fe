"""Published ports: every -p form, -P, `port`, and DNAT in the kernel."""

import json
import socket
import time

from nettest import HTTPD, free_port, http_get, ip_of


def listening_on(port: int) -> bool:
    """Whether any socket on the host listens on the TCP port (a userland proxy would)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    return True
    return False


def test_httpd_answers_on_a_published_loopback_port(berth, bb):
    port = free_port()
    berth("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", bb, "sh", "-c", HTTPD.format(body="hello"))
    assert http_get("127.0.0.1", port) == "hello\n"
    # The kernel forwards it: nothing on the host listens on the port.
    assert not listening_on(port)
    assert berth("port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert berth("port", "web", "80").stdout == f"127.0.0.1:{port}\n"
    assert berth("port", "web", "80/tcp").stdout == f"127.0.0.1:{port}\n"
    p = berth("port", "web", "81", check=False)
    assert p.returncode == 1 and "No public port '81/tcp' published for web" in p.stderr
    assert f"127.0.0.1:{port}->80/tcp" in berth("ps", "--format", "{{.Ports}}").stdout
    settings = json.loads(berth("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web").stdout)
    assert settings == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    # Not on other addresses of the host.
    gateway = berth("inspect", "-f", "{{.NetworkSettings.Gateway}}", "web").stdout.strip()
    with socket.socket() as s:
        s.settimeout(1)
        assert s.connect_ex((gateway, port)) != 0


def test_every_address_and_from_another_network_namespace(berth, bb):
    """-p HOST:CTR binds all addresses; a client in another namespace comes in through PREROUTING."""
    port = free_port()
    berth("run", "-d", "--name", "web", "-p", f"{port}:80", bb, "sh", "-c", HTTPD.format(body="all"))
    assert http_get("127.0.0.1", port) == "all\n"
    gateway = berth("inspect", "-f", "{{.NetworkSettings.Gateway}}", "web").stdout.strip()
    assert http_get(gateway, port) == "all\n"
    # From a container (its own namespace) to the host's address on its bridge.
    cmd = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {gateway} {port} | tail -n 1"
    assert berth("run", "--rm", bb, "sh", "-c", cmd).stdout == "all\n"
    assert berth("port", "web").stdout == f"80/tcp -> 0.0.0.0:{port}\n"


def test_random_ports_ranges_and_publish_all(berth, bb):
    base = free_port()
    while not all(_free(p) for p in (base, base + 1)):
        base = free_port()
    berth("run", "-d", "--name", "many", "-p", "80", "-p", f"{base}-{base + 1}:81-82", "--expose", "90",
          "-P", bb, "sleep", "300")
    lines = berth("port", "many").stdout.splitlines()
    mapped = dict(line.split(" -> ") for line in lines)
    assert mapped["81/tcp"] == f"0.0.0.0:{base}" and mapped["82/tcp"] == f"0.0.0.0:{base + 1}"
    assert set(mapped) == {"80/tcp", "81/tcp", "82/tcp", "90/tcp"}
    for key in ("80/tcp", "90/tcp"):
        host_port = int(mapped[key].rsplit(":", 1)[1])
        assert host_port not in (base, base + 1) and host_port > 1024
    assert len({v for v in mapped.values()}) == 4
    # A port berth already publishes is not given out twice.
    p = berth("run", "-d", "--name", "clash", "-p", f"{base}:80", bb, "sleep", "300", check=False)
    assert p.returncode != 0 and "port is already allocated" in p.stderr
    berth("rm", "-f", "clash")


def test_a_host_range_for_one_container_port(berth, bb):
    """-p FIRST-LAST:80 takes the first free port of the range (Docker's form for a pool)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        first = held.getsockname()[1]
        berth("run", "-d", "--name", "pool", "-p", f"127.0.0.1:{first}-{first + 20}:80", bb, "sleep", "300")
    [line] = berth("port", "pool").stdout.splitlines()
    port = int(line.rsplit(":", 1)[1])
    assert line.startswith("80/tcp -> 127.0.0.1:") and first < port <= first + 20


def test_a_port_used_by_a_host_process_is_refused(berth, bb):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = berth("run", "-d", "--name", "busy", "-p", f"127.0.0.1:{port}:80", bb, "sleep", "300", check=False)
    assert p.returncode != 0 and "port is already allocated" in p.stderr


def test_udp(berth, bb):
    """A datagram to the published port arrives in the container's namespace
    (busybox has no UDP server: its kernel counts the datagram as sent to a closed port)."""
    port = free_port()
    berth("run", "-d", "--name", "udp", "-p", f"127.0.0.1:{port}:5353/udp", bb, "sleep", "300")
    assert berth("port", "udp").stdout == f"5353/udp -> 127.0.0.1:{port}\n"
    before = _udp_no_ports(berth, "udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            s.sendto(b"datagram\n", ("127.0.0.1", port))
    deadline = time.monotonic() + 5
    while _udp_no_ports(berth, "udp") < before + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _udp_no_ports(berth, "udp") >= before + 3


def _udp_no_ports(berth, container: str) -> int:
    lines = [line.split() for line in berth("exec", container, "cat", "/proc/net/snmp").stdout.splitlines()
             if line.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1]))["NoPorts"])


def test_hairpin_a_container_reaches_itself_through_its_published_port(berth, bb):
    port = free_port()
    berth("run", "-d", "--name", "web", "-p", f"{port}:80", bb, "sh", "-c", HTTPD.format(body="self"))
    gateway = berth("inspect", "-f", "{{.NetworkSettings.Gateway}}", "web").stdout.strip()
    http_get("127.0.0.1", port)
    cmd = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {gateway} {port} | tail -n 1"
    assert berth("exec", "web", "sh", "-c", cmd).stdout == "self\n"
    assert ip_of(berth, "web").startswith(gateway.rsplit(".", 2)[0])


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True
