"""Per-user-token mode as claude.ai custom connectors call it (static headers), and the server card."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from standin.upstream import Upstream
from starlette.types import ASGIApp

from grok_chat_mcp.config import Settings
from grok_chat_mcp.transports import server_card
from grok_chat_mcp.transports.http import Policy, create_app
from tests.conftest import HELLO
from tests.server.oauth_flow import lifespan

pytestmark = pytest.mark.anyio
BASE = "http://grok.example.test"
TOKEN = "user-acedata-token-0042"
ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def team_app(stand_in: Upstream) -> AsyncIterator[ASGIApp]:
    settings = Settings(base_url=stand_in.url("ok"), max_retries=0)
    app = create_app(settings, Policy(host="0.0.0.0", server_token=False))
    async with lifespan(app):
        yield app


OTHER = "user-acedata-token-0099"


@pytest.mark.parametrize(
    ("headers", "spent"),
    [
        ({"Authorization": f"Bearer {TOKEN}"}, TOKEN),
        ({"x-api-key": TOKEN}, TOKEN),
        ({"X-API-Key": TOKEN}, TOKEN),
        # Both: the guard reads the token by the call's rule (a Bearer Authorization, else x-api-key).
        ({"Authorization": f"Bearer {TOKEN}", "x-api-key": OTHER}, TOKEN),
        ({"x-api-key": OTHER, "Authorization": f"Bearer {TOKEN}"}, TOKEN),
        ({"Authorization": "Basic dXNlcjpwYXNz", "x-api-key": f"  {OTHER} "}, OTHER),
    ],
    ids=["authorization", "x-api-key", "X-API-Key", "bearer-first", "x-api-key-first", "basic-and-x-api-key"],
)
async def test_claude_ai_static_headers_spend_the_users_token(
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


async def test_without_either_header_the_401_names_both(stand_in: Upstream) -> None:
    async with (
        team_app(stand_in) as app,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http,
    ):
        response = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401
    assert "x-api-key" in response.text and "Authorization: Bearer" in response.text
    assert stand_in.requests == []


async def test_server_card_at_the_recommended_url(stand_in: Upstream) -> None:
    async with (
        team_app(stand_in) as app,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http,
    ):
        response = await http.get("/mcp/server-card", headers={"Accept": server_card.MEDIA_TYPE})
    assert response.status_code == 200
    assert response.headers["content-type"] == server_card.MEDIA_TYPE
    assert response.headers["access-control-allow-origin"] == "*"
    card = response.json()
    registry = json.loads((ROOT / "server.json").read_text())
    for key in ("name", "title", "description", "version"):
        assert card[key] == registry[key]
    assert card["remotes"][0]["url"] == f"{BASE}/mcp"
    assert card["remotes"][0]["type"] == "streamable-http"
    assert card["remotes"][0]["headers"][0]["isSecret"] is True
