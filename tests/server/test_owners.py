"""A conversation belongs to the token that pays for it: two servers with different configured
tokens sharing one store never see each other's conversations (issue 29, item 1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from standin.upstream import Upstream

from grok_chat_mcp.tool import NAME
from tests.conftest import HELLO, TOKEN, text_of
from tests.server.test_conversations import connected, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store two servers can share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url.rsplit("/", 1)[0] + "/14"


async def test_servers_with_different_tokens_on_one_store_are_strangers(
    stand_in: Upstream, shared: str
) -> None:
    alice = settings_for(stand_in, shared)
    bob = replace(alice, api_token=TOKEN + "-bob")
    async with connected(alice) as a:
        first = await a.call_tool(NAME, {"messages": HELLO})
        conversation_id = (first.structured_content or {})["conversation_id"]
    async with connected(bob) as b:
        for arguments in (
            {"conversation_id": conversation_id},
            {"conversation_id": conversation_id, "messages": HELLO},
        ):
            refused = await b.call_tool(NAME, arguments)
            assert refused.is_error and "unknown or expired conversation_id" in text_of(refused)
    async with connected(alice) as a:  # the same token, a new server: still alice's
        again = await a.call_tool(NAME, {"conversation_id": conversation_id})
        assert not again.is_error and again.structured_content == first.structured_content
    assert [r.headers["Authorization"] for r in stand_in.requests] == [f"Bearer {TOKEN}"]
