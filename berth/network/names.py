"""Names of what the network layer creates in the kernel, per state root.

Many state roots share one host (tests run side by side), so every bridge,
veth, nft table and netns file carries a short tag of its root: a root can
find and remove exactly what is its own, and `berth*` matches every berth
bridge of every root (the cross-network isolation rule relies on that).
Interface names are limited to 15 bytes (IFNAMSIZ - 1).
"""

from __future__ import annotations

import os
from pathlib import Path

from berth.container.paths import run_dir
from berth.store.digest import sha256
from berth.store.state import DEFAULT_ROOT

BRIDGE_PREFIX = "berth"      # every berth bridge, of every root
VETH_PREFIX = "vb"           # the host side of a container's veth pair
TABLE_PREFIX = "berth_"      # nft tables, one per root and family
DEFAULT_BRIDGE = "berth0"    # the default root's default bridge, as docker0 is Docker's


def root_tag(root: Path) -> str:
    """Six hex digits naming one state root in interface and table names."""
    return sha256(str(Path(root).absolute()).encode()).hexdigest()[:6]


def bridge_name(root: Path, network_id: str, default: bool) -> str:
    if default and Path(root).absolute() == DEFAULT_ROOT:
        return DEFAULT_BRIDGE
    return f"{BRIDGE_PREFIX}{root_tag(root)}{network_id[:4]}"


def owns_bridge(root: Path, ifname: str) -> bool:
    if Path(root).absolute() == DEFAULT_ROOT and ifname == DEFAULT_BRIDGE:
        return True
    return ifname.startswith(BRIDGE_PREFIX + root_tag(root)) and len(ifname) == 15


def veth_name(root: Path) -> str:
    """A fresh host-side veth name: vb + root tag + 7 random hex digits."""
    return f"{VETH_PREFIX}{root_tag(root)}{os.urandom(4).hex()[:7]}"


def veth_prefix(root: Path) -> str:
    return VETH_PREFIX + root_tag(root)


def table_name(root: Path) -> str:
    return TABLE_PREFIX + root_tag(root)


def netns_dir(root: Path) -> Path:
    return run_dir(root) / "netns"


def netns_path(root: Path, container_id: str) -> Path:
    """A container's network namespace, bind-mounted so it outlives its processes."""
    return netns_dir(root) / container_id[:12]


def resolver_dir(root: Path) -> Path:
    return run_dir(root) / "dns"


def mac_for(address: str) -> str:
    """Docker's MAC address for an IPv4 address: 02:42 and the four address bytes."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))
