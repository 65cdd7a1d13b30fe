"""Fixtures for the layer tests."""

import pytest


@pytest.fixture
def sandbox(tmp_path):
    """A target directory with a canary beside it: whatever escapes the target lands here."""
    target = tmp_path / "target"
    target.mkdir()
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "file").write_text("canary")
    return target
