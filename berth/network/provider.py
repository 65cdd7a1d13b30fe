"""Bridge networks as the container manager's sandbox provider.

A container on a bridge network gets a network namespace of its own,
bind-mounted under the root's run directory so that it outlives the
container's processes across restart-policy restarts, with one veth pair per
network it belongs to.  Everything the kernel holds for a root (bridges,
veths, nft tables, namespaces, resolvers) is derived from the database
under one host-wide lock, and `sync` brings the kernel back to what the
database says: releasing a container is "forget it, then sync", which is
idempotent and needs no memory of earlier calls.

none, host and container:ID go to the container layer's LocalSandboxes.
"""

from __future__ import annotations

import ipaddress
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from berth.container.cleanup import is_mounted
from berth.container.paths import RUN_BASE, ContainerPaths
from berth.container.record import Container
from berth.container.sandbox import LocalSandboxes, Placement
from berth.container.states import SUPERVISED
from berth.container.store import ContainerStore
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.network import ipam, netlink, ports, resolver
from berth.network.links import environment, hosts_names, parse_link
from berth.network.names import (bridge_name, mac_for, netns_dir, netns_path, owns_bridge, resolver_dir,
                                  table_name, veth_name, veth_prefix)
from berth.network.store import DEFAULT_NETWORK, Attachment, Link, Network, NetworkStore
from berth.store.digest import sha256
from berth.store.locks import file_lock
from berth.store.state import State
from berth.lazy import lazy_import

# nftables rules change only when networks or published ports do.
rules = lazy_import("berth.network.rules")

RELEASE_HOOK = "berth.network.provider:release_container"
LOCAL_MODES = ("host", "none")
# Docker's fallback when the host has only local nameservers a container cannot reach.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
# A container that holds endpoints but never got a supervisor: its start
# crashed.  Given this long (the manager's start timeout) before reclaiming.
START_GRACE_SECONDS = 120

_held = threading.local()


@contextmanager
def network_lock():
    """The host-wide network lock: subnets, host ports and rules span roots.

    Reentrant within a thread, because releasing may run inside a prepare
    (a lookup that reconciles a dead container calls its release hook).
    """
    if getattr(_held, "depth", 0):
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    RUN_BASE.mkdir(parents=True, exist_ok=True)
    with file_lock(RUN_BASE / "network.lock"):
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0


def network_mode(c: Container) -> str:
    mode = c.host_config.get("NetworkMode") or "default"
    return DEFAULT_NETWORK if mode == "default" else mode


def is_local_mode(mode: str) -> bool:
    return mode in LOCAL_MODES or mode.startswith("container:")


def release_container(root: Path, container_id: str) -> None:
    """The release hook supervisors and `rm` call by name."""
    BridgeSandboxes(State(root)).release_id(container_id)


