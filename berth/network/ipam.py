"""Address management: subnets for networks, addresses for containers.

Pure functions over what is in use; the callers gather "in use" from the
host's routes (every bridge of every root, dockerd's, the uplink) and from
the database.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from berth.errors import Conflict, InvalidArgument, Unavailable

IPv4Network = ipaddress.IPv4Network


def default_pools() -> list[IPv4Network]:
    """Docker's default address pools: 172.17-31.0.0/16, then 192.168.x.0/20."""
    pools = [ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)]
    pools += [ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]
    return pools


def parse_subnet(text: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}") from None
    if net.version != 4:
        raise InvalidArgument(f"berth supports IPv4 subnets only: {text}")
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {text} is too small for a network")
    return net


def gateway_for(subnet: IPv4Network, requested: str | None = None) -> str:
    if not requested:
        return str(next(subnet.hosts()))
    try:
        gw = ipaddress.ip_address(requested)
    except ValueError:
        raise InvalidArgument(f"invalid gateway address {requested}") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"gateway {requested} is not in subnet {subnet}")
    return str(gw)


def overlapping(subnet: IPv4Network, taken: Iterable[IPv4Network]) -> IPv4Network | None:
    for t in taken:
        if subnet.overlaps(t):
            return t
    return None


def choose_subnet(taken: Iterable[IPv4Network], pools: Iterable[IPv4Network] | None = None) -> IPv4Network:
    taken = list(taken)
    for candidate in pools or default_pools():
        if overlapping(candidate, taken) is None:
            return candidate
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults "
                      "to assign to the network")


def check_free(subnet: IPv4Network, taken: Iterable[IPv4Network]) -> None:
    clash = overlapping(subnet, taken)
    if clash is not None:
        raise Conflict(f"Pool overlaps with other one on this address space ({subnet} overlaps {clash})")


def requested_address(subnet: IPv4Network, gateway: str, used: Iterable[str], wanted: str) -> str:
    """`wanted` (--ip), if it is a free host address of the subnet."""
    try:
        address = ipaddress.IPv4Address(wanted)
    except ValueError:
        raise InvalidArgument(f"invalid IPv4 address: {wanted}") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"no available IPv4 addresses on this network's address pools: {subnet}: "
                              f"{wanted} is not in the subnet's range")
    if wanted == gateway or wanted in set(used):
        raise Conflict(f"Address already in use: {wanted}")
    return wanted


def next_address(subnet: IPv4Network, gateway: str, used: Iterable[str]) -> str:
    """The lowest free host address of the subnet."""
    used = set(used) | {gateway}
    for host in subnet.hosts():
        if str(host) not in used:
            return str(host)
    raise Unavailable(f"no available IPv4 addresses on this network's address pools: {subnet}")


def host_routes(exclude_devices: Iterable[str] = ()) -> list[IPv4Network]:
    """Destinations of the host's IPv4 routes (main table), except the default route."""
    skip = set(exclude_devices)
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) < 8 or fields[0] in skip:
                    continue
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0:
                    continue
                # /proc/net/route prints addresses in host (little-endian) byte order.
                to_ip = lambda v: ipaddress.IPv4Address(int.from_bytes(v.to_bytes(4, "little"), "big"))
                out.append(ipaddress.ip_network(f"{to_ip(dest)}/{to_ip(mask)}", strict=False))
    except OSError:
        pass
    return out
