"""Networks for the CLI and the API: `network create/ls/inspect/rm/connect/
disconnect/prune` and `port`, in the Engine API's shapes."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping, Sequence

from berth.container.manager import ContainerManager
from berth.container.states import SUPERVISED
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.network import ipam
from berth.network.ports import port_lines
from berth.network.provider import BridgeSandboxes, network_lock, network_mode
from berth.network.store import Network, NetworkStore, validate_network_name
from berth.store.state import State
from berth.units import parse_timestamp

LIST_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}
PRUNE_FILTERS = {"label", "label!", "until"}


class NetworkService:
    def __init__(self, state: State, containers: ContainerManager, sandboxes: BridgeSandboxes):
        self.state = state
        self.containers = containers
        self.sandboxes = sandboxes
        self.store = NetworkStore(state.db)

    # -- create, remove ---------------------------------------------------------------------

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None,
               gateway: str | None = None, internal: bool = False, attachable: bool = False,
               labels: Mapping[str, str] | None = None, options: Mapping[str, str] | None = None) -> dict:
        """POST /networks/create: {"Id", "Warning"}."""
        validate_network_name(name)
        driver = driver or "bridge"
        if driver in ("host", "null"):
            raise Conflict(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if gateway and not subnet:
            raise InvalidArgument("gateway can only be specified together with a subnet")
        with network_lock():
            taken = ipam.host_routes()
            taken += [ipaddress.ip_network(n.subnet) for n in self.store.networks() if n.subnet]
            default = self.store.find("bridge")
            if default is not None and not default.subnet:
                # The default bridge has the first pool, as docker0 has; berth
                # chooses it here rather than at the bridge's first use.
                first = ipam.choose_subnet(taken)
                self.store.set_subnet(default.id, str(first), ipam.gateway_for(first))
                taken.append(first)
            if subnet:
                chosen = ipam.parse_subnet(subnet)
                ipam.check_free(chosen, taken)
            else:
                chosen = ipam.choose_subnet(taken)
            network = Network(id=os.urandom(32).hex(), name=name, driver=driver, created=time.time(),
                              subnet=str(chosen), gateway=ipam.gateway_for(chosen, gateway),
                              subnet_auto=not subnet, internal=internal, attachable=attachable,
                              labels=dict(labels or {}), options=dict(options or {}))
            self.store.add(network)
        return {"Id": network.id, "Warning": ""}

    def remove(self, ref: str) -> None:
        n = self.store.resolve(ref)
        if n.predefined:
            raise Conflict(f"{n.name} is a pre-defined network and cannot be removed")
        with network_lock():
            if self.store.attachments(network_id=n.id, active=True):
                raise Conflict(f"error while removing network: network {n.name} id {n.id} has active endpoints")
            self.store.delete(n.id)
            self.sandboxes.sync()

    def prune(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[str]:
        """Remove user-defined networks no container uses; their names."""
        filters = dict(filters or {})
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        used = self._used_networks()
        removed = []
        for n in self.store.networks():
            if n.predefined or n.id in used or not _label_match(n, filters) or not _until_match(n, filters):
                continue
            try:
                self.remove(n.id)
            except Conflict:
                continue
            removed.append(n.name)
        return removed

    # -- reading ------------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict:
        n = self.store.resolve(ref)
        out = self._summary(n)
        members = {}
        for a in self.store.attachments(network_id=n.id, active=True):
            c = self.containers.store.find(a.container_id)
            if c is None:
                continue
            prefix = ipaddress.ip_network(n.subnet).prefixlen if n.subnet else 32
            members[c.id] = {"Name": c.name, "EndpointID": a.endpoint_id, "MacAddress": a.mac,
                             "IPv4Address": f"{a.ip}/{prefix}", "IPv6Address": ""}
        if n.driver in ("host", "null"):
            for c in self.containers.store.list():
                if network_mode(c) == n.name and c.status in SUPERVISED:
                    members[c.id] = {"Name": c.name, "EndpointID": "", "MacAddress": "", "IPv4Address": "",
                                     "IPv6Address": ""}
        out["Containers"] = members
        return out

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
        """GET /networks (Containers is filled by inspect only, as Docker's list)."""
        filters = dict(filters or {})
        for key in filters:
            if key not in LIST_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        used = self._used_networks() if "dangling" in filters else set()
        out = []
        for n in self.store.networks():
            if not _list_match(n, filters, used):
                continue
            out.append(self._summary(n))
        return out

    def _summary(self, n: Network) -> dict:
        config = [{"Subnet": n.subnet, "Gateway": n.gateway}] if n.subnet else []
        options = dict(n.options)
        if n.driver == "bridge":
            options.setdefault("com.docker.network.bridge.name", self.sandboxes.bridge_of(n))
            if n.is_default:
                options.update({"com.docker.network.bridge.default_bridge": "true",
                                "com.docker.network.bridge.enable_icc": "false",
                                "com.docker.network.bridge.enable_ip_masquerade": "true",
                                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0"})
        return {"Name": n.name, "Id": n.id, "Created": _rfc3339(n.created), "Scope": "local",
                "Driver": n.driver, "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": None if n.predefined else {}, "Config": config},
                "Internal": n.internal, "Attachable": n.attachable, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
                "Options": options, "Labels": dict(n.labels)}

    def _used_networks(self) -> set[str]:
        used = {a.network_id for a in self.store.attachments()}
        for c in self.containers.store.list():
            n = self.store.find(network_mode(c))
            if n is not None:
                used.add(n.id)
        return used

    # -- containers ----------------------------------------------------------------------------

    def connect(self, network: str, container: str, *, aliases: Sequence[str] = ()) -> None:
        n = self.store.resolve(network)
        c = self.containers.get(container)
        self.sandboxes.connect(c, n, list(aliases))

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        n = self.store.resolve(network)
        try:
            c = self.containers.get(container)
        except NotFound:
            if not force:
                raise
            return
        self.sandboxes.disconnect(c, n)

    def port(self, container: str, private: str | None = None) -> list[str]:
        """`docker port`: "80/tcp -> 0.0.0.0:8080" lines (just the address for one port)."""
        c = self.containers.get(container)
        if c.status not in SUPERVISED:
            return []
        lines = port_lines(self.store.ports(c.id), private)
        if private and not lines:
            key = private if "/" in private else f"{private}/tcp"
            raise NotFound(f"No public port '{key}' published for {container}")
        return lines


def _list_match(n: Network, filters: Mapping[str, Sequence[str]], used: set[str]) -> bool:
    def any_of(key, pred):
        values = filters.get(key)
        return values is None or any(pred(v) for v in values)

    kind = "builtin" if n.predefined else "custom"
    if not any_of("driver", lambda v: v == n.driver):
        return False
    if not any_of("id", lambda v: n.id.startswith(v)):
        return False
    if not any_of("name", lambda v: v in n.name):
        return False
    if not any_of("scope", lambda v: v == "local"):
        return False
    if not any_of("type", lambda v: v == kind):
        return False
    if "dangling" in filters:
        want = filters["dangling"][0].lower() in ("1", "true")
        if n.predefined or (n.id not in used) != want:
            return False
    return _label_match(n, filters)


def _label_match(n: Network, filters: Mapping[str, Sequence[str]]) -> bool:
    for spec in filters.get("label", []):
        key, sep, value = spec.partition("=")
        if key not in n.labels or (sep and n.labels[key] != value):
            return False
    for spec in filters.get("label!", []):
        key, sep, value = spec.partition("=")
        if key in n.labels and (not sep or n.labels[key] == value):
            return False
    return True


def _until_match(n: Network, filters: Mapping[str, Sequence[str]]) -> bool:
    for value in filters.get("until", []):
        if n.created >= parse_timestamp(value):
            return False
    return True


def _rfc3339(epoch: float) -> str:
    local = time.localtime(epoch)
    offset = time.strftime("%z", local)
    offset = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{int(epoch % 1 * 1e9):09d}" + offset
