"""Budgets: the setting, the windows, the refusal, and the spend each store keeps (issue 31)."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from grok_chat_mcp.budget import Budget, Budgets, parse, window
from grok_chat_mcp.config import load_settings
from grok_chat_mcp.results import Cost, cost
from grok_chat_mcp.store import open_store
from grok_chat_mcp.store.memory import MemoryStore
from grok_chat_mcp.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
OWNER = "owner-a"
#: The stand-in's cost per call: 37,756,000 ticks = $0.0037756.
CALL = Cost(37_756_000, estimated=False, priority=False)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, text: str) -> None:
        self.now = at(text)

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5usd/day", Budget(5.0, "day")),
        ("0.05USD / hour", Budget(0.05, "hour")),
        (" .5usd/month ", Budget(0.5, "month")),
        ("0usd/day", Budget(0.0, "day")),
    ],
)
def test_the_setting_parses(text: str, expected: Budget) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["5", "5eur/day", "5usd/week", "-1usd/day", "usd/day", "5usd/day/x", ""])
def test_a_setting_that_does_not_parse_says_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not <amount>usd/<hour\|day\|month> \(for example 5usd/day\)"):
        parse(text)


def test_windows_are_utc_hours_days_and_months() -> None:
    now = at("2026-12-31T23:59:30")
    assert window("hour", now).key == "hour:2026-12-31T23"
    assert window("hour", now).reset == datetime(2027, 1, 1, tzinfo=UTC)
    assert window("day", now).key == "day:2026-12-31"
    assert window("day", now).reset == datetime(2027, 1, 1, tzinfo=UTC)
    assert window("month", now).key == "month:2026-12"
    assert window("month", now).reset == datetime(2027, 1, 1, tzinfo=UTC)
    assert window("month", at("2027-02-10T00:00:00")).reset == datetime(2027, 3, 1, tzinfo=UTC)


async def test_calls_are_refused_once_the_window_spend_reaches_the_cap() -> None:
    clock = Clock("2026-12-07T21:40:00")
    budgets = Budgets(parse("0.01usd/day"), MemoryStore(clock=clock), clock)
    assert await budgets.refusal(OWNER) is None
    assert await budgets.record(OWNER, CALL) == [
        "budget: $0.006224 of $0.01 per day left; resets 2026-12-08T00:00:00Z (in 2 h 20 min)."
    ]
    assert await budgets.refusal(OWNER) is None
    await budgets.record(OWNER, CALL)
    assert await budgets.refusal(OWNER) is None  # $0.0075512 spent: under the cap, so the call goes
    assert await budgets.record(OWNER, CALL) == [
        "budget: $0.01 per day reached ($0.011327 spent); further calls are refused until "
        "2026-12-08T00:00:00Z (in 2 h 20 min)."
    ]
    clock.now += 3600
    assert await budgets.refusal(OWNER) == (
        "Budget reached: this server allows $0.01 per day per token (GROK_BUDGET=0.01usd/day), and "
        "$0.011327 has been spent in the current day. Nothing was sent. The budget resets at "
        "2026-12-08T00:00:00Z (in 1 h 20 min): do not retry before then, or ask whoever runs this "
        "server to raise GROK_BUDGET."
    )
    assert await budgets.refusal("owner-b") is None  # per owner
    clock.now = at("2026-12-08T00:00:00")
    assert await budgets.refusal(OWNER) is None  # a new window


async def test_short_waits_are_said_in_minutes_or_seconds() -> None:
    clock = Clock("2026-12-07T21:59:15")
    budgets = Budgets(parse("0usd/hour"), MemoryStore(clock=clock), clock)
    refusal = await budgets.refusal(OWNER)
    assert refusal is not None and "2026-12-07T22:00:00Z (in 45 s)" in refusal
    clock.now = at("2026-12-01T00:00:00")
    refusal = await Budgets(parse("0usd/month"), MemoryStore(clock=clock), clock).refusal(OWNER)
    assert refusal is not None and "2027-01-01T00:00:00Z (in 31 d 0 h)" in refusal


async def test_no_budget_refuses_nothing_and_says_nothing() -> None:
    budgets = Budgets.from_setting(None, MemoryStore())
    assert await budgets.refusal(OWNER) is None
    assert await budgets.record(OWNER, CALL) == []
    assert await budgets.status(OWNER) == "none"


async def test_a_mistyped_budget_refuses_every_call() -> None:
    budgets = Budgets.from_setting("5 dollars", None)
    refusal = await budgets.refusal(OWNER)
    assert refusal is not None
    assert refusal.startswith("Budget setting error: GROK_BUDGET='5 dollars' is not <amount>usd/")
    assert "Nothing was sent" in refusal


async def test_a_call_without_a_cost_is_not_counted_but_told_what_is_left() -> None:
    clock = Clock("2026-12-07T12:00:00")
    budgets = Budgets(parse("1usd/day"), None, clock)  # GROK_STORE=off: counted in this process
    assert await budgets.record(OWNER, None) == [
        "budget: $1 of $1 per day left; resets 2026-12-08T00:00:00Z (in 12 h 0 min)."
    ]
    assert await budgets.status(OWNER) == "$1 of $1 per day left; resets 2026-12-08T00:00:00Z (in 12 h 0 min)"


async def test_the_store_being_down_refuses_rather_than_guessing() -> None:
    pytest.importorskip("redis")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_store(f"redis://127.0.0.1:{port}/0")
    budgets = Budgets(parse("1usd/day"), store)
    refusal = await budgets.refusal(OWNER)
    assert refusal is not None and refusal.startswith("Budget check failed")
    assert "conversation" not in refusal
    (note,) = await budgets.record(OWNER, CALL)  # the answer still goes back, with the reason
    assert note.startswith("budget: this call's cost could not be counted")
    assert store is not None
    await store.aclose()


# The cost of one answer: reported, or estimated from the tokens and the price table.


def usage(**extra: Any) -> dict[str, Any]:
    return {"prompt_tokens": 1_000, "completion_tokens": 100, **extra}


def test_the_reported_cost_wins() -> None:
    answer = {"model": "grok-4.3", "usage": usage(cost_in_usd_ticks=12_345)}
    assert cost(answer, "grok-4") == Cost(12_345, estimated=False, priority=False)


def test_without_a_reported_cost_the_tokens_are_priced() -> None:
    # grok-4.3's list price: $1.25 in, $0.20 cached in, $2.50 out per million tokens.
    details = {
        "prompt_tokens_details": {"cached_tokens": 400},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }
    answer = {"model": "grok-4.3", "usage": usage(**details)}
    expected_usd = (600 * 1.25 + 400 * 0.20 + 150 * 2.50) / 1e6
    assert cost(answer, "grok-4") == Cost(round(expected_usd * 1e10), estimated=True, priority=False)
    priority = cost({**answer, "service_tier": "priority"}, "grok-4")
    assert priority == Cost(2 * round(expected_usd * 1e10), estimated=True, priority=True)
    long_prompt = cost(
        {"model": "grok-4.7", "usage": {"prompt_tokens": 200_000, "completion_tokens": 0}}, "x"
    )
    assert long_prompt is not None and long_prompt.usd == pytest.approx(200_000 * 4.00 / 1e6)  # twice $2
    assert cost({"model": "grok-9", "usage": usage()}, "grok-9") is None  # no price known
    assert cost({"model": "grok-4.3"}, "grok-4") is None  # no usage


# The spend each store keeps.


async def test_memory_counts_per_owner_and_window_and_forgets_ended_windows() -> None:
    clock = Clock("2026-12-07T12:00:00")
    store = MemoryStore(clock=clock)
    assert await store.spend(OWNER, "day:2026-12-07", 5, at("2026-12-08T00:00:00")) == 5
    assert await store.spend(OWNER, "day:2026-12-07", 7, at("2026-12-08T00:00:00")) == 12
    assert await store.spent("owner-b", "day:2026-12-07") == 0
    clock.now = at("2026-12-08T00:00:01")
    await store.spend(OWNER, "day:2026-12-08", 1, at("2026-12-09T00:00:00"))
    assert await store.spent(OWNER, "day:2026-12-07") == 0


async def test_sqlite_keeps_the_count_across_restarts_and_processes_sharing_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spend.db"
    first, second = SQLiteStore(path), SQLiteStore(path)  # two processes on one file
    until = at("2099-01-01T00:00:00")

    async def add(store: SQLiteStore) -> None:
        for _ in range(10):
            await store.spend(OWNER, "day:x", 3, until)

    async with anyio.create_task_group() as tg:
        tg.start_soon(add, first)
        tg.start_soon(add, second)
    await first.aclose()
    await second.aclose()
    restarted = open_store(f"sqlite://{path}")
    assert restarted is not None
    assert await restarted.spent(OWNER, "day:x") == 60
    await restarted.aclose()


async def test_sqlite_forgets_ended_windows(tmp_path: Path) -> None:
    clock = Clock("2026-12-08T00:00:01")
    store = SQLiteStore(tmp_path / "spend.db", clock=clock)
    await store.spend(OWNER, "day:2026-12-07", 9, at("2026-12-08T00:00:00"))
    await store.spend(OWNER, "day:2026-12-08", 1, at("2026-12-09T00:00:00"))
    assert await store.spent(OWNER, "day:2026-12-07") == 0
    assert await store.spent(OWNER, "day:2026-12-08") == 1
    await store.aclose()


async def test_redis_replicas_add_up_exactly_under_concurrent_calls(redis_url: str) -> None:
    pytest.importorskip("redis")
    from grok_chat_mcp.store.redis import RedisStore

    replicas = [RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)]
    owner = f"owner-{uuid.uuid4().hex}"
    until = at("2099-01-01T00:00:00")

    async def add(store: RedisStore) -> None:
        for _ in range(25):
            await store.spend(owner, "day:x", 37_756_000, until)

    async with anyio.create_task_group() as tg:
        for store in replicas:
            for _ in range(2):
                tg.start_soon(add, store)
    assert await replicas[1].spent(owner, "day:x") == 100 * 37_756_000
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    ttl = await client.ttl(f"grok-chat-mcp:{{conversations}}:spend:{owner}:day:x")
    assert ttl > 0  # the count goes when its window has ended
    await client.aclose()
    for store in replicas:
        await store.aclose()


def test_the_settings(tmp_path: Path) -> None:
    env = tmp_path / "none.env"
    settings = load_settings({"GROK_BUDGET": "5usd/day", "GROK_CONFIRM_CALLS": "1"}, env)
    assert (settings.budget, settings.confirm_calls, settings.warnings) == ("5usd/day", True, ())
    settings = load_settings({"GROK_BUDGET": "5/day", "GROK_CONFIRM_CALLS": "maybe"}, env)
    assert settings.budget == "5/day"  # kept: the server refuses every call until it is fixed
    assert settings.confirm_calls is False
    assert settings.replaced["GROK_BUDGET"].endswith("every call is refused until it is fixed")
    assert "GROK_CONFIRM_CALLS" in settings.replaced
    assert load_settings({}, env).budget is None


async def test_check_shows_the_budget_and_what_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from grok_chat_mcp.cli import check
    from grok_chat_mcp.config import Settings
    from grok_chat_mcp.store import owner_of

    clock = Clock("2026-12-07T20:45:00")
    monkeypatch.setattr("grok_chat_mcp.budget.wall_clock", clock)
    path = tmp_path / "grok.db"
    store = SQLiteStore(path, clock=clock)
    await store.spend(
        owner_of("sk-check-token"), "hour:2026-12-07T20", 2 * CALL.ticks, at("2026-12-07T21:00:00")
    )
    await store.aclose()
    settings = Settings(api_token="sk-check-token", budget="0.01usd/hour", store=f"sqlite://{path}")
    await anyio.to_thread.run_sync(check, settings)  # --check runs its own event loop
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "GROK_BUDGET" in line]
    assert "$0.002449 of $0.01 per hour left; resets 2026-12-07T21:00:00Z (in 15 min)" in line
    await anyio.to_thread.run_sync(check, Settings(api_token="t", budget="0.01usd/hour"))
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "GROK_BUDGET" in line]
    assert "$0.01 per hour; the spend is counted in the server's memory (GROK_STORE=memory)" in line
