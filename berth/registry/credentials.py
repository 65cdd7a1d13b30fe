"""Registry credentials in Docker's client config.json.

The same file and format the docker CLI uses (`$DOCKER_CONFIG/config.json`,
else `~/.docker/config.json`): `auths` maps a server to base64
`user:password` (or an identity token); `credsStore` names a credential
helper for all servers and `credHelpers` one per server, each a
`docker-credential-NAME` program speaking get/store/erase over stdin.
Docker Hub is filed under https://index.docker.io/v1/, others under host[:port].
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import tempfile
from pathlib import Path

from berth.errors import DataCorrupt, Unavailable
from berth.image.reference import DEFAULT_DOMAIN
from berth.registry.auth import Credentials
from berth.registry.hosts import INDEX_SERVER, canonical_domain

CONFIG_FILE = "config.json"
# What a helper's username field holds when the secret is an identity token.
TOKEN_USERNAME = "<token>"
_NOT_FOUND = "credentials not found in native keychain"
HELPER_TIMEOUT = 60


def server_address(domain: str) -> str:
    """The key Docker stores a registry's credentials under."""
    return INDEX_SERVER if canonical_domain(domain) == DEFAULT_DOMAIN else domain


def hostname_of(server: str) -> str:
    """Docker's ConvertToHostname, with Docker Hub's aliases folded together."""
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return canonical_domain(host)


def domain_of_server(server: str) -> str:
    """A `login SERVER` argument as a registry domain (URLs and Hub aliases allowed)."""
    return hostname_of(server.strip()) if server.strip() else DEFAULT_DOMAIN


class CredentialStore:
    def __init__(self, config_dir: Path):
        self.config_dir = Path(config_dir)

    @property
    def path(self) -> Path:
        return self.config_dir / CONFIG_FILE

    # -- the file --------------------------------------------------------------

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_bytes() or b"{}")
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise DataCorrupt(f"{self.path}: invalid JSON: {e}") from None
        if not isinstance(data, dict):
            raise DataCorrupt(f"{self.path}: not a JSON object")
        return data

    def _save(self, data: dict) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.config_dir, prefix=".config.json.")
        try:
            with os.fdopen(fd, "w") as f:
                # The docker CLI's MarshalIndent(config, "", "\t").
                json.dump(data, f, indent="\t")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _entry_key(auths: dict, domain: str) -> str | None:
        wanted = server_address(domain)
        if wanted in auths:
            return wanted
        host = hostname_of(wanted)
        return next((k for k in auths if hostname_of(k) == host), None)

    def helper_for(self, domain: str) -> str | None:
        """The credential helper that keeps this registry's credentials, if any."""
        return self._helper(self._load(), domain)

    def _helper(self, config: dict, domain: str) -> str | None:
        helpers = config.get("credHelpers") or {}
        host = hostname_of(server_address(domain))
        for key, name in helpers.items():
            if hostname_of(key) == host and name:
                return name
        return config.get("credsStore") or None

    # -- operations --------------------------------------------------------------

    def get(self, domain: str) -> Credentials | None:
        config = self._load()
        helper = self._helper(config, domain)
        if helper:
            return self._helper_get(helper, server_address(domain))
        auths = config.get("auths") or {}
        key = self._entry_key(auths, domain)
        if key is None:
            return None
        entry = auths[key] or {}
        username, password = entry.get("username", ""), entry.get("password", "")
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"]).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise DataCorrupt(f"{self.path}: invalid auth entry for {key}") from None
            username, sep, password = decoded.partition(":")
            if not sep:
                raise DataCorrupt(f"{self.path}: invalid auth entry for {key}")
        creds = Credentials(username, password, entry.get("identitytoken", ""))
        return None if creds.empty else creds

    def store(self, domain: str, creds: Credentials) -> str:
        """Save credentials; returns where they went (the file, or the helper's name)."""
        config = self._load()
        server = server_address(domain)
        auths = config.setdefault("auths", {})
        old = self._entry_key(auths, domain)
        if old is not None and old != server:
            del auths[old]
        helper = self._helper(config, domain)
        if helper:
            secret = creds.identity_token or creds.password
            username = TOKEN_USERNAME if creds.identity_token else creds.username
            self._run_helper(helper, "store", json.dumps(
                {"ServerURL": server, "Username": username, "Secret": secret}))
            auths[server] = {}
            self._save(config)
            return f"docker-credential-{helper}"
        entry = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
        if creds.identity_token:
            entry = {"auth": base64.b64encode(f"{creds.username}:".encode()).decode(),
                     "identitytoken": creds.identity_token}
        auths[server] = entry
        self._save(config)
        return str(self.path)

    def erase(self, domain: str) -> bool:
        """Forget a registry's credentials; False if there were none."""
        config = self._load()
        found = False
        helper = self._helper(config, domain)
        if helper:
            found = self._run_helper(helper, "erase", server_address(domain), missing_ok=True)
        auths = config.get("auths") or {}
        key = self._entry_key(auths, domain)
        if key is not None:
            del auths[key]
            self._save(config)
            found = True
        return found

    # -- helpers -------------------------------------------------------------------

    def _helper_get(self, helper: str, server: str) -> Credentials | None:
        out = self._run_helper(helper, "get", server, missing_ok=True)
        if not out:
            return None
        try:
            reply = json.loads(out)
        except ValueError:
            raise Unavailable(f"error getting credentials - err: invalid reply from "
                              f"docker-credential-{helper}") from None
        username, secret = reply.get("Username", ""), reply.get("Secret", "")
        if username == TOKEN_USERNAME:
            return Credentials(identity_token=secret)
        creds = Credentials(username, secret)
        return None if creds.empty else creds

    def _run_helper(self, helper: str, action: str, stdin: str, missing_ok: bool = False):
        program = f"docker-credential-{helper}"
        verb = {"get": "getting", "store": "storing", "erase": "erasing"}[action]
        try:
            p = subprocess.run([program, action], input=stdin, capture_output=True, text=True,
                               timeout=HELPER_TIMEOUT)
        except FileNotFoundError:
            raise Unavailable(f'error {verb} credentials - err: exec: "{program}": executable file '
                              "not found in $PATH, out: ``") from None
        except subprocess.TimeoutExpired:
            raise Unavailable(f"error {verb} credentials - err: {program} timed out") from None
        out = p.stdout.strip()
        if p.returncode != 0:
            if missing_ok and _NOT_FOUND in (out + p.stderr):
                return "" if action == "get" else False
            # The helper's output, never its input: that holds the secret.
            raise Unavailable(f"error {verb} credentials - err: exit status {p.returncode}, out: `{out}`")
        return out if action == "get" else True
