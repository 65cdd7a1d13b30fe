"""The `berth` launcher and its warm CLI server: a command forked by the
server must behave as the same command run in a process of its own."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from berth.cli import launcher
from berthtest import berth_argv, wait_for


@pytest.fixture
def private(tmp_path):
    """A CLI server of the test's own (its directory); stopped at the end."""
    directory = tmp_path / "cli"
    env = {**os.environ, "BERTH_CLI_SERVER_DIR": str(directory)}
    yield env
    launcher.stop_server(env)
    wait_for(lambda: not servers(env), timeout=10)


def servers(env) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"berth.cli.warmserver {env['BERTH_CLI_SERVER_DIR']}/"],
                         capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def workers(server: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(server)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def run(env, *args, root=None, **kw):
    return subprocess.run([*berth_argv(root), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=60, **kw)


def test_commands_run_in_the_server_with_the_clients_exit_code_and_output(private):
    first = run(private, "--version")
    assert first.returncode == 0 and first.stdout.startswith("berth version ")
    [server] = servers(private)
    bad = run(private, "no-such-command")
    assert bad.returncode == 125 and "no-such-command" in bad.stderr and bad.stdout == ""
    assert servers(private) == [server]      # the same warm server served both


def test_the_command_gets_the_clients_cwd_env_umask_and_stdin(private, tmp_path, bb, berth):
    work = tmp_path / "work"
    work.mkdir()
    env = {**private, "BERTH_ROOT": str(berth.root)}
    saved = run(env, "save", "-o", "bb.tar", "bb", cwd=work, preexec_fn=lambda: os.umask(0o077))
    assert saved.returncode == 0, saved.stderr
    assert (work / "bb.tar").stat().st_mode & 0o777 == 0o600
    echoed = run(env, "run", "--rm", "-i", "--network", "none", "bb", "cat", input="through stdin\n")
    assert echoed.stdout == "through stdin\n"
    assert servers(private)


def test_a_signal_to_the_client_reaches_the_command_and_the_client_ends_by_it(private, root):
    proc = subprocess.Popen([*berth_argv(root), "events"], env=private,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        [server] = wait_for(lambda: servers(private))
        [worker] = wait_for(lambda: workers(server))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        wait_for(lambda: not workers(server), timeout=10)
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_client_takes_its_command_with_it(private, root):
    proc = subprocess.Popen([*berth_argv(root), "events"], env=private,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    [server] = wait_for(lambda: servers(private))
    [worker] = wait_for(lambda: workers(server))
    proc.kill()
    proc.wait()
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or Path(f"/proc/{worker}/stat").read_text()
             .split(") ")[1].startswith("Z"), timeout=10)


def test_a_changed_module_retires_the_server(private):
    assert run(private, "--version").returncode == 0
    [old] = servers(private)
    source = Path(launcher.__file__).with_name("output.py")
    st = source.stat()
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        assert run(private, "--version").returncode == 0
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    wait_for(lambda: old not in servers(private), timeout=10)
    assert len(servers(private)) == 1


def test_a_client_in_other_namespaces_runs_the_command_itself(private, bb, berth):
    # The server's network namespace is not the client's: a fork of it
    # would show the host's interfaces to `--network host`.
    p = subprocess.run(["unshare", "--net", *berth_argv(berth.root), "run", "--rm", "--network", "host", "bb",
                        "ls", "/sys/class/net"], env=private, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["lo"]


def test_the_client_s_rlimits_reach_the_container(private, bb, berth):
    p = subprocess.run(["prlimit", "--nofile=777:777", *berth_argv(berth.root), "run", "--rm", "--network",
                        "none", "bb", "sh", "-c", "ulimit -n"], env=private, capture_output=True, text=True,
                       timeout=60)
    assert p.stdout.strip() == "777", p.stderr
    assert servers(private)


def test_switched_off_it_starts_no_server(private):
    p = run({**private, "BERTH_CLI_SERVER": "0"}, "--version")
    assert p.returncode == 0 and p.stdout.startswith("berth version ")
    assert not servers(private)


def test_the_installed_script_runs_the_launcher(tmp_path, private):
    script = tmp_path / "berth"
    script.write_text(launcher.script())
    script.chmod(0o755)
    p = subprocess.run([str(script), "--version"], env=private, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("berth version ")
    assert servers(private)


def test_a_killed_server_is_replaced(private):
    assert run(private, "--version").returncode == 0
    [old] = servers(private)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: old not in servers(private), timeout=10)
    p = run(private, "--version")      # the socket is still there; nobody listens
    assert p.returncode == 0 and p.stdout.startswith("berth version ")
    assert len(servers(private)) == 1 and old not in servers(private)


def test_concurrent_commands_each_get_their_own_worker(private, root):
    procs = [subprocess.Popen([*berth_argv(root), "ps", "-q"], env=private, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert all(code == 0 and out == "" and err == "" for out, err, code in results), results
    assert len(servers(private)) == 1
