from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import respx
from mcp import Client

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from tests.upstream import completion as upstream_completion

TOKEN = "sk-test-secret-token-0123456789"
BASE = "https://api.acedata.cloud"
URL = f"{BASE}/grok/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]


def completion(content: str = "pong", model: str = "grok-4") -> dict[str, Any]:
    return upstream_completion(model, content)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings() -> Settings:
    return Settings(api_token=TOKEN, max_retries=2, timeout=5.0, connect_timeout=2.0)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grok_chat_mcp.client.BACKOFF_BASE", 0.0)


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def mcp(settings: Settings, upstream: respx.MockRouter) -> AsyncIterator[Client]:
    async with Client(build_server(settings, heartbeat=0.2)) as client:
        yield client
