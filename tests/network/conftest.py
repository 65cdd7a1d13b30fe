"""Fixtures for the network tests."""

import pytest

from nettest import wait_for_leftovers_gone


@pytest.fixture
def bb(berth, busybox_tar, root):
    """The busybox image; afterwards every container and network of the root is
    removed, and nothing of the root may remain in the kernel."""
    berth("import", "-c", 'CMD ["sh"]', busybox_tar, "bb")
    yield "bb"
    ids = berth("ps", "-aq", check=False).stdout.split()
    if ids:
        berth("rm", "-f", *ids, check=False)
    berth("network", "prune", "-f", check=False)
    assert wait_for_leftovers_gone(root) == []
