"""Networks, attachments, links and published ports in the metadata database.

The database is the truth the kernel state is rebuilt from: nft rules are
rendered from it and bridges exist while it says a network is in use, so a
crash at any point is repaired by the next sync.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.store.db import Database

PREDEFINED = ("bridge", "host", "none")
DEFAULT_NETWORK = "bridge"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Network:
    id: str
    name: str
    driver: str
    created: float
    subnet: str | None = None
    gateway: str | None = None
    subnet_auto: bool = True
    internal: bool = False
    attachable: bool = False
    labels: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_NETWORK

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass
class Attachment:
    network_id: str
    container_id: str
    aliases: list[str] = field(default_factory=list)
    position: int = 0
    endpoint_id: str | None = None
    ip: str | None = None
    mac: str | None = None
    veth: str | None = None
    activated: float | None = None

    @property
    def active(self) -> bool:
        return self.ip is not None


@dataclass(frozen=True)
class Link:
    container_id: str
    alias: str
    target_id: str
    network_id: str


@dataclass(frozen=True)
class PortMapping:
    container_id: str
    proto: str
    container_port: int
    host_ip: str
    host_port: int


def validate_network_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(f"invalid network name \"{name}\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


class NetworkStore:
    def __init__(self, db: Database):
        self.db = db

    # -- networks ------------------------------------------------------------------

    @staticmethod
    def _network(r) -> Network:
        return Network(id=r["id"], name=r["name"], driver=r["driver"], created=r["created"],
                       subnet=r["subnet"], gateway=r["gateway"], subnet_auto=bool(r["subnet_auto"]),
                       internal=bool(r["internal"]), attachable=bool(r["attachable"]),
                       labels=json.loads(r["labels"]), options=json.loads(r["options"]))

    def networks(self) -> list[Network]:
        return [self._network(r) for r in self.db.query("SELECT * FROM networks ORDER BY created, name")]

    def network(self, network_id: str) -> Network:
        r = self.db.query_one("SELECT * FROM networks WHERE id=?", (network_id,))
        if r is None:
            raise NotFound(f"network {network_id} not found")
        return self._network(r)

    def find(self, ref: str) -> Network | None:
        """Docker's lookup: full ID, exact name, then unique ID prefix."""
        r = self.db.query_one("SELECT * FROM networks WHERE id=? OR name=? ORDER BY name=? DESC",
                              (ref, ref, ref))
        if r is not None:
            return self._network(r)
        if re.fullmatch(r"[a-f0-9]{1,64}", ref):
            rows = self.db.query("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise Conflict(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
            if rows:
                return self._network(rows[0])
        return None

    def resolve(self, ref: str) -> Network:
        n = self.find(ref)
        if n is None:
            raise NotFound(f"network {ref} not found")
        return n

    def add(self, n: Network) -> None:
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM networks WHERE name=?", (n.name,)).fetchone():
                raise Conflict(f"network with name {n.name} already exists")
            conn.execute("INSERT INTO networks (id, name, driver, created, subnet, gateway, subnet_auto, internal,"
                         " attachable, labels, options) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                         (n.id, n.name, n.driver, n.created, n.subnet, n.gateway, int(n.subnet_auto),
                          int(n.internal), int(n.attachable), json.dumps(n.labels), json.dumps(n.options)))

    def set_subnet(self, network_id: str, subnet: str, gateway: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE networks SET subnet=?, gateway=? WHERE id=?", (subnet, gateway, network_id))

    def delete(self, network_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM network_attachments WHERE network_id=?", (network_id,))
            conn.execute("DELETE FROM networks WHERE id=?", (network_id,))

    # -- attachments ----------------------------------------------------------------

    @staticmethod
    def _attachment(r) -> Attachment:
        return Attachment(network_id=r["network_id"], container_id=r["container_id"],
                          aliases=json.loads(r["aliases"]), position=r["position"],
                          endpoint_id=r["endpoint_id"], ip=r["ip"], mac=r["mac"], veth=r["veth"],
                          activated=r["activated"])

    def attachments(self, *, container_id: str | None = None, network_id: str | None = None,
                    active: bool | None = None) -> list[Attachment]:
        sql, params = "SELECT * FROM network_attachments WHERE 1=1", []
        if container_id is not None:
            sql += " AND container_id=?"
            params.append(container_id)
        if network_id is not None:
            sql += " AND network_id=?"
            params.append(network_id)
        if active is not None:
            sql += " AND ip IS NOT NULL" if active else " AND ip IS NULL"
        return [self._attachment(r) for r in self.db.query(sql + " ORDER BY position, rowid", params)]

    def attach(self, network_id: str, container_id: str, aliases: list[str]) -> Attachment:
        """Record membership (idempotent: aliases are updated)."""
        with self.db.transaction() as conn:
            r = conn.execute("SELECT * FROM network_attachments WHERE network_id=? AND container_id=?",
                             (network_id, container_id)).fetchone()
            if r is not None:
                conn.execute("UPDATE network_attachments SET aliases=? WHERE network_id=? AND container_id=?",
                             (json.dumps(aliases), network_id, container_id))
            else:
                position = conn.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM network_attachments"
                                        " WHERE container_id=?", (container_id,)).fetchone()[0]
                conn.execute("INSERT INTO network_attachments (network_id, container_id, aliases, position)"
                             " VALUES (?,?,?,?)", (network_id, container_id, json.dumps(aliases), position))
            return self._attachment(conn.execute(
                "SELECT * FROM network_attachments WHERE network_id=? AND container_id=?",
                (network_id, container_id)).fetchone())

    def detach(self, network_id: str, container_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM network_attachments WHERE network_id=? AND container_id=?",
                         (network_id, container_id))

    def activate(self, network_id: str, container_id: str, ip: str, mac: str, veth: str) -> Attachment:
        with self.db.transaction() as conn:
            conn.execute("UPDATE network_attachments SET endpoint_id=?, ip=?, mac=?, veth=?, activated=?"
                         " WHERE network_id=? AND container_id=?",
                         (os.urandom(32).hex(), ip, mac, veth, time.time(), network_id, container_id))
            return self._attachment(conn.execute(
                "SELECT * FROM network_attachments WHERE network_id=? AND container_id=?",
                (network_id, container_id)).fetchone())

    def deactivate(self, network_id: str, container_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE network_attachments SET endpoint_id=NULL, ip=NULL, mac=NULL, veth=NULL,"
                         " activated=NULL WHERE network_id=? AND container_id=?", (network_id, container_id))

    def used_addresses(self, network_id: str) -> set[str]:
        return {r[0] for r in self.db.query("SELECT ip FROM network_attachments WHERE network_id=?"
                                            " AND ip IS NOT NULL", (network_id,))}

    def active_containers(self) -> list[tuple[str, float]]:
        """(container ID, earliest activation) of every container holding an endpoint."""
        return [(r[0], r[1]) for r in self.db.query(
            "SELECT container_id, MIN(activated) FROM network_attachments WHERE ip IS NOT NULL"
            " GROUP BY container_id")]

    # -- links -----------------------------------------------------------------------

    def set_links(self, container_id: str, links: list[Link]) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM container_links WHERE container_id=?", (container_id,))
            conn.executemany("INSERT INTO container_links (container_id, alias, target_id, network_id)"
                             " VALUES (?,?,?,?)",
                             [(l.container_id, l.alias, l.target_id, l.network_id) for l in links])

    def links(self, container_id: str | None = None) -> list[Link]:
        sql, params = "SELECT * FROM container_links", ()
        if container_id is not None:
            sql, params = sql + " WHERE container_id=?", (container_id,)
        return [Link(r["container_id"], r["alias"], r["target_id"], r["network_id"])
                for r in self.db.query(sql, params)]

    # -- published ports -----------------------------------------------------------------

    def set_ports(self, container_id: str, mappings: list[PortMapping]) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM published_ports WHERE container_id=?", (container_id,))
            try:
                conn.executemany(
                    "INSERT INTO published_ports (container_id, proto, container_port, host_ip, host_port)"
                    " VALUES (?,?,?,?,?)",
                    [(m.container_id, m.proto, m.container_port, m.host_ip, m.host_port) for m in mappings])
            except Exception as e:  # sqlite3.IntegrityError: another container holds the port
                raise Conflict(f"port is already allocated: {e}") from None

    def ports(self, container_id: str | None = None) -> list[PortMapping]:
        sql, params = "SELECT * FROM published_ports", ()
        if container_id is not None:
            sql, params = sql + " WHERE container_id=?", (container_id,)
        return [PortMapping(r["container_id"], r["proto"], r["container_port"], r["host_ip"], r["host_port"])
                for r in self.db.query(sql + " ORDER BY proto, container_port, host_port", params)]

    # -- release ----------------------------------------------------------------------------

    def release(self, container_id: str) -> None:
        """Forget what a container held while it ran; its memberships stay."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE network_attachments SET endpoint_id=NULL, ip=NULL, mac=NULL, veth=NULL,"
                         " activated=NULL WHERE container_id=?", (container_id,))
            conn.execute("DELETE FROM container_links WHERE container_id=?", (container_id,))
            conn.execute("DELETE FROM published_ports WHERE container_id=?", (container_id,))

    _REMOVED = ("container_id NOT IN (SELECT id FROM containers) AND container_id NOT IN"
                " (SELECT container_id FROM network_attachments WHERE ip IS NOT NULL)")
    _HOLDERS = ("network_attachments", "container_links", "published_ports")

    def sweep_removed_containers(self) -> None:
        """Memberships of containers whose rows are gone (rm releases before it deletes)."""
        # Read first: this runs at every engine start and should not take the write lock for nothing.
        if not any(self.db.query_one(f"SELECT 1 FROM {t} WHERE {self._REMOVED} LIMIT 1") for t in self._HOLDERS):
            return
        with self.db.transaction() as conn:
            for table in self._HOLDERS:
                conn.execute(f"DELETE FROM {table} WHERE {self._REMOVED}")
