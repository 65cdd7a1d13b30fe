"""Published ports: from a container's PortBindings to concrete host ports,
and back to Docker's shapes (inspect's Ports, ps's Ports, `port`'s lines).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from berth.errors import Conflict, InvalidArgument, Unavailable
from berth.network.store import PortMapping

PROTOCOLS = ("tcp", "udp", "sctp")
FALLBACK_DYNAMIC_RANGE = (49153, 65535)  # Docker's, when ip_local_port_range cannot be read


@dataclass(frozen=True)
class PortRequest:
    """One binding asked for: a container port and a host port, range or any."""
    proto: str
    container_port: int
    host_ip: str                  # '' for every address
    host_ports: tuple[int, int] | None   # None: any free port


def parse_port_key(key: str) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp"); Docker's nat.Port."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    try:
        number = int(port)
    except ValueError:
        raise InvalidArgument(f"invalid port: {key}") from None
    if not 0 < number <= 65535:
        raise InvalidArgument(f"invalid port: {key}")
    return number, proto


def _host_range(text: str) -> tuple[int, int] | None:
    text = (text or "").strip()
    if not text:
        return None
    start, _, end = text.partition("-")
    try:
        first, last = int(start), int(end or start)
    except ValueError:
        raise InvalidArgument(f"invalid hostPort: {text}") from None
    if first == 0 and last == 0:
        return None
    if not 0 < first <= last <= 65535:
        raise InvalidArgument(f"invalid hostPort: {text}")
    return first, last


def _host_ip(text: str) -> str:
    text = (text or "").strip().strip("[]")
    if text in ("", "0.0.0.0"):
        return ""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid IP address: {text}") from None
    if address.version != 4:
        return text  # kept for inspect; rules are IPv4 only (see requests())
    return str(address)


def requests(exposed: Mapping | None, bindings: Mapping | None, publish_all: bool) -> list[PortRequest]:
    """What to publish, in Docker's order: explicit bindings, then -P's exposed ports."""
    out: list[PortRequest] = []
    bindings = bindings or {}
    for key, items in sorted(bindings.items(), key=lambda kv: parse_port_key(kv[0])):
        port, proto = parse_port_key(key)
        for b in items or [{}]:
            ip = _host_ip(b.get("HostIp", ""))
            if ":" in ip:
                continue  # an IPv6 host address: berth publishes on IPv4 only
            out.append(PortRequest(proto, port, ip, _host_range(b.get("HostPort", ""))))
    if publish_all:
        for key in sorted(exposed or {}, key=parse_port_key):
            if key not in bindings:
                port, proto = parse_port_key(key)
                out.append(PortRequest(proto, port, "", None))
    return out


def dynamic_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first, last = (int(x) for x in f.read().split())
        return first, last
    except (OSError, ValueError):
        return FALLBACK_DYNAMIC_RANGE


def clashes(a_ip: str, b_ip: str) -> bool:
    """Two bindings of one port clash when their addresses do, or either is 'every address'."""
    return not a_ip or not b_ip or a_ip == b_ip


def can_bind(proto: str, host_ip: str, port: int) -> bool:
    """Whether a host process already holds the port (a listener, a bound UDP socket)."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    if proto == "sctp":
        return True  # nothing to probe without an SCTP socket; rules still reserve it
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip or "0.0.0.0", port))
        except OSError:
            return False
    return True


def allocate(container_id: str, wanted: Iterable[PortRequest], taken: Iterable[tuple[str, str, int]],
             free: Callable[[str, str, int], bool] = can_bind) -> list[PortMapping]:
    """Concrete host ports for the requests.

    `taken` holds (proto, host_ip, port) of every port berth has published
    on this host; `free` probes the host for other users of a port.
    """
    held = list(taken)

    def available(proto: str, ip: str, port: int) -> bool:
        if any(p == proto and hp == port and clashes(ip, hip) for p, hip, hp in held):
            return False
        return free(proto, ip, port)

    out = []
    for r in wanted:
        if r.host_ports is None:
            first, last = dynamic_range()
        else:
            first, last = r.host_ports
        for port in range(first, last + 1):
            if available(r.proto, r.host_ip, port):
                break
        else:
            where = f"{r.host_ip or '0.0.0.0'}:{first}" + (f"-{last}" if last != first else "")
            if r.host_ports is None:
                raise Unavailable(f"no free host port for {r.container_port}/{r.proto}")
            raise Conflict(f"driver failed programming external connectivity: Bind for {where} failed: "
                           "port is already allocated")
        held.append((r.proto, r.host_ip, port))
        out.append(PortMapping(container_id, r.proto, r.container_port, r.host_ip, port))
    return out


# -- Docker's shapes ---------------------------------------------------------------


def settings_ports(exposed: Mapping | None, mappings: Iterable[PortMapping]) -> dict:
    """inspect's NetworkSettings.Ports: every exposed port, null when unpublished."""
    out: dict = {key: None for key in exposed or {}}
    for m in mappings:
        out.setdefault(f"{m.container_port}/{m.proto}", None)
        key = f"{m.container_port}/{m.proto}"
        out[key] = (out[key] or []) + [{"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}]
    return out


def summary_ports(exposed: Mapping | None, mappings: Iterable[PortMapping]) -> list[dict]:
    """ps's Ports: published ones with IP and PublicPort, the rest as exposed only."""
    mappings = list(mappings)
    out = [{"IP": m.host_ip or "0.0.0.0", "PrivatePort": m.container_port, "PublicPort": m.host_port,
            "Type": m.proto} for m in mappings]
    published = {(m.container_port, m.proto) for m in mappings}
    for key in exposed or {}:
        port, proto = parse_port_key(key)
        if (port, proto) not in published:
            out.append({"PrivatePort": port, "Type": proto})
    return sorted(out, key=lambda p: (p["PrivatePort"], p["Type"], p.get("PublicPort", 0)))


def port_lines(mappings: Iterable[PortMapping], private: str | None = None) -> list[str]:
    """`docker port` output: "80/tcp -> 0.0.0.0:8080"."""
    want = None
    if private:
        want = parse_port_key(private)
    out = []
    for m in sorted(mappings, key=lambda m: (m.container_port, m.proto, m.host_ip, m.host_port)):
        if want and (m.container_port, m.proto) != want:
            continue
        address = f"{m.host_ip or '0.0.0.0'}:{m.host_port}"
        out.append(address if want else f"{m.container_port}/{m.proto} -> {address}")
    return out
