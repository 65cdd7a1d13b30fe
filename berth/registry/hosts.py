"""Where a registry lives and how to talk to it securely.

Docker's rules: `docker.io` is served by registry-1.docker.io; every other
registry is its `host[:port]`.  HTTPS is verified against the system CAs
plus the registry's directory under certs.d (`HOST:PORT/*.crt` are CAs,
`*.cert`/`*.key` pairs client certificates).  A registry marked insecure,
by name or by a CIDR its addresses fall in (127.0.0.0/8 unless configured
otherwise), is tried over HTTPS without verification and then plain HTTP.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from berth.errors import InvalidArgument
from berth.image.reference import DEFAULT_DOMAIN, LEGACY_DOMAIN

DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_INDEX = "index.docker.io"
# The key Docker files Docker Hub credentials under in config.json.
INDEX_SERVER = "https://index.docker.io/v1/"
DEFAULT_INSECURE = ("127.0.0.0/8",)
DEFAULT_CERTS_DIRS = (Path("/etc/berth/certs.d"), Path("/etc/docker/certs.d"))

Resolver = Callable[[str], list[str]]


@dataclass(frozen=True)
class RegistrySettings:
    """Engine-wide registry configuration (Docker's daemon.json equivalents)."""
    insecure_registries: tuple[str, ...] = DEFAULT_INSECURE   # host[:port] names or CIDRs
    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS
    config_dir: Path = field(default_factory=lambda: Path.home() / ".docker")   # holds config.json
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    # Blobs up to this size go up in one PUT; larger ones in PATCH chunks of it.
    upload_chunk_size: int = 64 << 20


@dataclass(frozen=True)
class Endpoint:
    url: str                          # scheme://host[:port], no trailing slash
    tls: ssl.SSLContext | None        # None for plain HTTP

    @property
    def secure(self) -> bool:
        return self.tls is not None and self.tls.verify_mode != ssl.CERT_NONE


def canonical_domain(domain: str) -> str:
    return DEFAULT_DOMAIN if domain in (LEGACY_DOMAIN, DOCKER_HUB_API) else domain


def api_host(domain: str) -> str:
    return DOCKER_HUB_API if canonical_domain(domain) == DEFAULT_DOMAIN else domain


def _split_host(hostport: str) -> str:
    if hostport.startswith("["):
        return hostport[1:hostport.index("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def _resolve(host: str) -> list[str]:
    try:
        return [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except (OSError, UnicodeError):
        return []


def is_secure(domain: str, settings: RegistrySettings, resolve: Resolver = _resolve) -> bool:
    """Docker's isSecureIndex: insecure when named, or when any address of the
    host lies in an insecure CIDR.  Docker Hub is always secure."""
    domain = canonical_domain(domain)
    if domain == DEFAULT_DOMAIN:
        return True
    networks = []
    for entry in settings.insecure_registries:
        if "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
        if entry.removeprefix("http://").removeprefix("https://").rstrip("/") == domain:
            return False
    if not networks:
        return True
    host = _split_host(domain)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = []
        for a in resolve(host):
            try:
                addresses.append(ipaddress.ip_address(a.split("%", 1)[0]))
            except ValueError:
                pass
    return not any(a in n for a in addresses for n in networks if a.version == n.version)


def host_certs_dirs(domain: str, settings: RegistrySettings) -> list[Path]:
    return [d / domain for d in settings.certs_dirs if (d / domain).is_dir()]


def tls_context(domain: str, settings: RegistrySettings) -> ssl.SSLContext:
    """System CAs plus the registry's certs.d CAs and client certificate."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for directory in host_certs_dirs(domain, settings):
        files = sorted(p for p in directory.iterdir() if p.is_file())
        names = {p.name for p in files}
        for path in files:
            if path.suffix == ".crt":
                try:
                    ctx.load_verify_locations(cafile=str(path))
                except (ssl.SSLError, OSError) as e:
                    raise InvalidArgument(f"unable to load CA certificate {path}: {e}") from None
            elif path.suffix == ".cert":
                key = path.with_suffix(".key")
                if key.name not in names:
                    raise InvalidArgument(f"missing key {key.name} for client certificate {path.name}. "
                                          "CA certificates must use the extension .crt")
                try:
                    ctx.load_cert_chain(str(path), str(key))
                except (ssl.SSLError, OSError) as e:
                    raise InvalidArgument(f"unable to load client certificate {path}: {e}") from None
            elif path.suffix == ".key" and path.with_suffix(".cert").name not in names:
                raise InvalidArgument(f"missing client certificate {path.with_suffix('.cert').name} "
                                      f"for key {path.name}")
    return ctx


def _unverified_context() -> ssl.SSLContext:
    # Nothing is verified, so no CA store needs loading (that costs ~50 ms).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@functools.cache
def system_context() -> ssl.SSLContext:
    """The system CAs' context, shared (read-only) by connections that need no more."""
    return ssl.create_default_context()


def endpoints(domain: str, settings: RegistrySettings, resolve: Resolver = _resolve) -> list[Endpoint]:
    """The endpoints to try in order, as Docker's lookupV2Endpoints lists them."""
    host = api_host(domain)
    if is_secure(domain, settings, resolve):
        return [Endpoint(f"https://{host}", tls_context(domain, settings))]
    return [Endpoint(f"https://{host}", _unverified_context()), Endpoint(f"http://{host}", None)]
