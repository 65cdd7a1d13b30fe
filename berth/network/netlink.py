"""Links, addresses, routes and network namespaces, through pyroute2.

pyroute2 takes a tenth of a second or more to import, so it is imported
only where links are made and configured: never by the engine's start-up
checks, nor on the release path (see delete_link).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from berth.container.cleanup import is_mounted
from berth.errors import Unavailable
from berth.runtime.builtin.linux import CLONE_NEWNET, MNT_DETACH, MS_BIND, mount, umount2, unshare

SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class Interface:
    """One container interface to plug: the pair's two names and its address."""
    veth: str            # host side, a port of the bridge
    ifname: str          # inside the container: eth0, eth1, ...
    address: str
    prefixlen: int
    mac: str
    gateway: str | None  # default route through it (the primary network only)


def _iproute(netns: str | None = None):
    from pyroute2 import IPRoute
    return IPRoute(netns=netns) if netns else IPRoute()


def _index(ipr, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def interfaces() -> list[str]:
    try:
        return os.listdir(SYS_NET)
    except OSError:
        return []


def exists(ifname: str) -> bool:
    return (SYS_NET / ifname).exists()


# -- network namespaces ----------------------------------------------------------


def create_netns(path: Path) -> None:
    """A new, empty network namespace, kept alive by a bind mount at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_mounted(path):
        return
    path.touch()
    failure: list[BaseException] = []

    def make() -> None:
        # unshare() in a thread of its own: only that thread changes namespace,
        # and it ends right after, so the process never runs in the new one.
        try:
            unshare(CLONE_NEWNET)
            mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path), None, MS_BIND, None)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(e)

    t = threading.Thread(target=make, name="berth-netns")
    t.start()
    t.join()
    if failure:
        raise Unavailable(f"cannot create a network namespace: {failure[0]}")
    with _iproute(str(path)) as ns:
        ns.link("set", index=_index(ns, "lo"), state="up")


def remove_netns(path: Path) -> None:
    if is_mounted(path):
        try:
            umount2(str(path), 0)
        except OSError:
            umount2(str(path), MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def netns_interfaces(path: Path) -> list[str]:
    with _iproute(str(path)) as ns:
        return [link.get("ifname") for link in ns.get_links()]


# -- bridges and veths --------------------------------------------------------------


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """The bridge up, with exactly the gateway address."""
    with _iproute() as ipr:
        index = _index(ipr, name)
        if index is None:
            ipr.link("add", ifname=name, kind="bridge")
            index = _index(ipr, name)
        have = [(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)]
        for address, plen in have:
            if (address, plen) != (gateway, prefixlen):
                ipr.addr("del", index=index, address=address, prefixlen=plen)
        if (gateway, prefixlen) not in have:
            ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")
    # Published ports are DNATed for 127.0.0.1 too; such packets may leave
    # through the bridge only with route_localnet set on it.
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
    if _read_sysctl("net/ipv4/ip_forward") != "1":
        _sysctl("net/ipv4/ip_forward", "1")


RTM_DELLINK = 17
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2


def delete_link(name: str) -> None:
    """Delete a link; gone already is fine.

    One fixed rtnetlink message, sent without pyroute2: this runs on a
    supervisor's exit path, before it reports the exit, where importing
    pyroute2 would cost more than everything else together.
    """
    try:
        index = int((SYS_NET / name / "ifindex").read_text())
    except (OSError, ValueError):
        return
    ifinfomsg = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0)
    header = struct.pack("=IHHII", 16 + len(ifinfomsg), RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.sendall(header + ifinfomsg)
        reply = s.recv(65536)
    kind = struct.unpack_from("=H", reply, 4)[0]
    error = -struct.unpack_from("=i", reply, 16)[0] if kind == NLMSG_ERROR else 0
    if error and error != errno.ENODEV:
        raise Unavailable(f"cannot delete {name}: {os.strerror(error)}")


def plug(bridge: str, netns: Path, iface: Interface) -> None:
    """A veth pair from the bridge into the namespace, addressed and up."""
    with _iproute() as ipr:
        master = _index(ipr, bridge)
        if master is None:
            raise Unavailable(f"bridge {bridge} does not exist")
        ipr.link("add", ifname=iface.veth, kind="veth", peer={"ifname": iface.ifname, "net_ns_fd": str(netns)})
        index = _index(ipr, iface.veth)
        ipr.link("set", index=index, master=master)
        # Hairpin: a container reaching its own published port comes back
        # through the port it left by (Docker sets it without its proxy too).
        ipr.brport("set", index=index, mode=1)
        ipr.link("set", index=index, state="up")
    with _iproute(str(netns)) as ns:
        index = _index(ns, iface.ifname)
        ns.link("set", index=index, address=iface.mac)
        ns.addr("add", index=index, address=iface.address, prefixlen=iface.prefixlen)
        ns.link("set", index=index, state="up")
        if iface.gateway:
            ns.route("add", dst="default", gateway=iface.gateway)


def _sysctl(key: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)
    except OSError as e:
        raise Unavailable(f"cannot set {key.replace('/', '.')}: {e.strerror}") from None


def _read_sysctl(key: str) -> str:
    try:
        with open(f"/proc/sys/{key}") as f:
            return f.read().strip()
    except OSError:
        return ""
