"""`berth volume ...` through the real CLI, with Docker's output shapes."""

import json
import os
import re
import shutil

import pytest

from berth.container.paths import run_dir


@pytest.fixture
def vberth(berth, root):
    try:
        yield berth
    finally:
        shutil.rmtree(run_dir(root), ignore_errors=True)


def test_create_ls_inspect_rm(vberth, root):
    assert vberth("volume", "create", "myvol").stdout == "myvol\n"
    assert vberth("volume", "create", "--name", "other", "--label", "a=b", "--label", "flag").stdout == "other\n"
    out = vberth("volume", "ls").stdout.splitlines()
    assert out[0] == "DRIVER    VOLUME NAME"
    assert [line.split() for line in out[1:]] == [["local", "myvol"], ["local", "other"]]

    info = json.loads(vberth("volume", "inspect", "myvol").stdout)
    assert len(info) == 1
    assert info[0]["Name"] == "myvol" and info[0]["Driver"] == "local" and info[0]["Scope"] == "local"
    assert info[0]["Mountpoint"] == str(root / "volumes" / "myvol" / "_data")
    assert info[0]["Labels"] == {} and info[0]["Options"] == {}  # what `docker volume create` sends
    assert vberth("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "other").stdout == "other local\n"

    assert vberth("volume", "rm", "myvol", "other").stdout == "myvol\nother\n"
    assert vberth("volume", "ls", "-q").stdout == ""
    assert not (root / "volumes" / "myvol").exists()


def test_create_without_a_name_is_anonymous(vberth):
    name = vberth("volume", "create").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", name)
    labels = json.loads(vberth("volume", "inspect", name).stdout)[0]["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}


def test_create_is_idempotent(vberth):
    vberth("volume", "create", "same")
    assert vberth("volume", "create", "same").stdout == "same\n"
    assert vberth("volume", "ls", "-q").stdout == "same\n"


def test_create_errors(vberth):
    p = vberth("volume", "create", "--name", "a1", "b1", check=False)
    assert p.returncode == 1
    assert "conflicting options: either specify --name or provide positional arg, not both" in p.stderr
    p = vberth("volume", "create", "x", check=False)
    assert p.returncode == 1
    assert "create x: volume name is too short, names should be at least two alphanumeric characters" in p.stderr
    p = vberth("volume", "create", "-d", "flocker", "v1", check=False)
    assert p.returncode == 1 and 'plugin "flocker" not found' in p.stderr
    p = vberth("volume", "create", "-o", "bogus=1", "v1", check=False)
    assert p.returncode == 1 and 'create v1: invalid option: "bogus"' in p.stderr


def test_options_are_recorded(vberth):
    vberth("volume", "create", "--opt", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=100m", "scratch")
    info = json.loads(vberth("volume", "inspect", "scratch").stdout)[0]
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"}


def test_ls_filters_and_format(vberth):
    vberth("volume", "create", "--label", "env=prod", "v10")
    vberth("volume", "create", "--label", "env=dev", "v9")
    vberth("volume", "create", "vol")
    # Docker sorts names naturally: v9 before v10.
    assert vberth("volume", "ls", "-q").stdout.split() == ["v9", "v10", "vol"]
    assert vberth("volume", "ls", "-q", "-f", "label=env=prod").stdout == "v10\n"
    assert vberth("volume", "ls", "-q", "--filter", "name=^v\\d").stdout.split() == ["v9", "v10"]
    assert vberth("volume", "ls", "-q", "-f", "dangling=true").stdout.split() == ["v9", "v10", "vol"]
    assert vberth("volume", "ls", "--format", "{{.Name}}|{{.Labels}}|{{.Scope}}|{{.Links}}",
                  "-f", "label=env").stdout.split() == ["v9|env=dev|local|N/A", "v10|env=prod|local|N/A"]
    p = vberth("volume", "ls", "-f", "dangling=maybe", check=False)
    assert p.returncode == 1 and "invalid filter 'dangling=maybe'" in p.stderr
    p = vberth("volume", "ls", "-f", "until=1h", check=False)
    assert p.returncode == 1 and "invalid filter 'until'" in p.stderr


def test_inspect_and_rm_missing(vberth):
    vberth("volume", "create", "here")
    p = vberth("volume", "inspect", "here", "nope", check=False)
    assert p.returncode == 1
    assert "get nope: no such volume" in p.stderr
    assert [v["Name"] for v in json.loads(p.stdout)] == ["here"]
    p = vberth("volume", "rm", "nope", "here", check=False)
    assert p.returncode == 1
    assert "get nope: no such volume" in p.stderr and p.stdout == "here\n"
    assert vberth("volume", "rm", "-f", "nope").returncode == 0


def test_prune(vberth):
    anon = vberth("volume", "create").stdout.strip()
    vberth("volume", "create", "named")
    data = json.loads(vberth("volume", "inspect", anon).stdout)[0]["Mountpoint"]
    with open(os.path.join(data, "payload"), "wb") as f:
        f.write(b"x" * 2000)
    p = vberth("volume", "prune", "-f")
    assert p.stdout == f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 2kB\n"
    assert vberth("volume", "ls", "-q").stdout == "named\n"
    assert vberth("volume", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
    p = vberth("volume", "prune", "-a", "-f", "--filter", "all=1", check=False)
    assert p.returncode == 1
    assert "conflicting options: cannot specify both --all and --filter all=1" in p.stderr
    assert vberth("volume", "prune", "--all", "--force").stdout == "Deleted Volumes:\nnamed\n\nTotal reclaimed space: 0B\n"


def test_aliases_and_help(vberth):
    vberth("volume", "create", "aliased")
    assert vberth("volume", "list", "-q").stdout == "aliased\n"
    assert vberth("volume", "remove", "aliased").stdout == "aliased\n"
    p = vberth("volume", "bogus", check=False)
    assert p.returncode == 125
