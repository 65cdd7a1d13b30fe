"""Containers started through the daemon outlive it and are found by the next
one; the socket can be docker's own path, and TCP needs TLS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from apitest import berth_cli, require_docker_cli, wait_for


def test_containers_survive_a_daemon_restart(api):
    require_docker_cli()
    api.docker("run", "-d", "--network", "none", "--name", "survivor", "busybox", "sh", "-c",
               "echo before; sleep 300")
    api.stop()
    # Nothing of the daemon is needed for the container to run on.
    ps = berth_cli(api.root, "ps", "--format", "{{.Names}} {{.State}}").stdout
    assert ps == "survivor running\n"
    api.start()
    assert api.docker("ps", "--format", "{{.Names}}").stdout == "survivor\n"
    assert api.docker("exec", "survivor", "echo", "after").stdout == "after\n"
    assert api.docker("logs", "survivor").stdout == "before\n"
    api.docker("stop", "-t", "0", "survivor")
    assert api.docker("inspect", "-f", "{{.State.Status}}", "survivor").stdout == "exited\n"


def test_socket_rules(api, root, tmp_path):
    def daemon(*args):
        return subprocess.run([sys.executable, "-m", "berth", "--root", str(root), "daemon", *args],
                              capture_output=True, text=True, timeout=30)

    # A second daemon on a socket in use is refused; the first keeps serving.
    refused = daemon("-H", api.host)
    assert refused.returncode == 1 and "is in use: another daemon is listening on it" in refused.stderr
    assert api.request("GET", "/_ping").status == 200
    assert os.stat(api.socket).st_mode & 0o777 == 0o660
    refused = daemon("-H", "tcp://127.0.0.1:23750")
    assert refused.returncode == 1 and "only with --tlsverify" in refused.stderr
    refused = daemon("-H", f"unix://{tmp_path}/x.sock", "--group", "no-such-group-here")
    assert refused.returncode == 1 and "group no-such-group-here not found" in refused.stderr
    assert not (tmp_path / "x.sock").exists()


def test_tcp_with_tls_client_certificates(api, root, tmp_path):
    require_docker_cli()
    sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
    from reg_testlib import CA, free_port

    ca = CA(tmp_path / "pki")
    server, _, _ = ca.issue("daemon", server=True)
    client, _, _ = ca.issue("client", server=False)
    port = free_port()
    daemon = subprocess.Popen([sys.executable, "-m", "berth", "--root", str(root), "daemon", "-H",
                               f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(ca.pair.cert),
                               "--tlscert", str(server.cert), "--tlskey", str(server.key)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    certs = tmp_path / "docker-certs"
    certs.mkdir()
    (certs / "ca.pem").write_bytes(ca.pair.cert.read_bytes())
    (certs / "cert.pem").write_bytes(client.cert.read_bytes())
    (certs / "key.pem").write_bytes(client.key.read_bytes())
    env = {**api.env, "DOCKER_HOST": f"tcp://127.0.0.1:{port}", "DOCKER_TLS_VERIFY": "1",
           "DOCKER_CERT_PATH": str(certs)}
    try:
        def docker(*args):
            return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=60)
        wait_for(lambda: docker("version").returncode == 0, timeout=30)
        ran = docker("run", "--rm", "--network", "none", "busybox", "echo", "over tls")
        assert (ran.returncode, ran.stdout) == (0, "over tls\n"), ran.stderr
        # Without a client certificate the handshake fails.
        anonymous = subprocess.run(["docker", "--tlscacert", str(certs / "ca.pem"), "--tls", "version"],
                                   env={**api.env, "DOCKER_HOST": f"tcp://127.0.0.1:{port}"},
                                   capture_output=True, text=True, timeout=60)
        assert anonymous.returncode != 0
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
