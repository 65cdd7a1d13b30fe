"""Legacy links (--link NAME[:ALIAS]): what the linking container sees.

Docker writes the linked container into /etc/hosts and describes it in
environment variables (moby's daemon/links): ALIAS_PORT, ALIAS_PORT_80_TCP,
..._ADDR/_PORT/_PROTO, ranges as _START/_END, ALIAS_NAME and ALIAS_ENV_*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from berth.errors import InvalidArgument
from berth.network.ports import parse_port_key


def parse_link(text: str) -> tuple[str, str]:
    """"name[:alias]" (or Docker's stored "/name:/linker/alias") -> (name, alias)."""
    name, _, alias = text.partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    if not name or not alias:
        raise InvalidArgument(f"invalid value for --link: {text}")
    return name, alias


def _sorted_ports(exposed: Mapping | None) -> list[tuple[int, str]]:
    """Docker's order: TCP before other protocols, then by number."""
    ports = [parse_port_key(k) for k in exposed or {}]
    return sorted(ports, key=lambda p: (p[1] != "tcp", p[1], p[0]))


def environment(alias: str, linker_name: str, target_ip: str, exposed: Mapping | None,
                target_env: Iterable[str]) -> list[str]:
    prefix = alias.upper().replace("-", "_")
    env = []
    ports = _sorted_ports(exposed)
    if ports:
        port, proto = ports[0]
        env.append(f"{prefix}_PORT={proto}://{target_ip}:{port}")
    # Runs of consecutive ports of one protocol are also described as a range.
    i = 0
    while i < len(ports):
        j = i
        while j + 1 < len(ports) and ports[j + 1][1] == ports[i][1] and ports[j + 1][0] == ports[j][0] + 1:
            j += 1
        if j > i:
            first, proto = ports[i]
            last = ports[j][0]
            key = f"{prefix}_PORT_{first}_{proto.upper()}"
            env += [f"{key}_START={proto}://{target_ip}:{first}", f"{key}_ADDR={target_ip}",
                    f"{key}_PORT_START={first}", f"{key}_PORT_END={last}", f"{key}_PROTO={proto}",
                    f"{key}_END={proto}://{target_ip}:{last}"]
        i = j + 1
    for port, proto in ports:
        key = f"{prefix}_PORT_{port}_{proto.upper()}"
        env += [f"{key}={proto}://{target_ip}:{port}", f"{key}_ADDR={target_ip}", f"{key}_PORT={port}",
                f"{key}_PROTO={proto}"]
    env.append(f"{prefix}_NAME=/{linker_name}/{alias}")
    for item in target_env:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{prefix}_ENV_{key}={value}")
    return env


def hosts_names(alias: str, target_name: str, target_hostname: str) -> str:
    """The names of a linked container's /etc/hosts line: alias, its hostname, its name."""
    names = [alias, target_hostname]
    if alias != target_name:
        names.append(target_name)
    return " ".join(dict.fromkeys(n for n in names if n))
