"""`berth stats` and the stats API's JSON: limits, PIDs and Docker's formatting,
read from the real cgroups of real containers; the kernel file parsers and
docker/cli's arithmetic on fixed inputs (including cgroup v2's, which this
host's hybrid layout cannot show)."""

import json
import os
import re
import select
import signal
import subprocess
import time

import pytest

from berth.cli.commands import cp_stats
from berth.container import stats as cstats
from berthtest import berth_argv

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

ROW = re.compile(r"^(?P<id>[0-9a-f]{12})\s+(?P<name>\S+)\s+(?P<cpu>\d+\.\d\d%)\s+(?P<mem>\S+ / \S+)\s+"
                 r"(?P<memperc>\d+\.\d\d%)\s+(?P<net>\S+ / \S+)\s+(?P<block>\S+ / \S+)\s+(?P<pids>\d+)$")
HEADER = ("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS")


@pytest.fixture
def ctr(berth, bb):
    """Makes containers from the busybox image; removes them afterwards."""
    made = []

    def make(*args, cmd=("sleep", "300"), run=True):
        # No network: the counters and column widths below are those of a loopback-only box.
        cid = berth(*(["run", "-d"] if run else ["create"]), "--network", "none", *args, "bb",
                    *cmd).stdout.strip()
        made.append(cid)
        return cid
    yield make
    for cid in made:
        berth("rm", "-f", cid, check=False)


@needs_root
def test_no_stream_shows_the_memory_limit_and_pids(berth, ctr):
    cid = ctr("--memory", "64m", "--name", "limited", cmd=("sh", "-c", "sleep 300 & sleep 300 & wait"))
    out = berth("stats", "--no-stream", "limited").stdout.splitlines()
    assert out[0] == HEADER
    row = ROW.match(out[1])
    assert row, out[1]
    assert row["id"] == cid[:12] and row["name"] == "limited"
    assert row["mem"].endswith(" / 64MiB")
    assert row["pids"] == "3"
    assert row["net"] == "0B / 0B"


@needs_root
def test_all_formats_and_stopped_containers(berth, ctr):
    running = ctr("--name", "up")
    stopped = ctr("--name", "down", run=False)
    out = berth("stats", "--no-stream").stdout
    assert "up" in out and "down" not in out
    lines = berth("stats", "--no-stream", "-a", "--no-trunc").stdout.splitlines()
    assert lines[0].startswith("CONTAINER ID") and len(lines) == 3
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["down"][0] == stopped and rows["up"][0] == running
    assert " ".join(rows["down"][2:]) == "0.00% 0B / 0B 0.00% 0B / 0B 0B / 0B 0"
    entry = json.loads(berth("stats", "--no-stream", "--format", "json", "up").stdout)
    assert sorted(entry) == ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"]
    assert (entry["Container"], entry["ID"], entry["Name"], entry["PIDs"]) == ("up", running[:12], "up", "1")
    out = berth("stats", "--no-stream", "--format", "{{.Name}}: {{.PIDs}}", "up", "down").stdout
    assert out == "up: 1\ndown: 0\n"
    out = berth("stats", "--no-stream", "--format", "table {{.Container}}\t{{.MemPerc}}", "up").stdout
    assert out.splitlines()[0].split() == ["CONTAINER", "MEM", "%"]


