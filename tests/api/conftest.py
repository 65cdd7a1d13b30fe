"""Fixtures for the API tests: a daemon per test over its own state root."""

import pytest

from apitest import ApiDaemon, berth_cli, clean_root


@pytest.fixture
def api(root, tmp_path, busybox_tar):
    """A running `berth daemon` whose root holds busybox:latest; afterwards the
    daemon is stopped and every container and network of the root removed."""
    berth_cli(root, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    daemon = ApiDaemon(root, tmp_path)
    try:
        yield daemon.start()
    finally:
        daemon.stop()
        clean_root(root)


@pytest.fixture
def client(api):
    """docker-py's client of the test's daemon."""
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url=api.host, timeout=120)
    yield c
    c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report ends with its daemon's log (requests, errors, tracebacks)."""
    outcome = yield
    report = outcome.get_result()
    daemon = getattr(item, "funcargs", {}).get("api")
    if report.failed and isinstance(daemon, ApiDaemon) and daemon.log.exists():
        report.sections.append(("berth daemon log", daemon.log.read_text()[-20000:]))
