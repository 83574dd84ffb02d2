"""``--check`` says whether the store can be used: Redis is asked, not assumed (issue 27, item 3)."""

from __future__ import annotations

import socket
from pathlib import Path

from grok_chat_mcp import cli


def test_an_unreachable_redis_is_reported_with_what_it_costs() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    problem = cli._store_problem(f"redis://:secret@127.0.0.1:{port}/0")
    assert problem is not None and "is unreachable" in problem and "not remembered" in problem
    assert "secret" not in problem


def test_a_reachable_store_has_no_problem(redis_url: str, tmp_path: Path) -> None:
    assert cli._store_problem(redis_url) is None
    assert cli._store_problem(f"sqlite:///{tmp_path / 'c.db'}") is None
    assert cli._store_problem("memory") is None and cli._store_problem("off") is None
