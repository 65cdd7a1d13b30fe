"""Smaller parts of the Engine API: a client's own registry credentials
(X-Registry-Auth), POST /containers/{id}/update, an exec's Pid."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

docker = pytest.importorskip("docker")


def _auth_header(config: dict) -> dict:
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(config).encode()).decode()}


def _errors(lines: list[dict]) -> list[str]:
    return [line["error"] for line in lines if "error" in line]


def _pull_fails(client, repo: str, **kwargs) -> bool:
    """A refused pull fails before its stream (an HTTP error) or in it (an error message)."""
    try:
        return bool(_errors(list(client.api.pull(repo, tag="v1", stream=True, decode=True, **kwargs))))
    except docker.errors.APIError:
        return True


def test_x_registry_auth_is_honoured(client, api, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
    from reg_testlib import REGISTRY_BIN, start_registry
    if not Path(REGISTRY_BIN).exists() or shutil.which("htpasswd") is None:
        pytest.skip("docker-registry and htpasswd (apache2-utils) are needed")
    registry = start_registry(tmp_path / "registry", htpasswd={"alice": "s3cret"})
    try:
        repo = f"{registry.host}/private/busybox"
        client.images.get("busybox").tag(repo, "v1")
        # No login is stored: the daemon has only what the client sends.
        refused = list(client.api.push(repo, tag="v1", stream=True, decode=True))
        assert _errors(refused), refused
        wrong = list(client.api.push(repo, tag="v1", stream=True, decode=True,
                                     auth_config={"username": "alice", "password": "wrong"}))
        assert _errors(wrong), wrong
        pushed = list(client.api.push(repo, tag="v1", stream=True, decode=True,
                                      auth_config={"username": "alice", "password": "s3cret",
                                                   "serveraddress": registry.host}))
        assert not _errors(pushed) and any(line.get("aux", {}).get("Tag") == "v1" for line in pushed), pushed
        client.images.remove(f"{repo}:v1")
        assert _pull_fails(client, repo)
        # An identity token is not a password: the registry's basic auth refuses it.
        assert _pull_fails(client, repo, auth_config={"identitytoken": "not-a-password"})
        pulled = list(client.api.pull(repo, tag="v1", stream=True, decode=True,
                                      auth_config={"username": "alice", "password": "s3cret"}))
        assert not _errors(pulled), pulled
        assert client.images.get(f"{repo}:v1").id == client.images.get("busybox").id
        # The docker CLI's encoding (URL-safe base64 with padding) through raw HTTP, and config.json's "auth".
        header = _auth_header({"auth": base64.b64encode(b"alice:s3cret").decode()})
        r = api.request("POST", f"/images/{repo}:v1/push", headers=header)
        assert r.status == 200 and b'"error"' not in r.body, r.body
    finally:
        registry.stop()


def test_a_malformed_x_registry_auth_is_refused(api):
    r = api.request("POST", "/images/create?fromImage=127.0.0.1:1/x&tag=v1", headers={"X-Registry-Auth": "%%%"})
    assert r.status == 400 and "invalid X-Registry-Auth header" in r.json()["message"]
    r = api.request("POST", "/images/busybox/push", headers={"X-Registry-Auth": "WzFd"})   # [1]
    assert r.status == 400 and "invalid X-Registry-Auth header" in r.json()["message"]


# -- POST /containers/{id}/update ------------------------------------------------------------

def _cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> str:
    """A cgroup file of the process: its v1 controller's, else the unified hierarchy's."""
    unified = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return f"/sys/fs/cgroup/{controller}{path}/{v1_name}"
            if controllers == "":
                unified = f"/sys/fs/cgroup{path}/{v2_name}"
    assert unified, f"no {controller} cgroup for {pid}"
    return unified


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_update_a_running_container(api):
    from apitest import require_docker_cli, wait_for
    require_docker_cli()
    cid = api.docker("run", "-d", "--network", "none", "--memory", "64m", "--name", "upd", "busybox",
                     "sleep", "300").stdout.strip()
    pid = int(api.docker("inspect", "-f", "{{.State.Pid}}", "upd").stdout)
    memory = _cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert _read(memory) == str(64 << 20)
    out = api.docker("update", "--memory", "96m", "--memory-swap", "192m", "--cpu-shares", "512",
                     "--pids-limit", "50", "--restart", "always", "upd")
    assert out.stdout.strip() == "upd"
    assert _read(memory) == str(96 << 20)
    shares = _read(_cgroup_file(pid, "cpu", "cpu.shares", "cpu.weight"))
    assert shares == ("512" if "cpu.shares" in _cgroup_file(pid, "cpu", "cpu.shares", "cpu.weight") else "20")
    assert _read(_cgroup_file(pid, "pids", "pids.max", "pids.max")) == "50"
    hc = json.loads(api.docker("inspect", "-f", "{{json .HostConfig}}", "upd").stdout)
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuShares"], hc["PidsLimit"]) == (96 << 20, 192 << 20, 512, 50)
    assert hc["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    api.docker("update", "--cpus", "0.5", "upd")
    quota = _cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max")
    assert _read(quota) in ("50000", "50000 100000")
    # The new restart policy is the supervisor's at the next exit.
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: api.docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "upd").stdout
             == "1 running\n", timeout=30)
    # ... and the new limits are the next run's.
    pid = int(api.docker("inspect", "-f", "{{.State.Pid}}", "upd").stdout)
    assert _read(_cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")) == str(96 << 20)
    # Docker's refusals: a restart policy for --rm, a memory limit above the swap limit.
    api.docker("rm", "-f", "upd")
    api.docker("run", "-d", "--rm", "--network", "none", "--name", "gone", "busybox", "sleep", "300")
    refused = api.docker("update", "--restart", "always", "gone", check=False)
    assert refused.returncode == 1 and "AutoRemove is enabled" in refused.stderr
    refused = api.docker("update", "--memory", "400m", "--memory-swap", "200m", "gone", check=False)
    assert refused.returncode == 1 and "Minimum memoryswap limit" in refused.stderr
    r = api.request("POST", f"/containers/{cid}/update", {"Memory": 1})
    assert r.status == 404
    r = api.request("POST", "/containers/gone/update", {"Memory": 1024})
    assert r.status == 400 and "Minimum memory limit" in r.json()["message"]
    r = api.request("POST", "/containers/gone/update", {"PidsLimit": 20})
    assert r.status == 200 and r.json() == {"Warnings": []}
    api.docker("rm", "-f", "gone")


def test_update_a_stopped_container(client):
    c = client.containers.create("busybox", ["sleep", "300"], network_mode="none")
    assert c.update(mem_limit="32m", memswap_limit="64m", restart_policy={"Name": "on-failure",
                                                                         "MaximumRetryCount": 2}) == {"Warnings": []}
    c.reload()
    assert c.attrs["HostConfig"]["Memory"] == 32 << 20
    assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    c.start()
    c.reload()
    memory = _cgroup_file(c.attrs["State"]["Pid"], "memory", "memory.limit_in_bytes", "memory.max")
    assert _read(memory) == str(32 << 20)
    c.remove(force=True)


def test_exec_inspect_reports_the_process_pid(client, api):
    container = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none")
    try:
        exec_id = client.api.exec_create(container.id, ["sh", "-c", "echo $$ > /tmp/pid; exec sleep 300"])["Id"]
        client.api.exec_start(exec_id, detach=True)
        deadline = time.monotonic() + 10
        while not client.api.exec_inspect(exec_id)["Pid"] and time.monotonic() < deadline:
            time.sleep(0.1)
        info = client.api.exec_inspect(exec_id)
        assert info["Running"] and info["Pid"] > 0
        # A host PID, of the process that runs in the container (its own PID there differs).
        with open(f"/proc/{info['Pid']}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] in (b"sleep", b"sh")
    finally:
        container.remove(force=True)
