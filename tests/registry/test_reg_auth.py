"""Authentication against real registries: htpasswd basic auth, Docker's
token flow, and credentials kept in Docker's config.json or a helper."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap

import pexpect
import pytest

from reg_testlib import build_image, layer_tar, put_manifest, upload_blob
from berthtest import berth_argv

PASSWORD = "s3cret-Pa55"
LAYER = layer_tar({"hello": b"hi\n"})


@pytest.fixture
def basic(registries):
    return registries(htpasswd={"alice": PASSWORD})


def config_json(reg_env) -> dict:
    return json.loads(open(os.path.join(reg_env["DOCKER_CONFIG"], "config.json")).read())


def test_wrong_password_fails_and_stores_nothing(rberth, basic, reg_env):
    p = rberth("login", "-u", "alice", "--password-stdin", basic.host, input="wrong-password\n", check=False)
    assert p.returncode == 1
    assert p.stderr == f"Error: login attempt to http://{basic.host}/v2/ failed with status: 401 Unauthorized\n"
    assert "wrong-password" not in p.stdout + p.stderr
    assert not os.path.exists(os.path.join(reg_env["DOCKER_CONFIG"], "config.json"))


def test_login_push_pull_logout(rberth, other, basic, bb_image, reg_env):
    name = f"{basic.host}/private/bb:1"
    bb_image(name)
    p = rberth("push", name, check=False)
    assert p.returncode == 1
    assert p.stderr.endswith(": no basic auth credentials\n")
    p = rberth("login", "-u", "alice", "--password-stdin", basic.host, input=PASSWORD + "\n")
    assert p.stdout == "Login Succeeded\n"
    path = os.path.join(reg_env["DOCKER_CONFIG"], "config.json")
    assert f"WARNING! Your credentials are stored unencrypted in '{path}'." in p.stderr
    assert PASSWORD not in p.stdout + p.stderr
    entry = config_json(reg_env)["auths"][basic.host]
    assert base64.b64decode(entry["auth"]).decode() == f"alice:{PASSWORD}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pushed = rberth("push", name)
    assert "Pushed" in pushed.stdout and PASSWORD not in pushed.stdout + pushed.stderr
    other("pull", name)   # the same config.json: logged in too
    assert rberth("logout", basic.host).stdout == f"Removing login credentials for {basic.host}\n"
    assert basic.host not in config_json(reg_env).get("auths", {})
    p = other("pull", name, check=False)
    assert p.returncode == 1
    assert p.stderr == f'Error: Get "http://{basic.host}/v2/private/bb/manifests/1": no basic auth credentials\n'


def test_login_flags(rberth, basic):
    p = rberth("login", "--password-stdin", basic.host, input=PASSWORD, check=False)
    assert p.stderr == "Error: Must provide --username with --password-stdin\n"
    p = rberth("login", basic.host, check=False, input="")
    assert p.stderr == "Error: Cannot perform an interactive login from a non TTY device\n"
    p = rberth("login", "-u", "alice", "-p", PASSWORD, basic.host)
    assert p.stderr.startswith("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    assert p.stdout == "Login Succeeded\n"
    # With stored credentials and no flags, login reuses them.
    assert rberth("login", basic.host, input="").stdout == "Login Succeeded\n"


def test_login_prompts_on_a_terminal(rberth, basic, reg_env):
    env = {**os.environ, **reg_env}
    child = pexpect.spawn(berth_argv()[0], [*berth_argv(rberth.root)[1:], "login", basic.host],
                          env=env, timeout=60, encoding="utf-8")
    try:
        child.expect_exact("Username: ")
        child.sendline("alice")
        child.expect_exact("Password: ")
        child.sendline(PASSWORD)
        child.expect_exact("Login Succeeded")
        child.expect(pexpect.EOF)
        assert PASSWORD not in child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert base64.b64decode(config_json(reg_env)["auths"][basic.host]["auth"]).decode() == f"alice:{PASSWORD}"


def test_token_flow_scopes_and_caching(rberth, other, registries, token_server, bb_image):
    reg = registries(token=token_server)
    name = f"{reg.host}/app:1"
    bb_image(name)
    p = rberth("push", name, check=False)
    assert p.returncode == 1 and "authentication required" in p.stderr
    p = rberth("login", "-u", "alice", "--password-stdin", reg.host, input="bad\n", check=False)
    assert p.returncode == 1
    assert p.stderr == f'Error: Get "{token_server.realm}": unauthorized: incorrect username or password\n'
    rberth("login", "-u", "alice", "--password-stdin", reg.host, input="wonderland\n")
    token_server.requests.clear()
    rberth("push", name)
    # One token for the whole push, asked for with the push scope, with credentials.
    assert len(token_server.requests) == 1
    assert token_server.requests[0]["scopes"] == ["repository:app:pull,push"]
    assert token_server.requests[0]["user"] == "alice"
    token_server.requests.clear()
    other("pull", name)
    assert [r["scopes"] for r in token_server.requests] == [["repository:app:pull"]]
    rberth("logout", reg.host)
    p = other("pull", name, check=False)
    assert p.returncode == 1
    assert p.stderr.startswith(f"Error: pull access denied for {reg.host}/app, repository does not exist "
                               "or may require 'docker login': ")


def test_anonymous_token(rberth, registries, token_server):
    """Public repositories are pulled with an anonymous token, no credentials."""
    reg = registries(token=token_server)
    with reg.http() as c:
        c.headers["Authorization"] = "Bearer " + _token(token_server, "repository:public/app:pull,push")
        image = build_image([LAYER])
        for data in image.layers + [image.config]:
            upload_blob(c, "public/app", data)
        put_manifest(c, "public/app", "1", image.manifest, image.media_type)
    rberth("pull", f"{reg.host}/public/app:1")
    assert rberth("images", "-q", "--no-trunc").stdout.strip() == image.image_id
    assert token_server.requests[-1]["user"] is None


def test_identity_token_uses_oauth2(rberth, registries, token_server, bb_image, reg_env):
    """An identity token in config.json (what some logins store) is exchanged
    for access tokens with the OAuth2 refresh-token grant."""
    token_server.refresh_tokens["rt-alice-123"] = "alice"
    reg = registries(token=token_server)
    os.makedirs(reg_env["DOCKER_CONFIG"], exist_ok=True)
    with open(os.path.join(reg_env["DOCKER_CONFIG"], "config.json"), "w") as f:
        json.dump({"auths": {reg.host: {"auth": base64.b64encode(b"alice:").decode(),
                                        "identitytoken": "rt-alice-123"}}}, f)
    name = f"{reg.host}/oauth/app:1"
    bb_image(name)
    p = rberth("push", name)
    assert "rt-alice-123" not in p.stdout + p.stderr
    assert [(r["method"], r.get("grant"), r["user"]) for r in token_server.requests] == \
        [("POST", "refresh_token", "alice")]


def _token(server, scope):
    import httpx
    r = httpx.get(server.realm, params={"service": server.service, "scope": scope},
                  auth=("alice", "wonderland"))
    return r.json()["token"]


HELPER = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    store = os.environ["HELPER_STORE"]
    action, data = sys.argv[1], sys.stdin.read()
    db = json.load(open(store)) if os.path.exists(store) else {{}}
    open(store + ".log", "a").write(action + "\\n")
    if action == "store":
        entry = json.loads(data)
        db[entry["ServerURL"]] = {{"Username": entry["Username"], "Secret": entry["Secret"]}}
    else:
        server = data.strip()
        if server not in db:
            print("credentials not found in native keychain")
            sys.exit(1)
        if action == "get":
            print(json.dumps({{"ServerURL": server, **db[server]}}))
        else:
            del db[server]
    json.dump(db, open(store, "w"))
""")


