"""HEALTHCHECK: probes run by the supervisor (and its idle loop), State.Health,
`ps` status and filter, events, and the flags merged with the image's."""

import json
import time

from berth.image.config import parse_time
from berthtest import supervisor_phase, wait_for


def health(berth, ref) -> dict | None:
    return json.loads(berth("inspect", "-f", "{{json .State}}", ref).stdout).get("Health")


def status(berth, ref) -> str | None:
    return (health(berth, ref) or {}).get("Status")


def ps_status(berth, ref) -> str:
    out = berth("ps", "-a", "--filter", f"name={ref}", "--format", "{{.Names}} {{.Status}}").stdout
    return "".join(line for line in out.splitlines(keepends=True) if line.split()[0] == ref)


def names(berth, *filters) -> set[str]:
    args = [a for f in filters for a in ("--filter", f)]
    return set(berth("ps", "-a", *args, "--format", "{{.Names}}").stdout.split())


def events(berth, since: float, name: str) -> list[tuple[float, str]]:
    out = berth("events", "--since", f"{since:.3f}", "--until", f"{time.time() + 1:.3f}", "--filter",
                f"container={name}", "--format", "json").stdout
    return [(m["timeNano"] / 1e9, m["Action"]) for m in map(json.loads, out.splitlines())]


def test_a_passing_check_makes_the_container_healthy(berth, bb):
    since = time.time() - 1
    berth("run", "-d", "--name", "ok", "--health-cmd", "echo fine", "--health-interval", "500ms", bb,
          "sleep", "60")
    berth("run", "-d", "--name", "slow", "--health-cmd", "true", "--health-interval", "1m", bb, "sleep", "60")
    berth("run", "-d", "--name", "plain", bb, "sleep", "60")
    wait_for(lambda: status(berth, "ok") == "healthy", timeout=15)
    assert berth("inspect", "-f", "{{.State.Health.Status}}", "ok").stdout == "healthy\n"
    assert " (healthy)" in ps_status(berth, "ok") and ps_status(berth, "ok").startswith("ok Up ")
    h = health(berth, "ok")
    assert h["FailingStreak"] == 0 and 1 <= len(h["Log"]) <= 5
    entry = h["Log"][-1]
    assert list(entry) == ["Start", "End", "ExitCode", "Output"]
    assert (entry["ExitCode"], entry["Output"]) == (0, "fine\n")
    assert parse_time(entry["Start"]) <= parse_time(entry["End"])
    # The first probe comes only after an interval: a minute here.
    assert status(berth, "slow") == "starting"
    assert ps_status(berth, "slow").endswith("(health: starting)\n")
    # Docker shows no Health for a container without a healthcheck.
    assert health(berth, "plain") is None
    assert "(" not in ps_status(berth, "plain")
    assert names(berth, "health=healthy") == {"ok"}
    assert names(berth, "health=starting") == {"slow"}
    assert names(berth, "health=none") == {"plain"}
    assert names(berth, "health=unhealthy") == set()
    assert names(berth, "health=healthy", "health=starting") == {"ok", "slow"}
    bad = berth("ps", "--filter", "health=sick", check=False)
    assert bad.returncode != 0 and "Unrecognised filter value for health: sick" in bad.stderr
    actions = [a for _, a in events(berth, since, "ok")]
    assert actions.count("health_status: healthy") == 1
    assert "exec_create: /bin/sh -c echo fine" in actions and "exec_die" in actions


def test_a_failing_check_makes_it_unhealthy_after_the_retries(berth, bb):
    since = time.time() - 1
    berth("run", "-d", "--name", "bad", "--health-cmd", "echo out; echo err >&2; exit 3",
          "--health-interval", "300ms", "--health-retries", "3", bb, "sleep", "60")
    wait_for(lambda: status(berth, "bad") == "unhealthy", timeout=15)
    h = health(berth, "bad")
    assert h["FailingStreak"] >= 3
    assert [e["ExitCode"] for e in h["Log"]] == [3] * len(h["Log"])
    assert {e["Output"] for e in h["Log"]} == {"out\nerr\n"}
    assert ps_status(berth, "bad").endswith("(unhealthy)\n")
    wait_for(lambda: len(health(berth, "bad")["Log"]) == 5 and health(berth, "bad")["FailingStreak"] > 5,
             timeout=15)
    assert len(health(berth, "bad")["Log"]) == 5      # the last five only
    actions = [a for _, a in events(berth, since, "bad")]
    assert actions.count("health_status: unhealthy") == 1 and "health_status: healthy" not in actions
    # The third failure in a row, not the first, turned it unhealthy.
    dies = [t for t, a in events(berth, since, "bad") if a == "exec_die"]
    turned = next(t for t, a in events(berth, since, "bad") if a == "health_status: unhealthy")
    assert len([t for t in dies if t <= turned]) == 3


