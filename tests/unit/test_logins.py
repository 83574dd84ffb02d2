"""The sign-in store's three backends behave alike: expiry on the store's clock, one-time take,
counters, and records that are copies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grok_chat_mcp.store.logins import Logins, MemoryLogins, RedisLogins, SQLiteLogins, open_logins
from tests.server.oauth_flow import Clock

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Logins, Clock]]:
    clock = Clock()
    logins: Logins
    if request.param == "memory":
        logins = MemoryLogins(clock)
    elif request.param == "sqlite":
        logins = SQLiteLogins(tmp_path / "logins.db", clock)
    else:
        url = request.getfixturevalue("redis_url")
        logins = RedisLogins.from_url(url, clock)
        await logins.delete("client", "a")
        await logins.delete("failures", "x")
    yield logins, clock
    await logins.aclose()


async def test_put_get_expire(store: tuple[Logins, Clock]) -> None:
    logins, clock = store
    await logins.put("client", "a", {"name": "A", "nested": {"n": 1}}, ttl=60)
    record = await logins.get("client", "a")
    assert record is not None and record["name"] == "A" and record["expires_at"] == clock.now + 60
    record["nested"]["n"] = 2  # a copy: changing it changes nothing stored
    again = await logins.get("client", "a")
    assert again is not None and again["nested"] == {"n": 1}
    clock.now += 61
    assert await logins.get("client", "a") is None


async def test_take_is_once(store: tuple[Logins, Clock]) -> None:
    logins, _ = store
    await logins.put("code", "c", {"grant": "g"}, ttl=60)
    assert (await logins.take("code", "c") or {}).get("grant") == "g"
    assert await logins.take("code", "c") is None
    await logins.put("code", "d", {}, ttl=60)
    await logins.delete("code", "d")
    assert await logins.get("code", "d") is None


async def test_counters(store: tuple[Logins, Clock]) -> None:
    logins, _ = store
    assert await logins.count("failures", "x", 60, step=0) == 0
    assert [await logins.count("failures", "x", 60) for _ in range(3)] == [1, 2, 3]
    assert await logins.count("failures", "x", 60, step=0) == 3


def test_open_logins_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_logins("memory"), MemoryLogins)
    assert isinstance(open_logins("off"), MemoryLogins)
    assert isinstance(open_logins(f"sqlite:///{tmp_path}/x.db"), SQLiteLogins)
    assert isinstance(open_logins("redis://127.0.0.1:1/0"), RedisLogins)
    with pytest.raises(ValueError, match="absolute"):
        open_logins("sqlite://relative.db")
    assert (tmp_path / "x.db").stat().st_mode & 0o077 == 0
