"""The tutorial's opening promise (examples/clients): two clients'
applications side by side, each in its own container and on its own
published port, neither able to reach the other's address and port."""

import socket
import subprocess
from pathlib import Path

import pytest
from tutlib import fetch, free_port  # noqa: E402
from berthtest import berth_argv

CLIENTS = Path(__file__).resolve().parents[2] / "examples" / "clients"
# Exits 0 when a TCP connection to argv[1]:80 succeeds within 3 s, 3 when
# not (1 would be any Python error).
CONNECT = ("import socket, sys\n"
           "s = socket.socket()\n"
           "s.settimeout(3)\n"
           "sys.exit(0 if s.connect_ex((sys.argv[1], 80)) == 0 else 3)\n")


@pytest.fixture
def clients(berth):
    names = ["client_a", "client_b"]
    yield names
    berth("rm", "-f", *names, check=False)
    berth("network", "prune", "-f", check=False)


@pytest.mark.slow
def test_clients_side_by_side_and_isolated(berth, root, clients):
    berth("mkimage", "-q", "debian:bookworm", timeout=600)
    ports, addresses = {}, {}
    for name in clients:
        build = subprocess.run([*berth_argv(root), "build", "-q",
                                "-t", f"{name}_img", name], cwd=CLIENTS, capture_output=True, text=True,
                               timeout=600, check=False)
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
        ports[name] = free_port()
        berth("run", "-d", "--name", name, "-p", f"127.0.0.1:{ports[name]}:80", f"{name}_img")
    for name in clients:
        addresses[name] = berth("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()

    assert fetch(f"http://127.0.0.1:{ports['client_a']}/") == "Hello from client A!"
    assert fetch(f"http://127.0.0.1:{ports['client_b']}/") == "Hello from client B!"
    assert addresses["client_a"] != addresses["client_b"]

    for me, other in (("client_a", "client_b"), ("client_b", "client_a")):
        # The other's server is up on its address (the host reaches it) ...
        with socket.create_connection((addresses[other], 80), timeout=3):
            pass
        # ... and this container reaches its own, so python and the
        # network work in it ...
        assert berth("exec", me, "python3", "-c", CONNECT, addresses[me], check=False).returncode == 0
        # ... but not the other container.
        assert berth("exec", me, "python3", "-c", CONNECT, addresses[other], check=False).returncode == 3
