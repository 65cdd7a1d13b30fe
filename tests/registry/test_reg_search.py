"""`search`: a distribution registry's catalog, and the v1 search API."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse

import pytest

from reg_testlib import build_image, free_port, layer_tar, publish

IMAGE = build_image([layer_tar({"x": b"x"})])


def test_catalog_fallback_with_a_clear_message(rberth, registry):
    for repo in ("web/frontend", "web/backend", "tools/shell"):
        publish(registry, repo, "1", IMAGE)
    p = rberth("search", f"{registry.host}/web")
    assert p.stderr == (f"{registry.host} has no search API; listing the repositories in its catalog "
                        'that match "web"\n')
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert [line.split()[0] for line in lines[1:]] == [f"{registry.host}/web/backend",
                                                       f"{registry.host}/web/frontend"]
    names = rberth("search", "--format", "{{.Name}}", "--limit", "1", f"{registry.host}/e").stdout
    assert names == f"{registry.host}/tools/shell\n"


class _SearchIndex(http.server.BaseHTTPRequestHandler):
    """A registry offering the v1 search API (as Docker Hub's index does)."""

    def log_message(self, *a):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/v2/":
            body = b"{}"
        elif url.path == "/v1/search":
            q = urllib.parse.parse_qs(url.query)
            results = [
                {"name": "library/app", "description": "The official app image, with a long description "
                 "that the table truncates", "star_count": 900, "is_official": True},
                {"name": "someone/app", "description": "a fork", "star_count": 3, "is_official": False},
            ]
            body = json.dumps({"query": q["q"][0], "num_results": len(results),
                               "results": results[: int(q["n"][0])]}).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def search_index():
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _SearchIndex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def test_search_api(rberth, search_index):
    out = rberth("search", f"{search_index}/app").stdout.splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert out[1].startswith(f"{search_index}/library/app")
    # Docker's Ellipsis: 45 columns, the last one "…".
    assert "The official app image, with a long descript… " in out[1]
    assert out[1].split()[-2:] == ["900", "[OK]"]
    assert out[2].split()[0] == f"{search_index}/someone/app"
    full = rberth("search", "--no-trunc", f"{search_index}/app").stdout
    assert "that the table truncates" in full
    official = rberth("search", "-f", "is-official=true", "--format", "{{.Name}} {{.StarCount}}",
                      f"{search_index}/app").stdout
    assert official == f"{search_index}/library/app 900\n"
    assert rberth("search", "-f", "stars=10", "--limit", "2", "--format", "{{.Name}}",
                  f"{search_index}/app").stdout == f"{search_index}/library/app\n"
    p = rberth("search", "--limit", "0", f"{search_index}/app", check=False)
    assert p.stderr == "Error: limit 0 is outside the range of [1, 100]\n"
