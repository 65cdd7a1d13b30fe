"""Real registries for the registry tests: Debian's docker-registry started
on 127.0.0.1 (plain, htpasswd, TLS, token auth), the certificates and token
server they need, and helpers that put content into them directly."""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import http.server
import io
import json
import random
import secrets
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- certificates ----------------------------------------------------------------

@dataclass
class CertPair:
    cert: Path
    key: Path


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, key, cert) -> CertPair:
    path.parent.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertPair(cert_path, key_path)


class CA:
    """A test certificate authority that issues server and client certificates."""

    def __init__(self, directory: Path, name: str = "berth test CA"):
        self.dir = directory
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pair = _write(directory / "ca", self.key, self.cert)

    def issue(self, name: str, *, server: bool = True, sans=("127.0.0.1", "localhost")):
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False))
        if server:
            import ipaddress
            alt = []
            for s in sans:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(s)))
                except ValueError:
                    alt.append(x509.DNSName(s))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.dir / name, key, cert), key, cert


# -- token server -------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker's token authentication (the registry's `auth: token`), as a tiny
    HTTP server: users authenticate with basic auth and get JWTs granting the
    scopes they ask for; anonymous callers get pull on `public/` repositories."""

    def __init__(self, ca: CA, users: dict[str, str], service="berth-test", issuer="berth-test-issuer",
                 refresh_tokens: dict[str, str] | None = None):
        self.users = users
        self.refresh_tokens = refresh_tokens or {}   # OAuth2 refresh token -> user
        self.service = service
        self.issuer = issuer
        self.requests: list[dict] = []
        pair, self._key, cert = ca.issue("token-signer", server=False)
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.roots = ca.pair.cert
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer._handle(self)

            def do_POST(self):
                outer._handle_oauth(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, h):
        url = urllib.parse.urlparse(h.path)
        query = urllib.parse.parse_qs(url.query)
        user = None
        header = h.headers.get("Authorization", "")
        record = {"method": "GET", "scopes": query.get("scope", []), "user": None, "authorization": header}
        self.requests.append(record)
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(name) != password:
                return self._refuse(h)
            user = record["user"] = name
        self._grant(h, user, query.get("scope", []))

    def _handle_oauth(self, h):
        form = urllib.parse.parse_qs(h.rfile.read(int(h.headers.get("Content-Length", 0))).decode())
        scopes = " ".join(form.get("scope", [])).split()
        record = {"method": "POST", "scopes": scopes, "user": None, "grant": form.get("grant_type", [""])[0]}
        self.requests.append(record)
        user = self.refresh_tokens.get(form.get("refresh_token", [""])[0])
        if record["grant"] != "refresh_token" or user is None:
            return self._refuse(h)
        record["user"] = user
        self._grant(h, user, scopes)

    @staticmethod
    def _refuse(h):
        body = json.dumps({"details": "incorrect username or password"}).encode()
        h.send_response(401)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _grant(self, h, user, scopes):
        access = []
        for s in scopes:
            kind, _, rest = s.partition(":")
            name, _, actions = rest.rpartition(":")
            if user is not None or name.startswith("public/"):
                granted = actions.split(",") if user is not None else ["pull"]
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        head = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        signing = f"{_b64url(json.dumps(head).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self._key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{signing}.{_b64url(sig)}"
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


# -- the registry --------------------------------------------------------------------

@dataclass
class Registry:
    """A running docker-registry on 127.0.0.1."""
    dir: Path
    port: int
    proc: subprocess.Popen
    tls: bool = False
    verify: str | bool = False
    auth: tuple[str, str] | None = None
    log: Path = field(default=None)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage(self) -> Path:
        return self.dir / "data" / "docker" / "registry" / "v2"

    def http(self, auth=None) -> httpx.Client:
        verify = ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify
        return httpx.Client(base_url=self.url, verify=verify, auth=auth or self.auth, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_registry(directory: Path, *, htpasswd: dict[str, str] | None = None, tls: CertPair | None = None,
                   client_ca: Path | None = None, token: TokenServer | None = None,
                   foreign_urls: bool = False) -> Registry:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(directory / "data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "berth-test-secret"},
    }
    if foreign_urls:
        # Manifests naming foreign layers by URL are refused unless allowed.
        config["validation"] = {"manifests": {"urls": {"allow": ["^https?://"]}}}
    auth = None
    if htpasswd:
        lines = []
        for user, password in htpasswd.items():
            lines.append(subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                        capture_output=True, text=True).stdout.strip())
        (directory / "htpasswd").write_text("\n".join(lines) + "\n")
        config["auth"] = {"htpasswd": {"realm": "berth-test", "path": str(directory / "htpasswd")}}
        auth = next(iter(htpasswd.items()))
    if token:
        config["auth"] = {"token": {"realm": token.realm, "service": token.service, "issuer": token.issuer,
                                    "rootcertbundle": str(token.roots)}}
    if tls:
        config["http"]["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
        if client_ca:
            config["http"]["tls"]["clientcas"] = [str(client_ca)]
    # JSON is YAML, so no YAML library is needed.
    (directory / "config.yml").write_text(json.dumps(config))
    log = directory / "registry.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(directory / "config.yml")], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    reg = Registry(directory, port, proc, tls=tls is not None, auth=auth, log=log)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited {proc.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                reg.stop()
                raise RuntimeError("docker-registry did not start listening")
            time.sleep(0.05)
    return reg


# -- content -------------------------------------------------------------------------

def layer_tar(files: dict[str, bytes], *, extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
        for ti in extra:
            tf.addfile(ti)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Built:
    """An image made in the test: its blobs and manifest, ready to upload."""
    config: bytes
    layers: list[bytes]            # as stored (gzip unless made otherwise)
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    @property
    def image_id(self) -> str:
        return sha(self.config)


def build_image(tars: list[bytes], *, arch="amd64", os_="linux", variant="", oci=True, compress=True,
                layer_media_type: str | None = None, cmd=("sh",), urls=None) -> Built:
    layers = [gzip.compress(t, mtime=0) if compress else t for t in tars]
    config = {"architecture": arch, "os": os_, "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]},
              "history": [{"created_by": "test"} for _ in tars], "created": "2024-01-01T00:00:00Z"}
    if variant:
        config["variant"] = variant
    config_bytes = json.dumps(config, indent=2).encode()
    if oci:
        mtype = "application/vnd.oci.image.manifest.v1+json"
        cfg_type = "application/vnd.oci.image.config.v1+json"
        ltype = "application/vnd.oci.image.layer.v1.tar+gzip" if compress else "application/vnd.oci.image.layer.v1.tar"
    else:
        mtype = "application/vnd.docker.distribution.manifest.v2+json"
        cfg_type = "application/vnd.docker.container.image.v1+json"
        ltype = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    layer_descs = []
    for data in layers:
        d = {"mediaType": layer_media_type or ltype, "size": len(data), "digest": sha(data)}
        if urls:
            d["urls"] = urls
        layer_descs.append(d)
    manifest = {"schemaVersion": 2, "mediaType": mtype,
                "config": {"mediaType": cfg_type, "size": len(config_bytes), "digest": sha(config_bytes)},
                "layers": layer_descs}
    # Indented, as some tools write manifests: pulls must keep these exact bytes.
    return Built(config_bytes, layers, json.dumps(manifest, indent=3).encode(), mtype)


def upload_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha(data)
    if client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
        return digest
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = httpx.URL(r.headers["Location"])
    r = client.put(location.copy_merge_params({"digest": digest}), content=data,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


def put_manifest(client: httpx.Client, repo: str, ref: str, data: bytes, media_type: str) -> str:
    r = client.put(f"/v2/{repo}/manifests/{ref}", content=data, headers={"Content-Type": media_type})
    assert r.status_code == 201, r.text
    return sha(data)


def publish(reg: Registry, repo: str, tag: str, image: Built, *, drop_layers=()) -> str:
    """Upload an image; `drop_layers` are deleted again afterwards (the registry
    refuses a manifest whose blobs it lacks), leaving it dangling."""
    with reg.http() as c:
        for data in image.layers:
            upload_blob(c, repo, data)
        upload_blob(c, repo, image.config)
        digest = put_manifest(c, repo, tag, image.manifest, image.media_type)
        for i in drop_layers:
            r = c.delete(f"/v2/{repo}/blobs/{sha(image.layers[i])}")
            assert r.status_code == 202, r.text
        return digest


def publish_index(reg: Registry, repo: str, tag: str, images: list[tuple[Built, dict]], *, oci=True) -> str:
    """An index (or Docker manifest list) over images, each with its platform."""
    with reg.http() as c:
        entries = []
        for image, platform in images:
            for data in image.layers:
                upload_blob(c, repo, data)
            upload_blob(c, repo, image.config)
            put_manifest(c, repo, image.digest, image.manifest, image.media_type)
            entries.append({"mediaType": image.media_type, "size": len(image.manifest),
                            "digest": image.digest, "platform": platform})
        mtype = ("application/vnd.oci.image.index.v1+json" if oci
                 else "application/vnd.docker.distribution.manifest.list.v2+json")
        index = json.dumps({"schemaVersion": 2, "mediaType": mtype, "manifests": entries}, indent=2).encode()
        return put_manifest(c, repo, tag, index, mtype)


class ThrottledProxy:
    """A TCP relay to a registry that sends its answers slowly, so a test can
    catch a pull in the middle of a layer; with `cut_after`, the first
    connection that carries more than that many bytes to the client is cut."""

    def __init__(self, target_port: int, bytes_per_second: int = 1 << 40, cut_after: int | None = None):
        self.port = free_port()
        self.rate = bytes_per_second
        self.cut_after = cut_after
        self.requests: list[bytes] = []   # what clients sent, for checking Range requests
        self._target = target_port
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self._target))
            for src, dst, slow in ((client, upstream, False), (upstream, client, True)):
                t = threading.Thread(target=self._pump, args=(src, dst, slow), daemon=True)
                t.start()

    def _pump(self, src, dst, slow):
        chunk = 16384
        sent = 0
        try:
            while not self._stop.is_set():
                data = src.recv(chunk)
                if not data:
                    break
                if not slow:
                    self.requests.append(data)
                dst.sendall(data)
                sent += len(data)
                if slow:
                    if self.cut_after is not None and sent > self.cut_after:
                        self.cut_after = None
                        break
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self._sock.close()


def random_bytes(n: int, seed: int = 0) -> bytes:
    """Incompressible bytes, the same for the same seed."""
    return random.Random(seed).randbytes(n)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
