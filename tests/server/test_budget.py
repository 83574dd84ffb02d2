"""Spend control through the in-memory MCP client and the stand-in upstream (issue 31): budgets,
service_tier, confirmation before each call, and the cached tool list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import respx
from mcp import Client
from standin.upstream import XAI_USAGE, Upstream

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import TOOLS_TTL_MS, build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, TOKEN, completion, text_of

pytestmark = pytest.mark.anyio
#: What one stand-in answer costs: $0.0037756; three reach a cap of $0.01.
CALL_USD = XAI_USAGE["cost_in_usd_ticks"] / 1e10


class Clock:
    def __init__(self, text: str) -> None:
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


#: The fake clock's day: ahead of the real one, which the stores expire spend windows by.
DAY = (datetime.now(UTC) + timedelta(days=2)).date()
#: When DAY's window resets.
RESET = f"{DAY + timedelta(days=1)}T00:00:00Z"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(f"{DAY}T22:00:00")
    monkeypatch.setattr("grok_chat_mcp.budget.wall_clock", fake)
    return fake


def settings_for(stand_in: Upstream, scenario: str = "ok", **extra: Any) -> Settings:
    return Settings(api_token=TOKEN, base_url=stand_in.url(scenario), max_retries=0, **extra)


async def call(client: Client, **arguments: Any) -> Any:
    return await client.call_tool(TOOL_NAME, {"messages": HELLO, **arguments})


async def test_calls_are_refused_once_a_few_cents_are_spent(stand_in: Upstream, clock: Clock) -> None:
    async with Client(build_server(settings_for(stand_in, budget="0.01usd/day"))) as client:
        notes = [(await call(client)).structured_content["notes"][-1] for _ in range(3)]
        assert notes == [
            f"budget: $0.006224 of $0.01 per day left; resets {RESET} (in 2 h 0 min).",
            f"budget: $0.002449 of $0.01 per day left; resets {RESET} (in 2 h 0 min).",
            "budget: $0.01 per day reached ($0.011327 spent); further calls are refused until "
            f"{RESET} (in 2 h 0 min).",
        ]
        clock.now += 30 * 60
        refused = await call(client)
        assert refused.is_error
        assert text_of(refused) == (
            "Budget reached: this server allows $0.01 per day per token (GROK_BUDGET=0.01usd/day), and "
            "$0.011327 has been spent in the current day. Nothing was sent. The budget resets at "
            f"{RESET} (in 1 h 30 min): do not retry before then, or ask whoever runs this "
            "server to raise GROK_BUDGET."
        )
        assert len(stand_in.requests) == 3  # the refused call sent nothing
        clock.now += 90 * 60  # midnight UTC: a new day
        assert not (await call(client)).is_error
        assert len(stand_in.requests) == 4


async def test_collecting_an_answer_is_never_refused(stand_in: Upstream, clock: Clock) -> None:
    async with Client(build_server(settings_for(stand_in, budget="0.001usd/hour"))) as client:
        first = await call(client)
        conversation_id = first.structured_content["conversation_id"]
        assert "reached" in first.structured_content["notes"][-1]
        assert (await call(client)).is_error
        collected = await client.call_tool(TOOL_NAME, {"conversation_id": conversation_id})
        assert not collected.is_error
        assert collected.structured_content["result"] == first.structured_content["result"]


async def test_a_restart_with_sqlite_keeps_the_count(
    stand_in: Upstream, clock: Clock, tmp_path: Path
) -> None:
    settings = settings_for(stand_in, budget="0.01usd/day", store=f"sqlite://{tmp_path / 'grok.db'}")
    async with Client(build_server(settings)) as client:
        for _ in range(3):
            assert not (await call(client)).is_error
    async with Client(build_server(settings)) as client:  # the same file, a new process
        refused = await call(client)
        assert refused.is_error and "$0.011327 has been spent" in text_of(refused)
    assert len(stand_in.requests) == 3


async def test_two_replicas_on_one_redis_overspend_by_at_most_the_calls_in_flight(
    stand_in: Upstream, clock: Clock, redis_url: str
) -> None:
    pytest.importorskip("redis")
    token = f"sk-budget-{uuid.uuid4().hex}"  # an owner of its own on the shared Redis
    settings = Settings(
        api_token=token,
        base_url=stand_in.url("slow1000"),  # every call in flight at once
        max_retries=0,
        budget="0.01usd/day",
        store=redis_url,
    )
    async with Client(build_server(settings)) as a, Client(build_server(settings)) as b:
        results: list[Any] = []

        async def one(client: Client) -> None:
            results.append(await call(client))

        async with anyio.create_task_group() as tg:
            for client in (a, b, a, b):
                tg.start_soon(one, client)
        # All four passed the check while nothing was spent, and none was cut.
        assert [r.is_error for r in results] == [False] * 4
        for client in (a, b):
            refused = await call(client)
            assert refused.is_error and text_of(refused).startswith("Budget reached")
            # Every cost was counted: none lost to a concurrent update, whichever replica served it.
            assert f"{4 * CALL_USD:.6f}".rstrip("0") in text_of(refused)
    assert len(stand_in.requests) == 4


async def test_priority_is_sent_and_its_doubled_price_is_told(stand_in: Upstream) -> None:
    async with Client(build_server(settings_for(stand_in))) as client:
        result = await call(client, service_tier="priority")
        assert stand_in.requests[-1].body["service_tier"] == "priority"
        assert result.structured_content["result"]["service_tier"] == "priority"
        assert result.structured_content["notes"][-1] == (
            "tokens: 5 in, 7 out (20 reasoning); cost $0.007551; priority tier: billed at twice the "
            "standard price."
        )
        result = await call(client, service_tier="auto")
        assert "priority" not in result.structured_content["notes"][-1]


async def test_priority_asked_but_not_granted_is_told(upstream: respx.MockRouter, mcp: Client) -> None:
    served = {**completion(), "service_tier": "default"}  # no priority capacity: xAI serves default
    upstream.post("/grok/chat/completions").respond(200, json=served)
    result = await call(mcp, service_tier="priority")
    assert result.structured_content["notes"][-1] == (
        "service_tier priority was asked for; upstream served the default tier (standard price)."
    )


async def test_a_refused_service_tier_is_dropped_and_remembered(stand_in: Upstream) -> None:
    stand_in.rejects = {"grok-4": {"service_tier"}}  # "Argument not supported: service_tier"
    async with Client(build_server(settings_for(stand_in))) as client:
        result = await call(client, service_tier="priority")
        assert not result.is_error, text_of(result)
        assert [r.body.get("service_tier") for r in stand_in.requests] == ["priority", None]
        assert (
            "service_tier was not sent: upstream says grok-4 does not support it (remembered)."
            in result.structured_content["notes"]
        )
        result = await call(client, service_tier="default")
        assert "service_tier" not in stand_in.requests[-1].body
        assert len(stand_in.requests) == 3


async def test_grok_3_and_grok_4_say_what_answered_them(stand_in: Upstream) -> None:
    async with Client(build_server(settings_for(stand_in))) as client:
        notes = (await call(client, model="grok-3")).structured_content["notes"]
        assert notes[0] == (
            "grok-3 was answered by grok-4.3 with reasoning off (xAI's redirect rule; AceDataCloud has "
            "not confirmed it)."
        )
        notes = (await call(client)).structured_content["notes"]
        assert notes[0].startswith("grok-4 was answered by grok-4.3 at low effort (")
        notes = (await call(client, reasoning_effort="high")).structured_content["notes"]
        assert notes[0] == "grok-4 was answered by grok-4.3."


@pytest.mark.parametrize("confirm", [False, True])
async def test_confirm_calls_asks_hosts_to_ask_the_user(confirm: bool) -> None:
    async with Client(build_server(Settings(api_token=TOKEN, confirm_calls=confirm))) as client:
        listed = await client.list_tools()
    (tool,) = listed.tools
    assert tool.annotations is not None and tool.meta is not None
    if confirm:
        assert tool.meta["anthropic/requiresUserInteraction"] is True
        assert tool.annotations.read_only_hint is None  # hosts must not approve it on their own
    else:
        assert "anthropic/requiresUserInteraction" not in tool.meta
        assert tool.annotations.read_only_hint is True
    assert tool.meta["anthropic/maxResultSizeChars"] == 500_000
    # The list is fixed and the same for everyone: clients may keep it for an hour and share it.
    assert (listed.ttl_ms, listed.cache_scope) == (TOOLS_TTL_MS, "public")
