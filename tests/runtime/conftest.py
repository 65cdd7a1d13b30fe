"""Fixtures for the runtime tests (helpers in runtime_testlib)."""

import os
import shutil

import pytest

from berth.runtime.builtin import linux
from berth.runtime.oci import OCIRuntime
from runtime_testlib import CGROUP_PARENT, Harness, cgroup_dirs, crun_unusable, reap_all


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    """Containers' init processes are re-parented to us, so we can reap them."""
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 0)
        reap_all()


@pytest.fixture(scope="session", autouse=True)
def cgroup_parent():
    """Every test container's cgroup lives below one parent, removed at the end."""
    yield CGROUP_PARENT
    for d in cgroup_dirs(CGROUP_PARENT):
        try:
            os.rmdir(d)
        except OSError:
            pass


@pytest.fixture(params=["builtin", "builtin-cli", "runc", "crun"])
def runtime(request, tmp_path_factory):
    """Every runtime berth drives; "builtin-cli" is the built-in runtime with
    every operation as a command, as another engine would drive it."""
    state_root = tmp_path_factory.mktemp("runtime-state")
    if request.param == "builtin":
        return OCIRuntime.builtin(state_root)
    if request.param == "builtin-cli":
        return OCIRuntime.builtin(state_root, in_process=False)
    if request.param == "runc":
        if shutil.which("runc") is None:
            pytest.skip("runc is not installed")
        return OCIRuntime("runc", state_root=state_root)
    reason = crun_unusable()
    if reason:
        pytest.skip(reason)
    return OCIRuntime("crun", state_root=state_root)


@pytest.fixture
def harness(runtime, tmp_path, busybox_tar):
    h = Harness(runtime, tmp_path, busybox_tar)
    try:
        yield h
    finally:
        problems = h.cleanup()
    assert not problems, problems
