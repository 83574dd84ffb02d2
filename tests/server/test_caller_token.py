"""The token the HTTP guard reads (once a request) is the one the call spends."""

from __future__ import annotations

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from standin.upstream import Upstream

from tests.conftest import HELLO
from tests.server.test_static_headers import BASE, team_app

pytestmark = pytest.mark.anyio
OWN = "user-acedata-token-0042"
OTHER = "user-acedata-token-0099"


@pytest.mark.parametrize(
    ("headers", "spent"),
    [
        ({"Authorization": f"Bearer {OWN}", "x-api-key": OTHER}, OWN),
        ({"x-api-key": OTHER, "Authorization": f"Bearer {OWN}"}, OWN),
        ({"Authorization": "Basic dXNlcjpwYXNz", "x-api-key": f"  {OTHER} "}, OTHER),
    ],
    ids=["bearer-first", "x-api-key-first", "basic-and-x-api-key"],
)
async def test_the_guard_passes_the_token_the_call_spends(
    stand_in: Upstream, headers: dict[str, str], spent: str
) -> None:
    async with (
        team_app(stand_in) as app,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{BASE}/mcp", http_client=http)) as client,
    ):
        result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
    assert not result.is_error, result
    assert stand_in.requests[-1].headers["Authorization"] == f"Bearer {spent}"


async def test_a_bearer_header_without_a_token_is_refused(stand_in: Upstream) -> None:
    async with (
        team_app(stand_in) as app,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http,
    ):
        response = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Bearer  ", "x-api-key": " "},
        )
    assert response.status_code == 401
    assert stand_in.requests == []
