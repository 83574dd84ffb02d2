"""Fixtures shared by the in-process server tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conversations.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url.rsplit("/", 1)[0] + f"/{abs(hash(request.node.name)) % 15 + 1}"  # a database per test
