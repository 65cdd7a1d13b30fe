"""Helpers for the network tests: what a root left in the kernel, HTTP probes."""

import os
import socket
import subprocess
import time

from berth.container.paths import run_dir
from berth.network.names import owns_bridge, table_name, veth_prefix

HTTPD = "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www"


def leftovers(root) -> list[str]:
    found = [f"link {name}" for name in os.listdir("/sys/class/net")
             if owns_bridge(root, name) or name.startswith(veth_prefix(root))]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found += [f"nft {line}" for line in tables.splitlines() if line.split()[-1:] == [table_name(root)]]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if line.split()[4].startswith(str(run_dir(root)))]
    found += [f"resolver pid {pid}" for pid, args in processes()
              if b"berth.network.resolver" in args and str(root).encode() in args]
    return found


def processes():
    """(pid, argv as bytes) of every process still there to be read."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield int(pid), f.read().split(b"\0")
        except OSError:
            continue


def wait_for_leftovers_gone(root, timeout=10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (found := leftovers(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(host: str, port: int, timeout: float = 5.0) -> str:
    """The body of GET / (retried while the server starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return data.partition(b"\r\n\r\n")[2].decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def ip_of(berth, name: str, network: str = "bridge") -> str:
    return berth("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                 name).stdout.strip()


def fetch_in(berth, image: str, target: str, *args: str, port: int = 80) -> str:
    """GET / from a throwaway container: the body, or '' when unreachable."""
    cmd = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc {target} {port} | tail -n 1"
    return berth("run", "--rm", *args, image, "sh", "-c", cmd, check=False).stdout.strip()
