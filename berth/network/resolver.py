"""The embedded DNS server of a user-defined network, Docker's 127.0.0.11.

One small process per network in use, listening on the network's gateway
address (port 53, UDP and TCP: a client whose answer came truncated asks
again over TCP); containers on the network have it as their only
nameserver.  It answers for the network's running containers (name, short
ID, hostname, --network-alias, `name.network`) and for the asking
container's links, reading the database at each query so that a container
is resolvable exactly while it holds an endpoint: there is nothing to keep
in sync.  Other names go to the container's --dns servers or the host's.

Started as `python -m berth.network.resolver ROOT NETWORK_ID ADDRESS BRIDGE READY_FD`;
it writes `ready PID` to READY_FD once listening, and exits when SIGTERMed
or when its bridge is gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from berth.errors import Unavailable
from berth.network import dns
from berth.network.names import resolver_dir
from berth.store.state import State

UPSTREAM_TIMEOUT = 3.0
TCP_IDLE_TIMEOUT = 10.0     # a TCP client may send several queries; then it is hung up on
CHECK_INTERVAL = 2.0
READY_TIMEOUT = 10.0
MODULE = "berth.network.resolver"


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        with open(path) as f:
            return [line.split()[1] for line in f if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        return []


class Resolver:
    def __init__(self, root: Path, network_id: str, address: str, bridge: str):
        self.state = State(root)
        self.network_id = network_id
        self.address = address
        self.bridge = bridge
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 53))
        self.sock.settimeout(CHECK_INTERVAL)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((address, 53))
        self.listener.listen(16)

    def records(self, client_ip: str) -> tuple[dict[str, list[str]], list[str]]:
        """(name -> addresses on this network, the client's upstream servers)."""
        rows = self.state.db.query(
            "SELECT a.ip, a.aliases, c.name, c.id, c.config, n.name AS network FROM network_attachments a"
            " JOIN containers c ON c.id = a.container_id JOIN networks n ON n.id = a.network_id"
            " WHERE a.network_id=? AND a.ip IS NOT NULL ORDER BY a.activated", (self.network_id,))
        names: dict[str, list[str]] = {}
        upstream: list[str] = []
        client_id = None
        for r in rows:
            spec = json.loads(r["config"])
            hostname = (spec.get("Config") or {}).get("Hostname") or ""
            for name in [r["name"], r["id"][:12], hostname, *json.loads(r["aliases"])]:
                if name:
                    for key in (name.lower(), f"{name}.{r['network']}".lower()):
                        names.setdefault(key, [])
                        if r["ip"] not in names[key]:
                            names[key].append(r["ip"])
            if r["ip"] == client_ip:
                client_id = r["id"]
                upstream = list((spec.get("HostConfig") or {}).get("Dns") or [])
        if client_id:
            # A link's alias is the linking container's own name for its target.
            for r in self.state.db.query(
                    "SELECT l.alias, t.ip FROM container_links l JOIN network_attachments t"
                    " ON t.container_id = l.target_id AND t.network_id = l.network_id"
                    " WHERE l.container_id=? AND l.network_id=? AND t.ip IS NOT NULL",
                    (client_id, self.network_id)):
                names[r["alias"].lower()] = [r["ip"]]
        return names, upstream or host_nameservers()

    def local_reply(self, packet: bytes, client_ip: str) -> tuple[bytes | None, list[str]]:
        """The answer when the network knows the name (or the query is bad),
        else None; and the client's upstream servers for the rest."""
        try:
            q = dns.parse_query(packet)
        except dns.Malformed:
            return dns.error(packet, dns.FORMERR), []
        names, upstream = self.records(client_ip)
        if q.qclass == dns.CLASS_IN and q.name in names:
            return dns.answer(q, names[q.name] if q.qtype == dns.TYPE_A else []), upstream
        return None, upstream

    def forward(self, packet: bytes, upstream: list[str], *, tcp: bool) -> bytes:
        """The first upstream server's answer, over the client's transport."""
        for server in upstream:
            try:
                return _ask(server, packet, tcp)
            except OSError:
                continue
        return dns.error(packet, dns.SERVFAIL)

    def handle(self, packet: bytes, client: tuple[str, int]) -> None:
        reply, upstream = self.local_reply(packet, client[0])
        if reply is not None:
            self.sock.sendto(reply, client)
            return
        threading.Thread(target=lambda: self.sock.sendto(self.forward(packet, upstream, tcp=False), client),
                         daemon=True).start()

    def serve_tcp_client(self, conn: socket.socket, client_ip: str) -> None:
        """Length-prefixed queries (RFC 1035 4.2.2) until the client is done or idle."""
        with conn:
            conn.settimeout(TCP_IDLE_TIMEOUT)
            try:
                while (header := _read_exactly(conn, 2)) is not None:
                    packet = _read_exactly(conn, int.from_bytes(header, "big"))
                    if packet is None:
                        return
                    reply, upstream = self.local_reply(packet, client_ip)
                    if reply is None:
                        reply = self.forward(packet, upstream, tcp=True)
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
            except OSError:
                return

    def accept_tcp(self) -> None:
        while True:
            try:
                conn, client = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_tcp_client, args=(conn, client[0]), daemon=True).start()

    def serve(self) -> None:
        threading.Thread(target=self.accept_tcp, daemon=True, name="berth-resolver-tcp").start()
        while os.path.exists(f"/sys/class/net/{self.bridge}"):
            try:
                packet, client = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            try:
                self.handle(packet, client)
            except Exception as e:  # noqa: BLE001 - one bad query must not stop the resolver
                print(f"resolver: {e!r}", file=sys.stderr)


