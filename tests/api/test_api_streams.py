"""The Engine API's streams on the wire: hijacked attach (stdcopy framing,
half-close, detach keys), wait conditions, logs, events and stats."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from urllib.parse import quote

from apitest import demux, read_all, wait_for


def _create(api, name: str, cmd: list[str], **config) -> str:
    host_config = {"NetworkMode": "none", **config.pop("HostConfig", {})}
    r = api.request("POST", f"/containers/create?name={name}", {"Image": "busybox", "Cmd": cmd,
                                                                 "HostConfig": host_config, **config})
    assert r.status == 201, r
    return r.json()["Id"]


def test_attach_before_start_half_close_and_wait(api):
    cid = _create(api, "upper", ["tr", "a-z", "A-Z"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
    head, sock = api.hijack("/v1.47/containers/upper/attach?stream=1&stdin=1&stdout=1&stderr=1")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head and b"Api-Version: 1.47" in head
    waited = {}

    def wait():
        waited["response"] = api.request("POST", "/containers/upper/wait?condition=next-exit")
    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)  # the docker CLI waits for the wait's headers; a raw client just pauses
    sock.sendall(b"sent before the start\n")  # buffered until the container starts
    assert api.request("POST", f"/containers/{cid}/start").status == 204
    sock.sendall(b"and after\n")
    sock.shutdown(socket.SHUT_WR)  # half-close: stdin ends, output keeps coming
    frames = demux(read_all(sock))
    sock.close()
    assert b"".join(p for s, p in frames if s == 1) == b"SENT BEFORE THE START\nAND AFTER\n"
    waiter.join(timeout=30)
    assert waited["response"].json() == {"StatusCode": 0, "Error": None}


def test_detach_keys_leave_the_container_running(api):
    _create(api, "cat", ["cat"], OpenStdin=True, AttachStdin=True)
    assert api.request("POST", "/containers/cat/start").status == 204
    head, sock = api.hijack("/containers/cat/attach?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x")
    assert b"101 UPGRADED" in head
    sock.sendall(b"echoed\n")
    got = b""
    while b"echoed" not in got:
        got += sock.recv(4096)
    sock.sendall(b"\x18")  # ctrl-x: the daemon ends the session
    read_all(sock)
    sock.close()
    assert api.request("GET", "/containers/cat/json").json()["State"]["Running"] is True
    assert api.request("POST", "/containers/cat/kill").status == 204
    assert api.request("POST", "/containers/cat/wait").json()["StatusCode"] == 137


def test_wait_removed_with_auto_remove(api):
    cid = _create(api, "gone", ["sh", "-c", "exit 5"], HostConfig={"AutoRemove": True})
    result = {}
    waiter = threading.Thread(target=lambda: result.update(
        r=api.request("POST", f"/containers/{cid}/wait?condition=removed")))
    waiter.start()
    time.sleep(0.3)
    assert api.request("POST", f"/containers/{cid}/start").status == 204
    waiter.join(timeout=30)
    assert result["r"].json()["StatusCode"] == 5
    assert api.request("GET", f"/containers/{cid}/json").status == 404


def test_logs_framing_and_versions(api):
    _create(api, "talk", ["sh", "-c", "echo one; echo two >&2"])
    assert api.request("POST", "/containers/talk/start").status == 204
    api.request("POST", "/containers/talk/wait")
    r = api.request("GET", "/v1.47/containers/talk/logs?stdout=1&stderr=1")
    assert r.headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert sorted(demux(r.body)) == [(1, b"one\n"), (2, b"two\n")]
    old = api.request("GET", "/v1.41/containers/talk/logs?stdout=1&timestamps=1")
    assert old.headers["content-type"] == "application/vnd.docker.raw-stream"  # but framed all the same
    [(stream, line)] = demux(old.body)
    assert stream == 1 and line.endswith(b"Z one\n")
    _create(api, "term", ["echo", "on a tty"], Tty=True)
    assert api.request("POST", "/containers/term/start").status == 204
    api.request("POST", "/containers/term/wait")
    r = api.request("GET", "/containers/term/logs?stdout=1")
    assert (r.headers["content-type"], r.body) == ("application/vnd.docker.raw-stream", b"on a tty\r\n")


def test_events_and_stats(api):
    since = time.time()
    cid = _create(api, "evented", ["sleep", "300"], Labels={"team": "api"})
    assert api.request("POST", "/containers/evented/start").status == 204
    stats = api.request("GET", "/containers/evented/stats?stream=0&one-shot=1").json()
    assert stats["id"] == cid and stats["name"] == "/evented" and "memory_stats" in stats
    conn_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn_sock.settimeout(30)
    conn_sock.connect(api.socket)
    conn_sock.sendall(b"GET /containers/evented/stats HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while received.count(b'"read"') < 2:  # a streamed sample a second, until the client leaves
        received += conn_sock.recv(65536)
    conn_sock.close()
    assert api.request("POST", "/containers/evented/stop?t=0").status == 204
    until = time.time()
    filters = quote(json.dumps({"label": ["team=api"], "type": ["container"]}))
    r = api.request("GET", f"/events?since={since}&until={until}&filters={filters}")
    actions = [json.loads(line)["Action"] for line in r.body.splitlines()]
    assert actions[:2] == ["create", "start"] and "die" in actions and "stop" in actions
    r = api.request("GET", f"/events?since={since}&until={until}&filters=" + quote(json.dumps({"event": ["create"]})))
    assert [json.loads(line)["Actor"]["Attributes"]["name"] for line in r.body.splitlines()] == ["evented"]
    assert wait_for(lambda: api.request("GET", "/containers/evented/json").json()["State"]["Status"] == "exited")


def test_a_client_hanging_up_ends_its_waiting_stream(api):
    """An events or logs -f stream with nothing to send notices the client
    is gone, instead of keeping a daemon thread for ever."""
    api.docker("run", "-d", "--network", "none", "--name", "quiet", "busybox", "sleep", "300")
    threads = lambda: len(os.listdir(f"/proc/{api.proc.pid}/task"))     # noqa: E731
    idle = threads()
    for path in ("/events", "/containers/quiet/logs?follow=1&stdout=1"):
        for _ in range(3):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(api.socket)
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: berth\r\n\r\n".encode())
                assert s.recv(4096).startswith(b"HTTP/1.1 200")
    wait_for(lambda: threads() <= idle, timeout=10)
