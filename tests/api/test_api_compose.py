"""docker-compose v1 (Python, over docker-py) bringing a two-service app up
and down through `berth daemon`; one service reaches the other by name."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from apitest import wait_for

COMPOSE_FILE = """\
version: "3"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo hello-from-web > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
  client:
    image: busybox
    depends_on: [web]
    command: ["sh", "-c", "until wget -q -O - http://web:8080/index.html; do sleep 0.2; done; exec sleep 300"]
"""


def test_compose_up_and_down(api, tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose (Debian's docker-compose) is not installed")
    project = tmp_path / "app"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)

    def run(*args, check=True):
        p = subprocess.run([compose, "-p", "demo", *args], cwd=project, env=api.env, capture_output=True,
                           text=True, timeout=180)
        if check and p.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    try:
        up = run("up", "-d")
        assert "Creating demo_web_1" in up.stderr and "Creating demo_client_1" in up.stderr
        names = api.docker("ps", "--format", "{{.Names}}").stdout.split()
        assert sorted(names) == ["demo_client_1", "demo_web_1"]
        assert wait_for(lambda: "hello-from-web" in run("logs", "client").stdout, timeout=30)
        ps = run("ps").stdout
        assert "demo_web_1" in ps and "Up" in ps
    finally:
        down = run("down", check=False)
    assert down.returncode == 0, down.stderr
    assert "Removing network demo_default" in down.stderr
    assert api.docker("ps", "-aq").stdout == ""
    assert "demo_default" not in api.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
