"""network create, ls, inspect, rm, prune: Docker's shapes and messages."""

import json


def test_predefined_networks(berth, bb):
    out = berth("network", "ls").stdout.splitlines()
    assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1:] for line in out[1:]] == [["bridge", "bridge", "local"], ["host", "host", "local"],
                                                       ["none", "null", "local"]]
    for name in ("bridge", "host", "none"):
        p = berth("network", "rm", name, check=False)
        assert p.returncode == 1 and f"{name} is a pre-defined network and cannot be removed" in p.stderr
    p = berth("network", "create", "bridge", check=False)
    assert p.returncode == 1 and "network with name bridge already exists" in p.stderr
    p = berth("network", "create", "-d", "host", "h2", check=False)
    assert p.returncode == 1 and 'only one instance of "host" network is allowed' in p.stderr


def test_create_inspect_rm(berth, bb):
    nid = berth("network", "create", "--subnet", "10.77.0.0/24", "--label", "team=a", "app").stdout.strip()
    assert len(nid) == 64
    [n] = json.loads(berth("network", "inspect", "app").stdout)
    assert n["Id"] == nid and n["Name"] == "app" and n["Driver"] == "bridge" and n["Scope"] == "local"
    assert n["IPAM"] == {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.77.0.0/24",
                                                                          "Gateway": "10.77.0.1"}]}
    assert n["Internal"] is False and n["Labels"] == {"team": "a"} and n["Containers"] == {}
    assert berth("network", "inspect", "-f", "{{.Name}}", nid[:6]).stdout == "app\n"
    p = berth("network", "create", "--subnet", "10.77.0.128/25", "overlap", check=False)
    assert p.returncode == 1 and "Pool overlaps with other one on this address space" in p.stderr
    p = berth("network", "create", "--subnet", "bogus", "bad", check=False)
    assert p.returncode == 1 and "invalid CIDR address: bogus" in p.stderr

    cid = berth("run", "-d", "--network", "app", "--name", "member", bb, "sleep", "300").stdout.strip()
    [n] = json.loads(berth("network", "inspect", "app").stdout)
    assert n["Containers"][cid]["Name"] == "member"
    assert n["Containers"][cid]["IPv4Address"] == "10.77.0.2/24"
    assert n["Containers"][cid]["MacAddress"] == "02:42:0a:4d:00:02"
    assert berth("ps", "--format", "{{.Networks}}").stdout == "app\n"
    p = berth("network", "rm", "app", check=False)
    assert p.returncode == 1 and "has active endpoints" in p.stderr
    berth("rm", "-f", "member")
    assert berth("network", "rm", "app").stdout == "app\n"
    p = berth("network", "inspect", "app", check=False)
    assert p.returncode == 1 and "network app not found" in p.stderr
    p = berth("run", "--rm", "--network", "app", bb, "true", check=False)
    assert p.returncode == 125 and "network app not found" in p.stderr


def test_ls_filters_and_prune(berth, bb):
    berth("network", "create", "--label", "keep=1", "kept")
    berth("network", "create", "unused")
    berth("network", "create", "used")
    berth("create", "--network", "used", "--name", "holder", bb, "true")
    names = lambda *f: berth("network", "ls", "--format", "{{.Name}}", *f).stdout.split()
    assert names("-f", "type=custom") == ["kept", "unused", "used"]
    assert names("-f", "type=builtin") == ["bridge", "host", "none"]
    assert names("-f", "label=keep") == ["kept"]
    assert names("-f", "name=use") == ["unused", "used"]
    assert names("-f", "driver=null") == ["none"]
    assert len(berth("network", "ls", "-q").stdout.split()) == 6
    out = berth("network", "prune", "-f", "--filter", "label!=keep=1").stdout
    assert out == "Deleted Networks:\nunused\n"
    assert names("-f", "type=custom") == ["kept", "used"]