@needs_root
def test_unknown_container(berth):
    p = berth("stats", "--no-stream", "nosuch", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == "Error response from daemon: No such container: nosuch"
    assert p.stdout == ""


@needs_root
def test_streaming_redraws_each_second(berth, ctr):
    ctr("--name", "streamed")
    cmd = [*berth_argv(berth.root), "stats", "streamed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        text, deadline = b"", time.monotonic() + 20
        while text.count(b"CONTAINER ID") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                text += os.read(proc.stdout.fileno(), 65536)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    tables = text.decode().split("CONTAINER ID")[1:]
    assert len(tables) >= 3
    assert "\033[" not in text.decode()          # not a terminal: plain tables, no redraw codes
    for table in tables:
        assert "streamed" in table


@needs_root
def test_api_json_shape(berth, ctr):
    from berth.engine import Engine

    cid = ctr("--memory", "32m", "--name", "api")
    engine = Engine(berth.root)
    try:
        (frame,) = list(cstats.stats(engine.containers, "api", stream=False, interval=0.2))
        stream = cstats.stats(engine.containers, "api", interval=0.1)
        first, second = next(stream), next(stream)
        stream.close()
        stopped = ctr(run=False)
        (empty,) = list(cstats.stats(engine.containers, stopped, stream=False))
    finally:
        engine.close()
    assert list(frame)[:11] == ["read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats",
                                "cpu_stats", "precpu_stats", "memory_stats", "name", "id"]
    assert (frame["name"], frame["id"]) == ("/api", cid)
    assert frame["memory_stats"]["limit"] == 32 * 1024 * 1024
    assert frame["pids_stats"] == {"current": 1}
    assert frame["preread"] != cstats.ZERO_TIME and frame["precpu_stats"]["system_cpu_usage"] > 0
    assert frame["cpu_stats"]["online_cpus"] == os.cpu_count()
    assert frame["cpu_stats"]["system_cpu_usage"] > frame["precpu_stats"]["system_cpu_usage"]
    assert "networks" not in frame               # only a loopback: nothing to report, as Docker
    assert first["preread"] == cstats.ZERO_TIME and "system_cpu_usage" not in first["precpu_stats"]
    assert second["preread"] == first["read"]
    assert empty["read"] == cstats.ZERO_TIME and empty["memory_stats"] == {} and empty["pids_stats"] == {}
    assert empty["blkio_stats"]["io_service_bytes_recursive"] is None


# -- parsers and docker/cli's arithmetic (pure) ------------------------------------------


def test_parsers():
    assert cstats.parse_proc_stat("cpu  100 0 50 1000 10 0 5 7 0 0\ncpu0 1 2 3 4 5 6 7\ncpu1 1 2 3 4 5 6 7\n"
                                  "intr 1 2\n") == (1165 * 10_000_000, 2)
    blkio = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Total 12288\nTotal 12288\n"
    assert cstats.parse_blkio(blkio)[:2] == [{"major": 8, "minor": 0, "op": "Read", "value": 4096},
                                             {"major": 8, "minor": 0, "op": "Write", "value": 8192}]
    assert cstats.parse_io_stat("") is None
    assert cstats.parse_io_stat("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n") == [
        {"major": 259, "minor": 0, "op": "read", "value": 10},
        {"major": 259, "minor": 0, "op": "write", "value": 20}]
    net = ("Inter-|   Receive                            |  Transmit\n"
           " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo "
           "colls carrier compressed\n"
           "    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0"
           "     0       0          0\n"
           "  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0"
           "     0       0          0\n")
    assert cstats.parse_net_dev(net) == {"eth0": {"rx_bytes": 1500, "rx_packets": 10, "rx_errors": 1,
                                                  "rx_dropped": 2, "tx_bytes": 700, "tx_packets": 5,
                                                  "tx_errors": 3, "tx_dropped": 4}}
    assert cstats.parse_limit("max\n") == cstats.MAX_UINT64
    assert cstats.parse_meminfo_total("MemTotal:       16384 kB\n") == 16 * 1024 * 1024


def test_docker_cli_arithmetic():
    v1 = {"usage": 10_000, "stats": {"total_inactive_file": 3_000, "inactive_file": 1}}
    v2 = {"usage": 10_000, "stats": {"inactive_file": 4_000}}
    assert cp_stats.calculate_mem_usage_unix_no_cache(v1) == 7_000
    assert cp_stats.calculate_mem_usage_unix_no_cache(v2) == 6_000
    assert cp_stats.calculate_mem_usage_unix_no_cache({"usage": 5, "stats": {"inactive_file": 9}}) == 5
    pre = {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000}
    cur = {"cpu_usage": {"total_usage": 2_000}, "system_cpu_usage": 20_000, "online_cpus": 4}
    assert cp_stats.calculate_cpu_percent_unix(pre, cur) == pytest.approx(40.0)
    entry = cp_stats.stats_entry("c", {
        "name": "/web", "id": "a" * 64, "memory_stats": {"usage": 2 * 1024 * 1024, "limit": 8 * 1024 * 1024,
                                                         "stats": {"inactive_file": 0}},
        "networks": {"eth0": {"rx_bytes": 1_500, "tx_bytes": 2_500_000}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 4096},
                                                       {"op": "Write", "value": 1_000_000}]},
        "cpu_stats": cur, "precpu_stats": pre, "pids_stats": {"current": 7}})
    assert cp_stats.stats_row(entry, trunc=True) == {
        "Container": "c", "Name": "web", "ID": "a" * 12, "CPUPerc": "40.00%", "MemUsage": "2MiB / 8MiB",
        "MemPerc": "25.00%", "NetIO": "1.5kB / 2.5MB", "BlockIO": "4.1kB / 1MB", "PIDs": "7"}
    invalid = cp_stats.stats_row(cp_stats.StatsEntry(container="gone", invalid=True), trunc=True)
    assert (invalid["Name"], invalid["CPUPerc"], invalid["MemUsage"]) == ("--", "--", "-- / --")


HYBRID_MOUNTS = ({"memory": ("/sys/fs/cgroup/memory", "/"), "cpu,cpuacct": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
                  "pids": ("/sys/fs/cgroup/pids", "/"), "name=systemd": ("/sys/fs/cgroup/systemd", "/")},
                 ("/sys/fs/cgroup/unified", "/"))


