"""The nftables rules of one state root, rendered whole from its state.

Every change re-renders the root's two tables (ip: NAT, published ports,
cross-network isolation; bridge: isolation between containers on the
default bridge) and replaces them in one atomic nft transaction.  There is
no per-rule bookkeeping to get wrong: a rule exists exactly while the
database says its container holds an endpoint, and a crash is repaired by
the next render.

Docker's equivalents, for reference: POSTROUTING MASQUERADE per bridge
subnet, the DOCKER chain's DNATs (with the userland proxy disabled, so
127.0.0.1 is DNATed too, which needs route_localnet on the bridge and a
masquerade of 127.0.0.0/8 sources), DOCKER-ISOLATION between networks, and
`--icc=false`'s `-i docker0 -o docker0 -j DROP` with ACCEPTs per link.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field

from berth.errors import Unavailable
from berth.network.names import BRIDGE_PREFIX, TABLE_PREFIX

PUBLISHED_SET = "published"   # other roots read it to learn which host ports are taken


@dataclass(frozen=True)
class BridgeRules:
    bridge: str
    subnet: str
    internal: bool = False
    isolated: bool = False          # ICC off: containers talk only along links
    ports: tuple[str, ...] = ()     # host-side veths of the bridge


@dataclass(frozen=True)
class LinkRule:
    """Traffic from a linking container to a port of the container it links to (and the replies)."""
    bridge: str
    source: str
    target: str
    proto: str
    port: int


@dataclass(frozen=True)
class DnatRule:
    proto: str
    host_ip: str          # '' for every local address
    host_port: int
    target: str
    target_port: int
    bridge: str


@dataclass
class RootRules:
    table: str
    bridges: list[BridgeRules] = field(default_factory=list)
    links: list[LinkRule] = field(default_factory=list)
    dnats: list[DnatRule] = field(default_factory=list)
    # br_netfilter passes bridged frames through the ip family's hooks, where
    # the forward chain isolates with conntrack at hand; without it, the
    # bridge family must (and cannot see conntrack, nor needs to: DNATed
    # traffic is then routed, never bridged).
    bridged_frames_in_ip_hooks: bool = False

    @property
    def empty(self) -> bool:
        return not self.bridges


def _q(name: str) -> str:
    return json.dumps(name)


def render(r: RootRules) -> str:
    """The nft script that makes the root's tables exactly `r` (or removes them)."""
    out = [f"table ip {r.table}", f"delete table ip {r.table}",
           f"table bridge {r.table}", f"delete table bridge {r.table}"]
    if r.empty:
        return "\n".join(out) + "\n"
    ip = [f"table ip {r.table} {{"]
    ip += [f"  set {PUBLISHED_SET} {{", "    type ipv4_addr . inet_proto . inet_service"]
    if r.dnats:
        elements = ", ".join(f"{d.host_ip or '0.0.0.0'} . {d.proto} . {d.host_port}" for d in r.dnats)
        ip.append(f"    elements = {{ {elements} }}")
    ip.append("  }")
    ip += ["  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
           "    fib daddr type local jump published_ports", "  }",
           "  chain output {", "    type nat hook output priority -100; policy accept;",
           "    fib daddr type local jump published_ports", "  }",
           "  chain published_ports {"]
    for d in r.dnats:
        match = f"ip daddr {d.host_ip} " if d.host_ip else ""
        ip.append(f"    {match}{d.proto} dport {d.host_port} dnat to {d.target}:{d.target_port}")
    ip.append("  }")
    ip += ["  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
    published_bridges = {d.bridge for d in r.dnats}
    for b in r.bridges:
        if not b.internal:
            ip.append(f"    ip saddr {b.subnet} oifname != {_q(b.bridge)} masquerade")
        if b.bridge in published_bridges:
            ip.append(f"    oifname {_q(b.bridge)} ip saddr 127.0.0.0/8 masquerade")
            ip.append(f"    oifname {_q(b.bridge)} ip saddr {b.subnet} ct status dnat masquerade")
    ip.append("  }")
    ip += ["  chain forward {", "    type filter hook forward priority filter; policy accept;"]
    ip += _forward_rules(r)
    ip.append("  }")
    ip.append("}")
    out += ip
    isolated = [b for b in r.bridges if b.isolated and b.ports and not r.bridged_frames_in_ip_hooks]
    if isolated:
        br = [f"table bridge {r.table} {{"]
        for i, b in enumerate(isolated):
            br += [f"  set isolated{i} {{", "    type ifname",
                   f"    elements = {{ {', '.join(_q(p) for p in b.ports)} }}", "  }"]
        br += ["  chain forward {", "    type filter hook forward priority filter; policy accept;"]
        for i, b in enumerate(isolated):
            between = f"iifname @isolated{i} oifname @isolated{i}"
            # ARP still flows: a container may learn its neighbours' addresses, not talk to them.
            br.append(f"    {between} ether type arp accept")
            for link in r.links:
                if link.bridge == b.bridge:
                    br += [f"    {between} {rule} accept" for rule in _link_matches(link)]
            br.append(f"    {between} drop")
        br += ["  }", "}"]
        out += br
    return "\n".join(out) + "\n"


def _link_matches(link: LinkRule) -> list[str]:
    return [f"ip saddr {link.source} ip daddr {link.target} {link.proto} dport {link.port}",
            f"ip saddr {link.target} ip daddr {link.source} {link.proto} sport {link.port}"]


def _forward_rules(r: RootRules) -> list[str]:
    lines = []
    for b in r.bridges:
        br = _q(b.bridge)
        # Isolation between networks, of this root and of every other: nothing
        # routed from another berth bridge enters this one.
        lines.append(f"    oifname {br} iifname != {br} iifname \"{BRIDGE_PREFIX}*\" drop")
        if b.internal:
            lines.append(f"    iifname {br} oifname != {br} drop")
            lines.append(f"    oifname {br} iifname != {br} drop")
        if b.isolated:
            # A published port is open to every container: DNATed traffic passes.
            lines.append(f"    iifname {br} oifname {br} ct status dnat accept")
            # Bridged frames reach this chain too when br_netfilter is loaded.
            for link in r.links:
                if link.bridge == b.bridge:
                    lines += [f"    iifname {br} oifname {br} {m} accept" for m in _link_matches(link)]
            lines.append(f"    iifname {br} oifname {br} drop")
    return lines


def bridged_frames_in_ip_hooks() -> bool:
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return False  # br_netfilter is not loaded


def nft(script: str) -> None:
    binary = shutil.which("nft")
    if binary is None:
        raise Unavailable("nft (Debian package nftables) is needed for container networking")
    p = subprocess.run([binary, "-f", "-"], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        raise Unavailable(f"nft failed: {p.stderr.strip()}")


def apply(r: RootRules) -> None:
    nft(render(r))


def published_elsewhere(own_table: str) -> list[tuple[str, str, int]]:
    """(proto, host_ip, port) that other roots publish, from their tables' sets."""
    binary = shutil.which("nft")
    if binary is None:
        return []
    p = subprocess.run([binary, "-j", "list", "sets", "ip"], capture_output=True, text=True)
    if p.returncode != 0:
        return []
    out = []
    for item in json.loads(p.stdout or "{}").get("nftables", []):
        s = item.get("set")
        if not s or s.get("name") != PUBLISHED_SET or not s.get("table", "").startswith(TABLE_PREFIX) \
                or s.get("table") == own_table:
            continue
        for element in _set_elements(binary, s["table"]):
            out.append(element)
    return out


def _set_elements(binary: str, table: str) -> list[tuple[str, str, int]]:
    p = subprocess.run([binary, "-j", "list", "set", "ip", table, PUBLISHED_SET], capture_output=True, text=True)
    if p.returncode != 0:
        return []
    out = []
    for item in json.loads(p.stdout or "{}").get("nftables", []):
        for element in (item.get("set") or {}).get("elem", []):
            parts = element.get("concat") if isinstance(element, dict) else None
            if parts and len(parts) == 3:
                ip, proto, port = parts
                out.append((str(proto), "" if ip == "0.0.0.0" else str(ip), int(port)))
    return out


def table_exists(table: str) -> bool:
    binary = shutil.which("nft")
    if binary is None:
        return False
    for family in ("ip", "bridge"):
        if subprocess.run([binary, "list", "table", family, table], capture_output=True).returncode == 0:
            return True
    return False