def test_credential_helper(rberth, basic, reg_env, tmp_path, bb_image):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-berthtest"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    store = tmp_path / "helper-store.json"
    os.makedirs(reg_env["DOCKER_CONFIG"], exist_ok=True)
    with open(os.path.join(reg_env["DOCKER_CONFIG"], "config.json"), "w") as f:
        json.dump({"credsStore": "berthtest", "psFormat": "keep me"}, f)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "HELPER_STORE": str(store)}
    p = rberth("login", "-u", "alice", "--password-stdin", basic.host, input=PASSWORD, env=env)
    assert p.stdout == "Login Succeeded\n" and "unencrypted" not in p.stderr
    assert json.load(open(store))[basic.host] == {"Username": "alice", "Secret": PASSWORD}
    config = config_json(reg_env)
    assert config["psFormat"] == "keep me" and config["auths"][basic.host] == {}
    assert PASSWORD not in json.dumps(config)
    name = f"{basic.host}/helped:1"
    bb_image(name)
    rberth("push", name, env=env)
    rberth("logout", basic.host, env=env)
    assert basic.host not in json.load(open(store))
    assert open(f"{store}.log").read().split() == ["store", "get", "erase"]
    p = rberth("push", name, env={**env, "PATH": "/usr/bin:/bin"}, check=False)
    assert p.returncode == 1
    assert 'exec: "docker-credential-berthtest": executable file not found in $PATH' in p.stderr
