"""Outbound NAT, internal networks, and the files a container's resolver reads."""

import json
import socket
import subprocess

import pytest

MIRROR = "deb.debian.org"
HEAD = "printf 'HEAD /debian/ HTTP/1.0\\r\\nHost: deb.debian.org\\r\\n\\r\\n' | timeout 10 nc deb.debian.org 80 | head -n 1"


def mirror_address() -> str:
    """How this host reaches the mirror (a package proxy here); the container gets it by --add-host."""
    p = subprocess.run(["getent", "hosts", MIRROR], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"{MIRROR} does not resolve on this host")
    address = p.stdout.split()[0]
    try:
        socket.create_connection((address, 80), timeout=5).close()
    except OSError:
        pytest.skip(f"{MIRROR} ({address}) is not reachable from this host")
    return address


def test_outbound_nat_reaches_the_debian_mirror(berth, bb):
    """What a RUN step does: fetch from the package mirror over http through the bridge's masquerade."""
    address = mirror_address()
    # The mirror is a proxy on the network: give it three tries, as apt would.
    for _ in range(3):
        out = berth("run", "--rm", "--add-host", f"{MIRROR}:{address}", bb, "sh", "-c", HEAD).stdout
        if out.startswith("HTTP/1."):
            break
    assert out.startswith("HTTP/1."), out
    # An internal network has no way out.
    berth("network", "create", "--internal", "sealed")
    p = berth("run", "--rm", "--network", "sealed", "--add-host", f"{MIRROR}:{address}", bb, "sh", "-c",
              HEAD + "; ip route", check=False)
    assert not p.stdout.startswith("HTTP/") and "default" not in p.stdout


def test_add_host_host_gateway(berth, bb):
    """host-gateway is the host's address on the default bridge (Docker's docker0 address)."""
    out = berth("run", "--rm", "--add-host", "gw:host-gateway", bb, "sh", "-c",
                "grep -w gw /etc/hosts; ip route").stdout
    gateway = json.loads(berth("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"{gateway}\tgw\n" in out and f"default via {gateway} " in out
    # Also without a network of its own, as in Docker.
    none = berth("run", "--rm", "--network", "none", "--add-host", "gw:host-gateway", bb, "grep", "-w", "gw",
                 "/etc/hosts").stdout
    assert none == f"{gateway}\tgw\n"


def test_etc_files(berth, bb):
    out = berth("run", "--rm", "--hostname", "box", "--add-host", "db.local:10.1.2.3", bb, "sh", "-c",
                "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; hostname").stdout
    hosts, resolv, hostname = out.split("---\n")
    own = [line.split() for line in hosts.splitlines() if line.endswith("\tbox")]
    assert len(own) == 1 and own[0][0].startswith(("172.", "192.168."))
    assert "10.1.2.3\tdb.local" in hosts
    with open("/etc/resolv.conf") as f:
        host_servers = [l.split()[1] for l in f if l.startswith("nameserver") and not l.split()[1].startswith("127.")]
    assert [l.split()[1] for l in resolv.splitlines() if l.startswith("nameserver")] == (host_servers or
                                                                                       ["8.8.8.8", "8.8.4.4"])
    assert hostname == "box\n"
    resolv = berth("run", "--rm", "--dns", "127.0.0.9", bb, "cat", "/etc/resolv.conf").stdout
    assert [l for l in resolv.splitlines() if l.startswith("nameserver")] == ["nameserver 127.0.0.9"]
    # On a user network the network's resolver is the only nameserver; --dns is where it forwards.
    berth("network", "create", "app")
    resolv = berth("run", "--rm", "--network", "app", "--dns", "127.0.0.9", bb, "cat", "/etc/resolv.conf").stdout
    gateway = json.loads(berth("network", "inspect", "app").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    assert [l for l in resolv.splitlines() if l.startswith("nameserver")] == [f"nameserver {gateway}"]