def test_a_check_that_runs_too_long_is_killed(berth, bb):
    berth("run", "-d", "--name", "hung", "--health-cmd", "echo started; sleep 30", "--health-timeout", "300ms",
          "--health-interval", "300ms", "--health-retries", "1", bb, "sleep", "60")
    wait_for(lambda: status(berth, "hung") == "unhealthy", timeout=15)
    entry = health(berth, "hung")["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms): started\n"
    assert parse_time(entry["End"]) - parse_time(entry["Start"]) < 3


def test_failures_in_the_start_period_do_not_count(berth, bb):
    since = time.time() - 1
    berth("run", "-d", "--name", "warming", "--health-cmd", "exit 1", "--health-interval", "300ms",
          "--health-start-interval", "300ms", "--health-start-period", "3s", "--health-retries", "1", bb,
          "sleep", "60")
    started = parse_time(berth("inspect", "-f", "{{.State.StartedAt}}", "warming").stdout.strip())
    h = wait_for(lambda: (h := health(berth, "warming")) and h["Log"] and h, timeout=15)
    if time.time() - started < 2.5:     # still well within the start period
        assert (h["Status"], h["FailingStreak"], h["Log"][0]["ExitCode"]) == ("starting", 0, 1)
    wait_for(lambda: status(berth, "warming") == "unhealthy", timeout=15)
    turned = next(t for t, a in events(berth, since, "warming") if a == "health_status: unhealthy")
    assert turned >= started + 3
    probes = [t for t, a in events(berth, since, "warming") if a == "exec_die" and t < turned]
    assert len(probes) >= 3      # failures while starting, none counted


def test_an_image_healthcheck_runs_and_flags_override_or_disable_it(berth, bb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM bb\nHEALTHCHECK --interval=400ms --timeout=5s --retries=2 '
                                    'CMD ["sh", "-c", "echo from the image"]\n')
    berth("build", "-q", "-t", "checked", str(ctx))
    berth("run", "-d", "--name", "built", "checked", "sleep", "60")
    berth("run", "-d", "--name", "tuned", "--health-interval", "1m", "--health-retries", "7", "checked",
          "sleep", "60")
    berth("run", "-d", "--name", "off", "--no-healthcheck", "checked", "sleep", "60")
    wait_for(lambda: status(berth, "built") == "healthy", timeout=15)
    assert health(berth, "built")["Log"][-1]["Output"] == "from the image\n"
    config = lambda ref: json.loads(berth("inspect", "-f", "{{json .Config.Healthcheck}}", ref).stdout)  # noqa: E731
    test = ["CMD", "sh", "-c", "echo from the image"]
    assert config("built") == {"Test": test, "Interval": 400_000_000, "Timeout": 5_000_000_000, "Retries": 2}
    # The container's fields win; those it leaves zero are the image's.
    assert config("tuned") == {"Test": test, "Interval": 60_000_000_000, "Timeout": 5_000_000_000,
                               "Retries": 7}
    assert status(berth, "tuned") == "starting"
    # NONE is merged like any Test (moby's merge): the durations stay, unused.
    assert config("off") == {"Test": ["NONE"], "Interval": 400_000_000, "Timeout": 5_000_000_000, "Retries": 2}
    time.sleep(1)
    assert health(berth, "off") is None and "(" not in ps_status(berth, "off")
    assert names(berth, "health=none") == {"off"}
    bad = berth("run", "-d", "--no-healthcheck", "--health-cmd", "true", "checked", check=False)
    assert bad.returncode != 0 and "--no-healthcheck conflicts with --health-* options" in bad.stderr
    bad = berth("create", "--health-interval", "5x", "checked", check=False)
    assert bad.returncode != 0 and 'invalid argument "5x" for "--health-interval" flag' in bad.stderr


def test_health_outlives_the_hand_over_and_stops_with_the_container(berth, bb):
    since = time.time() - 1
    cid = berth("run", "-d", "--name", "long", "--health-cmd", "true", "--health-interval", "300ms", bb,
                "sleep", "60").stdout.strip()
    wait_for(lambda: supervisor_phase(berth.root, cid) == "pump", timeout=10)
    handed_over = time.time()
    wait_for(lambda: status(berth, "long") == "healthy", timeout=15)
    # Probes keep coming from the idle loop, one at a time.
    wait_for(lambda: sum(parse_time(e["Start"]) > handed_over for e in health(berth, "long")["Log"]) >= 3,
             timeout=15)
    log = health(berth, "long")["Log"]
    for earlier, later in zip(log, log[1:]):
        assert parse_time(later["Start"]) >= parse_time(earlier["End"])
    assert supervisor_phase(berth.root, cid) == "pump"
    berth("stop", "-t", "1", "long")
    after_stop = health(berth, "long")
    assert after_stop["Status"] == "healthy"        # kept, as Docker does
    assert ps_status(berth, "long").startswith("long Exited (137)") and "healthy" not in ps_status(berth, "long")
    time.sleep(1)
    assert health(berth, "long") == after_stop      # no probe after the stop
    berth("start", "long")
    wait_for(lambda: [a for _, a in events(berth, since, "long")].count("health_status: healthy") == 2,
             timeout=15)
    assert status(berth, "long") == "healthy"
    berth("rm", "-f", "long")