def _ask(server: str, packet: bytes, tcp: bool) -> bytes:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as s:
        s.settimeout(UPSTREAM_TIMEOUT)
        if not tcp:
            s.sendto(packet, (server, 53))
            return s.recvfrom(65535)[0]
        s.connect((server, 53))
        s.sendall(len(packet).to_bytes(2, "big") + packet)
        header = _read_exactly(s, 2)
        reply = _read_exactly(s, int.from_bytes(header, "big")) if header is not None else None
        if reply is None:
            raise ConnectionError("the server hung up")
        return reply


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    """n bytes, or None at a clean end of stream before the first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            if data:
                raise ConnectionError("truncated message")
            return None
        data += chunk
    return data


# -- lifecycle, used by the provider ------------------------------------------------


def _pidfile(root: Path, network_id: str) -> Path:
    return resolver_dir(root) / f"{network_id[:12]}.pid"


def _running(root: Path, network_id: str) -> int | None:
    """The resolver's PID, if the pidfile names a live resolver of this network."""
    try:
        pid = int(_pidfile(root, network_id).read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if MODULE.encode() in cmdline and str(root).encode() in cmdline \
            and any(arg.startswith(network_id[:12].encode()) for arg in cmdline):
        return pid
    return None


def ensure_resolver(root: Path, network_id: str, address: str, bridge: str) -> None:
    if _running(root, network_id):
        return
    directory = resolver_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    try:
        with open(directory / f"{network_id[:12]}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", MODULE, str(root), network_id, address, bridge, str(write_fd)],
                pass_fds=(write_fd,), start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log, cwd="/")
        os.close(write_fd)
        write_fd = -1
        proc.wait()
        with os.fdopen(read_fd, "rb") as r:
            read_fd = -1
            line = r.readline().decode().strip()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    if not line.startswith("ready "):
        raise Unavailable(f"the DNS resolver of network {network_id[:12]} failed to start: {line or 'no reason'}; "
                          f"see {directory / (network_id[:12] + '.log')}")


def stop_resolver(root: Path, network_id: str) -> None:
    """Stop the resolver of a network (its ID, or the first 12 digits of it)."""
    pid = _running(root, network_id)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.01)
    _pidfile(root, network_id).unlink(missing_ok=True)


def resolvers(root: Path) -> list[str]:
    """Network ID prefixes (12) that have a pidfile."""
    try:
        return [p.stem for p in resolver_dir(root).glob("*.pid")]
    except OSError:
        return []


def main(argv: list[str]) -> int:
    root, network_id, address, bridge, ready_fd = Path(argv[0]), argv[1], argv[2], argv[3], int(argv[4])
    if os.fork():
        os._exit(0)
    os.set_inheritable(ready_fd, False)
    try:
        resolver = Resolver(root, network_id, address, bridge)
    except OSError as e:
        os.write(ready_fd, f"failed {e}\n".encode())
        return 1
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    _pidfile(root, network_id).write_text(str(os.getpid()))
    os.write(ready_fd, f"ready {os.getpid()}\n".encode())
    os.close(ready_fd)
    resolver.serve()
    _pidfile(root, network_id).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