def test_inspect_a_containers_networks(berth, bb):
    berth("network", "create", "app")
    berth("create", "--name", "idle", "--network", "app", "--network-alias", "db", bb, "true")
    settings = json.loads(berth("inspect", "-f", "{{json .NetworkSettings}}", "idle").stdout)
    assert list(settings["Networks"]) == ["app"] and settings["Networks"]["app"]["IPAddress"] == ""
    p = berth("run", "--rm", "--network-alias", "x", bb, "true", check=False)
    assert p.returncode == 125 and "network-scoped alias is supported only for containers in user defined networks" \
        in p.stderr
    cid = berth("run", "-d", "--name", "on", bb, "sleep", "300").stdout.strip()
    s = json.loads(berth("inspect", "-f", "{{json .NetworkSettings}}", "on").stdout)
    ep = s["Networks"]["bridge"]
    assert s["IPAddress"] == ep["IPAddress"] and s["Gateway"] == ep["Gateway"] and s["MacAddress"] == ep["MacAddress"]
    assert s["SandboxKey"] and ep["EndpointID"] and ep["NetworkID"] == json.loads(
        berth("network", "inspect", "bridge").stdout)[0]["Id"]
    [bridge] = json.loads(berth("network", "inspect", "bridge").stdout)
    assert cid in bridge["Containers"]
    assert bridge["Options"]["com.docker.network.bridge.enable_icc"] == "false"


def test_connect_before_start(berth, bb):
    berth("network", "create", "extra")
    berth("create", "--name", "two", bb, "sleep", "300")
    berth("network", "connect", "extra", "two")
    berth("start", "two")
    assert berth("exec", "two", "ls", "/sys/class/net").stdout.split() == ["eth0", "eth1", "lo"]
    networks = json.loads(berth("inspect", "-f", "{{json .NetworkSettings.Networks}}", "two").stdout)
    assert set(networks) == {"bridge", "extra"} and all(n["IPAddress"] for n in networks.values())
    # Only eth0, on the container's own network, carries the default route.
    assert berth("exec", "two", "ip", "route").stdout.count("default") == 1
    # Sharing its namespace shares its address and resolver too.
    out = berth("run", "--rm", "--network", "container:two", bb, "sh", "-c",
                "cat /sys/class/net/eth1/address; cat /etc/resolv.conf").stdout
    assert networks["extra"]["MacAddress"] in out
    assert out.split("\n", 1)[1] == berth("exec", "two", "cat", "/etc/resolv.conf").stdout


def test_ip_and_mac_address(berth, bb):
    berth("network", "create", "--subnet", "172.30.77.0/24", "fixed")
    berth("run", "-d", "--name", "pinned", "--network", "fixed", "--ip", "172.30.77.50",
          "--mac-address", "02:42:ac:1e:4d:32", bb, "sleep", "300")
    iface = berth("exec", "pinned", "ip", "addr", "show", "eth0").stdout
    assert "inet 172.30.77.50/24" in iface and "link/ether 02:42:ac:1e:4d:32" in iface
    endpoint = json.loads(berth("inspect", "pinned").stdout)[0]["NetworkSettings"]["Networks"]["fixed"]
    assert endpoint["IPAMConfig"] == {"IPv4Address": "172.30.77.50"} and endpoint["MacAddress"] == "02:42:ac:1e:4d:32"
    berth("network", "create", "auto")
    for args, message in (
            (["--network", "fixed", "--ip", "172.30.77.50"], "Address already in use: 172.30.77.50"),
            (["--network", "fixed", "--ip", "10.9.9.9"], "is not in the subnet's range"),
            (["--network", "auto", "--ip", "172.30.77.60"], "only when connecting to networks with user configured subnets"),
            (["--ip", "172.17.0.60"], "supported on user defined networks only"),
            (["--mac-address", "zz"], "zz is not a valid mac address")):
        r = berth("run", "--rm", *args, bb, "true", check=False)
        assert r.returncode == 125 and message in r.stderr, r.stderr
    # A --rm container whose start failed is gone, as in Docker.
    assert berth("ps", "-a", "--format", "{{.Names}}").stdout == "pinned\n"
