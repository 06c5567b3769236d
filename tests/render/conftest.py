"""Fixtures of the render tests: one tiny replica bundle per session (`tests/render/replica.py`)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_replica(tmp_path_factory) -> str:
    """URL of a complete tiny replica bundle (built once per session, ~15 s on one core)."""
    from tests.render.replica import build_tiny_replica

    return build_tiny_replica(str(tmp_path_factory.mktemp("replica") / "tiny"))