class BridgeSandboxes:
    def __init__(self, state: State, lookup=None):
        self.state = state
        self.root = state.root
        self.store = NetworkStore(state.db)
        self.containers = ContainerStore(state.db)
        # ref -> Container, reconciled (the manager's get) when the engine wires it.
        self.lookup = lookup or self.containers.resolve
        self.local = LocalSandboxes(self.lookup)

    # -- the SandboxProvider protocol ------------------------------------------------

    def prepare(self, c: Container) -> Placement:
        placement = self._placement(c)
        if any(extra.endswith(":host-gateway") for extra in c.host_config.get("ExtraHosts") or []):
            placement = replace(placement, host_gateway=self.host_gateway())
        return placement

    def host_gateway(self) -> str:
        """The host's address on the default bridge, as Docker's host-gateway
        is docker0's.  Chosen (not brought up) if no container used it yet."""
        with network_lock():
            network = self.store.find(DEFAULT_NETWORK)
            if network is None:
                raise NotFound("host-gateway: the default bridge network does not exist")
            return self._ensure_subnet(network, self.bridge_of(network)).gateway

    def _placement(self, c: Container) -> Placement:
        mode = network_mode(c)
        if mode.startswith("container:"):
            other = self.lookup(mode.split(":", 1)[1])
            path = netns_path(self.root, other.id)
            if other.status in SUPERVISED and is_mounted(path):
                # Its namespace file survives the other container's restarts; and
                # as in Docker, its name and resolver come along.
                primary = self.store.find(network_mode(other))
                own = [a for a in self.store.attachments(container_id=other.id, active=True)
                       if primary is not None and a.network_id == primary.id]
                hostname = other.config.get("Hostname") or other.short_id
                try:
                    resolv = ContainerPaths(self.root, other.id).resolv_conf.read_text()
                except OSError:
                    resolv = None
                return Placement(str(path), hosts=[(own[0].ip, hostname)] if own else [], resolv_conf=resolv)
        if is_local_mode(mode):
            return self.local.prepare(c)
        with network_lock():
            self._release(c.id)
            try:
                return self._prepare(c, mode)
            except BaseException:
                self._release(c.id)
                raise

    def release(self, c: Container) -> None:
        self.release_id(c.id)

    def release_id(self, container_id: str) -> None:
        with network_lock():
            self._release(container_id)

    def settings(self, c: Container) -> dict:
        mode = network_mode(c)
        out = {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
               "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
               "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
               "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
               "MacAddress": "", "Networks": {}}
        if is_local_mode(mode):
            if mode in LOCAL_MODES:
                n = self.store.find(mode)
                if n is not None:
                    out["Networks"][n.name] = _endpoint(n, None, [])
            return out
        members = self._memberships(c, mode)
        links = [f"/{self._name(l.target_id)}:/{c.name}/{l.alias}" for l in self.store.links(c.id)]
        active = False
        for n, a in members:
            primary = n.name == mode or n.id == mode
            out["Networks"][n.name] = _endpoint(n, a, links if primary else [])
            if primary and c.host_config.get("NetworkIPv4Address"):
                out["Networks"][n.name]["IPAMConfig"] = {"IPv4Address": c.host_config["NetworkIPv4Address"]}
            active = active or (a is not None and a.active)
            if n.is_default and a is not None and a.active:
                ep = out["Networks"][n.name]
                out.update(EndpointID=ep["EndpointID"], Gateway=ep["Gateway"], IPAddress=ep["IPAddress"],
                           IPPrefixLen=ep["IPPrefixLen"], MacAddress=ep["MacAddress"])
        if active:
            path = netns_path(self.root, c.id)
            out["SandboxKey"] = str(path)
            out["SandboxID"] = sha256(str(path).encode()).hexdigest()
            out["Ports"] = ports.settings_ports(c.config.get("ExposedPorts"), self.store.ports(c.id))
        return out

    def ports(self, c: Container) -> list[dict]:
        if c.status not in SUPERVISED or is_local_mode(network_mode(c)):
            return []
        return ports.summary_ports(c.config.get("ExposedPorts"), self.store.ports(c.id))

    # -- connect, disconnect (network commands on running containers) ----------------------

    def connect(self, c: Container, network: Network, aliases: list[str]) -> None:
        mode = network_mode(c)
        if is_local_mode(mode) or network.driver in ("host", "null"):
            if mode == "host" or network.driver == "host":
                raise Conflict("container cannot be disconnected from host network or connected to host network")
            raise Conflict("container cannot be connected to multiple networks with one of the networks "
                           "in private (none) mode")
        if aliases and network.is_default:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        with network_lock():
            existing = {a.network_id for a in self.store.attachments(container_id=c.id)}
            if network.id in existing:
                raise Conflict(f"endpoint with name {c.name} already exists in network {network.name}")
            self.store.attach(network.id, c.id, aliases)
            netns = netns_path(self.root, c.id)
            live = self.store.attachments(container_id=c.id, active=True)
            if c.status in SUPERVISED and live and is_mounted(netns):
                try:
                    self._activate(c, network, netns, f"eth{self._next_ifindex(netns)}", primary=False)
                    self.sync()
                except BaseException:
                    self._deactivate(network.id, c.id)
                    self.store.detach(network.id, c.id)
                    self.sync()
                    raise

    def disconnect(self, c: Container, network: Network) -> None:
        with network_lock():
            found = [a for a in self.store.attachments(container_id=c.id) if a.network_id == network.id]
            if not found and not (network.name == network_mode(c) and c.status not in SUPERVISED):
                raise Conflict(f"container {c.id} is not connected to network {network.name}")
            self._deactivate(network.id, c.id)
            self.store.detach(network.id, c.id)
            self.sync()

    # -- preparing a container -----------------------------------------------------------------

    def _prepare(self, c: Container, mode: str) -> Placement:
        network = self.store.find(mode)
        if network is None:
            raise NotFound(f"network {mode} not found")
        if network.driver != "bridge":
            raise InvalidArgument(f"network {network.name} cannot be joined this way")
        aliases = list(c.host_config.get("NetworkAliases") or [])
        if aliases and network.is_default:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        if c.host_config.get("NetworkIPv4Address"):
            if network.is_default:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if network.subnet_auto:
                raise InvalidArgument("user specified IP address is supported only when connecting to networks "
                                      "with user configured subnets")
        self.store.attach(network.id, c.id, aliases)
        others = []
        for a in self.store.attachments(container_id=c.id):
            if a.network_id != network.id:
                try:
                    others.append(self.store.network(a.network_id))
                except NotFound:
                    self.store.detach(a.network_id, c.id)
        netns = netns_path(self.root, c.id)
        netlink.create_netns(netns)
        own = self._activate(c, network, netns, "eth0", primary=True)
        for i, other in enumerate(others, start=1):
            self._activate(c, other, netns, f"eth{i}", primary=False)
        env, link_hosts = self._link(c, network)
        if not network.internal:
            self._publish(c)
        self.sync()

        hostname = c.config.get("Hostname") or c.short_id
        domain = c.config.get("Domainname") or ""
        names = f"{hostname}.{domain} {hostname}" if domain else hostname
        network = self.store.network(network.id)
        return Placement(netns=str(netns), hosts=[(own.ip, names), *link_hosts],
                         resolv_conf=self._resolv_conf(c, network), env=env, release_hook=RELEASE_HOOK)

    def _activate(self, c: Container, network: Network, netns: Path, ifname: str, primary: bool) -> Attachment:
        network = self._bring_up(network)
        subnet = ipaddress.ip_network(network.subnet)
        used = self.store.used_addresses(network.id)
        wanted = c.host_config.get("NetworkIPv4Address") if primary else None
        ip = ipam.requested_address(subnet, network.gateway, used, wanted) if wanted \
            else ipam.next_address(subnet, network.gateway, used)
        mac = (c.config.get("MacAddress") if primary else None) or mac_for(ip)
        veth = veth_name(self.root)
        # Recorded before the kernel is touched: a crash leaves something to release.
        a = self.store.activate(network.id, c.id, ip, mac, veth)
        gateway = network.gateway if primary and not network.internal else None
        netlink.plug(self.bridge_of(network), netns, netlink.Interface(
            veth=veth, ifname=ifname, address=ip, prefixlen=subnet.prefixlen, mac=a.mac, gateway=gateway))
        return a

    def _bring_up(self, network: Network) -> Network:
        """The network's bridge, created on first use with a subnet free on this host."""
        bridge = self.bridge_of(network)
        if not (netlink.exists(bridge) and network.subnet):
            network = self._ensure_subnet(network, bridge)
        prefixlen = ipaddress.ip_network(network.subnet).prefixlen
        netlink.ensure_bridge(bridge, network.gateway, prefixlen)
        if not network.is_default:
            resolver.ensure_resolver(self.root, network.id, network.gateway, bridge)
        return network

    def _ensure_subnet(self, network: Network, bridge: str) -> Network:
        """The network with a subnet free on this host: an unused network's
        subnet may have been taken meanwhile (by another root, dockerd, a
        VPN); one berth chose moves elsewhere, one the user chose is checked."""
        taken = ipam.host_routes(exclude_devices=[bridge])
        taken += [ipaddress.ip_network(n.subnet) for n in self.store.networks()
                  if n.subnet and n.id != network.id]
        if network.subnet and not network.subnet_auto:
            ipam.check_free(ipaddress.ip_network(network.subnet), taken)
        elif not network.subnet or ipam.overlapping(ipaddress.ip_network(network.subnet), taken):
            subnet = ipam.choose_subnet(taken)
            self.store.set_subnet(network.id, str(subnet), ipam.gateway_for(subnet))
            network = self.store.network(network.id)
        return network

    def _link(self, c: Container, network: Network) -> tuple[list[str], list[tuple[str, str]]]:
        """Resolve --link: the link rows, and on the default bridge its variables and hosts lines."""
        links, env, hosts = [], [], []
        for text in c.host_config.get("Links") or []:
            name, alias = parse_link(text)
            target = self.containers.find(name)
            if target is None:
                raise NotFound(f"could not get container for {name}")
            if target.status not in SUPERVISED:
                raise Conflict(f"Cannot link to a non running container: /{target.name} AS /{c.name}/{alias}")
            reach = [a for a in self.store.attachments(container_id=target.id, active=True)
                     if a.network_id == network.id]
            if not reach:
                if network.is_default:
                    raise InvalidArgument(f"Cannot link to /{target.name}, as it does not belong to the "
                                          "default network")
                raise InvalidArgument(f"container {target.name} is not connected to network {network.name}")
            links.append(Link(c.id, alias, target.id, network.id))
            if network.is_default:  # legacy links; on user networks a link is a DNS alias only
                ip = reach[0].ip
                env += environment(alias, c.name, ip, target.config.get("ExposedPorts"),
                                   target.config.get("Env") or [])
                hosts.append((ip, hosts_names(alias, target.name, target.config.get("Hostname") or "")))
        self.store.set_links(c.id, links)
        return env, hosts

    def _publish(self, c: Container) -> None:
        wanted = ports.requests(c.config.get("ExposedPorts"), c.host_config.get("PortBindings"),
                                bool(c.host_config.get("PublishAllPorts")))
        if not wanted:
            return
        taken = [(m.proto, m.host_ip, m.host_port) for m in self.store.ports() if m.container_id != c.id]
        taken += rules.published_elsewhere(table_name(self.root))
        self.store.set_ports(c.id, ports.allocate(c.id, wanted, taken))

    def _resolv_conf(self, c: Container, network: Network) -> str:
        """Docker's resolv.conf: the host's, without local nameservers; on user
        networks the network's resolver, which forwards to those."""
        try:
            host = Path("/etc/resolv.conf").read_text().splitlines()
        except OSError:
            host = []
        others = [l for l in host if l.split()[:1] in (["search"], ["domain"], ["options"])]
        if not network.is_default:
            return "".join(l + "\n" for l in [f"nameserver {network.gateway}", *others]) + "options ndots:0\n"
        servers = list(c.host_config.get("Dns") or [])
        if not servers:
            servers = [l.split()[1] for l in host if l.startswith("nameserver") and len(l.split()) > 1]
            servers = [s for s in servers if not _is_local(s)] or list(FALLBACK_NAMESERVERS)
        return "".join(f"nameserver {s}\n" for s in servers) + "".join(l + "\n" for l in others)

    # -- releasing, and bringing the kernel in line with the database ------------------------------

    def _deactivate(self, network_id: str, container_id: str) -> None:
        for a in self.store.attachments(container_id=container_id, network_id=network_id, active=True):
            if a.veth and netlink.exists(a.veth):
                netlink.delete_link(a.veth)
        self.store.deactivate(network_id, container_id)

    def _release(self, container_id: str) -> None:
        for a in self.store.attachments(container_id=container_id, active=True):
            if a.veth and netlink.exists(a.veth):
                netlink.delete_link(a.veth)
        netlink.remove_netns(netns_path(self.root, container_id))
        self.store.release(container_id)
        self.sync()

    def sync(self) -> None:
        """Rules, bridges and resolvers exactly as the active endpoints need; orphans removed."""
        active = self.store.attachments(active=True)
        networks = {n.id: n for n in self.store.networks()}
        by_network: dict[str, list[Attachment]] = {}
        for a in active:
            if a.network_id in networks:
                by_network.setdefault(a.network_id, []).append(a)
        plan = rules.RootRules(table_name(self.root), bridged_frames_in_ip_hooks=rules.bridged_frames_in_ip_hooks())
        for network_id, members in by_network.items():
            n = networks[network_id]
            plan.bridges.append(rules.BridgeRules(
                bridge=self.bridge_of(n), subnet=n.subnet, internal=n.internal, isolated=n.is_default,
                ports=tuple(sorted(a.veth for a in members if a.veth))))
        ip_of = {(a.container_id, a.network_id): a.ip for a in active}
        for link in self.store.links():
            n = networks.get(link.network_id)
            source, target = ip_of.get((link.container_id, link.network_id)), ip_of.get((link.target_id, link.network_id))
            if n is None or not n.is_default or not source or not target:
                continue
            t = self.containers.find(link.target_id)
            for key in (t.config.get("ExposedPorts") or {}) if t else {}:
                port, proto = ports.parse_port_key(key)
                plan.links.append(rules.LinkRule(self.bridge_of(n), source, target, proto, port))
        for m in self.store.ports():
            c = self.containers.find(m.container_id)
            n = self.store.find(network_mode(c)) if c else None
            ip = ip_of.get((m.container_id, n.id)) if n else None
            if ip:
                plan.dnats.append(rules.DnatRule(m.proto, m.host_ip, m.host_port, ip, m.container_port,
                                                 self.bridge_of(n)))
        if not plan.empty or rules.table_exists(plan.table):
            rules.apply(plan)
        in_use = {self.bridge_of(networks[nid]) for nid in by_network}
        veths = {a.veth for a in active}
        for ifname in netlink.interfaces():
            if owns_bridge(self.root, ifname) and ifname not in in_use:
                netlink.delete_link(ifname)
            elif ifname.startswith(veth_prefix(self.root)) and ifname not in veths:
                netlink.delete_link(ifname)
        for prefix in resolver.resolvers(self.root):
            if not any(nid.startswith(prefix) and not networks[nid].is_default for nid in by_network):
                resolver.stop_resolver(self.root, prefix)
        live = {a.container_id[:12] for a in active}
        directory = netns_dir(self.root)
        if directory.exists():
            for f in directory.iterdir():
                if f.name not in live:
                    netlink.remove_netns(f)
        if not active:
            for d in (directory, resolver_dir(self.root)):
                shutil.rmtree(d, ignore_errors=True)  # only files of stopped resolvers remain

    def recover(self, lookup=None) -> None:
        """At an engine start: release what crashed starts and dead containers left behind.

        `lookup` reconciles a container (the manager's get), which runs the
        release hook of one whose supervisor died.
        """
        lookup = lookup or self.lookup
        self.store.sweep_removed_containers()
        stale = []
        now = time.time()
        for container_id, activated in self.store.active_containers():
            c = self.containers.find(container_id)
            if c is None:
                stale.append(container_id)
            elif c.status in SUPERVISED:
                lookup(container_id)
            elif activated is None or now - activated > START_GRACE_SECONDS:
                stale.append(container_id)
        if stale or self._orphans():
            with network_lock():
                for container_id in stale:
                    self._release(container_id)
                self.sync()
        self.store.sweep_removed_containers()

    def _orphans(self) -> bool:
        """Kernel objects of this root that no active endpoint explains (cheap: no netlink, no nft)."""
        active = self.store.attachments(active=True)
        veths = {a.veth for a in active}
        for ifname in netlink.interfaces():
            if ifname.startswith(veth_prefix(self.root)) and ifname not in veths:
                return True
            if owns_bridge(self.root, ifname) and not active:
                return True
        directory = netns_dir(self.root)
        live = {a.container_id[:12] for a in active}
        if directory.exists() and any(f.name not in live for f in directory.iterdir()):
            return True
        return bool(resolver.resolvers(self.root)) and not active

    # -- helpers -------------------------------------------------------------------------------

    def bridge_of(self, network: Network) -> str:
        return bridge_name(self.root, network.id, network.is_default)

    def _name(self, container_id: str) -> str:
        c = self.containers.find(container_id)
        return c.name if c else container_id[:12]

    def _memberships(self, c: Container, mode: str) -> list[tuple[Network, Attachment | None]]:
        out = []
        seen = set()
        for a in self.store.attachments(container_id=c.id):
            try:
                n = self.store.network(a.network_id)
            except NotFound:
                continue
            out.append((n, a))
            seen.add(n.id)
        primary = self.store.find(mode)
        if primary is not None and primary.id not in seen:
            out.insert(0, (primary, None))
        return out

    def _next_ifindex(self, netns: Path) -> int:
        names = netlink.netns_interfaces(netns)
        n = 0
        while f"eth{n}" in names:
            n += 1
        return n


def _is_local(server: str) -> bool:
    try:
        return ipaddress.ip_address(server).is_loopback
    except ValueError:
        return False


def _endpoint(n: Network, a: Attachment | None, links: list[str]) -> dict:
    """One entry of NetworkSettings.Networks (Docker's EndpointSettings)."""
    active = a is not None and a.active
    prefix = ipaddress.ip_network(n.subnet).prefixlen if n.subnet and active else 0
    aliases = list(a.aliases) if a else []
    return {"IPAMConfig": None, "Links": links or None, "Aliases": aliases or None, "MacAddress": a.mac if active else "",
            "NetworkID": n.id, "EndpointID": (a.endpoint_id or "") if active else "",
            "Gateway": (n.gateway or "") if active else "", "IPAddress": a.ip if active else "",
            "IPPrefixLen": prefix, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DriverOpts": None, "DNSNames": None}