def test_cgroup_placement():
    own = "4:memory:/berth/abc\n3:cpu,cpuacct:/berth/abc\n2:pids:/berth/abc\n1:name=systemd:/berth/abc\n0::/berth/abc\n"
    dirs = cstats.place_cgroups(HYBRID_MOUNTS, own)
    assert not dirs.unified
    assert dirs.controller("memory") == "/sys/fs/cgroup/memory/berth/abc"
    assert dirs.controller("cpuacct") == dirs.controller("cpu") == "/sys/fs/cgroup/cpu,cpuacct/berth/abc"
    v2 = cstats.place_cgroups(({}, ("/sys/fs/cgroup", "/")), "0::/berth/abc\n")
    assert v2.unified and v2.v2 == "/sys/fs/cgroup/berth/abc"
    nested = cstats.place_cgroups(({}, ("/sys/fs/cgroup", "/outer")), "0::/outer/berth/abc\n")
    assert nested.v2 == "/sys/fs/cgroup/berth/abc"


def write_files(d, files: dict):
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


def test_cgroup_v2_counters(tmp_path):
    write_files(tmp_path, {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\n"
                    "throttled_usec 20\n",
        "memory.current": "4096000\n", "memory.max": "max\n",
        "memory.stat": "anon 1000\nfile 2000\ninactive_file 1024\nworkingset_refault_anon 3\n",
        "memory.events": "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n",
        "pids.current": "3\n", "pids.max": "max\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"})
    cpu, memory, pids, blkio = cstats.read_counters(cstats.CgroupDirs({}, str(tmp_path)), machine=1 << 30)
    assert cpu == {"cpu_usage": {"total_usage": 1_500_000, "usage_in_kernelmode": 500_000,
                                 "usage_in_usermode": 1_000_000},
                   "throttling_data": {"periods": 4, "throttled_periods": 1, "throttled_time": 20_000}}
    assert memory["usage"] == 4096000 and memory["limit"] == 1 << 30 and memory["failcnt"] == 2
    assert "max_usage" not in memory                      # cgroup v2 has none
    assert memory["stats"]["inactive_file"] == 1024 and memory["stats"]["workingset_refault"] == 0
    assert list(memory["stats"]) == sorted(memory["stats"])
    assert pids == {"current": 3}
    assert blkio["io_service_bytes_recursive"] == [{"major": 8, "minor": 0, "op": "read", "value": 4096},
                                                   {"major": 8, "minor": 0, "op": "write", "value": 8192}]
    assert blkio["io_serviced_recursive"] is None
    used = cp_stats.calculate_mem_usage_unix_no_cache(memory)
    assert used == 4096000 - 1024


def test_cgroup_v1_counters(tmp_path):
    mem, acct, pids_dir, blk = (tmp_path / n for n in ("memory", "cpuacct", "pids", "blkio"))
    write_files(mem, {"memory.usage_in_bytes": "8192\n", "memory.max_usage_in_bytes": "9000\n",
                      "memory.limit_in_bytes": "9223372036854771712\n", "memory.failcnt": "0\n",
                      "memory.stat": "cache 100\nrss 200\ntotal_inactive_file 4096\n"})
    write_files(acct, {"cpuacct.usage": "123456\n", "cpuacct.usage_percpu": "100000 23456 \n",
                       "cpuacct.stat": "user 3\nsystem 2\n", "cpu.stat": "nr_periods 0\nnr_throttled 0\n"
                       "throttled_time 0\n"})
    write_files(pids_dir, {"pids.current": "2\n", "pids.max": "100\n"})
    write_files(blk, {"blkio.throttle.io_service_bytes": "8:0 Read 512\n8:0 Write 1024\n8:0 Total 1536\nTotal 1536\n",
                      "blkio.throttle.io_serviced": "8:0 Read 1\n8:0 Write 2\nTotal 3\n"})
    dirs = cstats.CgroupDirs({"memory": str(mem), "cpuacct": str(acct), "cpu": str(acct), "pids": str(pids_dir),
                              "blkio": str(blk)}, None)
    cpu, memory, pids, blkio = cstats.read_counters(dirs, machine=1 << 30)
    assert cpu["cpu_usage"] == {"total_usage": 123456, "percpu_usage": [100000, 23456],
                                "usage_in_kernelmode": 20_000_000, "usage_in_usermode": 30_000_000}
    assert memory["limit"] == 1 << 30 and memory["max_usage"] == 9000 and "failcnt" not in memory
    assert len(memory["stats"]) == len(cstats.V1_MEMORY_KEYS) and memory["stats"]["cache"] == 100
    assert pids == {"current": 2, "limit": 100}
    assert cp_stats.calculate_block_io(blkio) == (512, 1024)
    assert blkio["sectors_recursive"] == []
    assert cp_stats.calculate_mem_usage_unix_no_cache(memory) == 8192 - 4096
