"""A damaged store is a tool error that names the store and says what to do (it was a JSON-RPC error)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
import respx
from mcp import Client

from grok_chat_mcp.config import Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, TOKEN, completion, text_of

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("collect", [False, True], ids=["continue", "collect"])
async def test_a_damaged_sqlite_row_is_a_tool_error(
    tmp_path: Path, upstream: respx.MockRouter, collect: bool
) -> None:
    path = tmp_path / "conversations.db"
    upstream.post("/grok/chat/completions").respond(200, json=completion())
    async with Client(build_server(Settings(api_token=TOKEN, store=f"sqlite://{path}"))) as client:
        first = await client.call_tool(TOOL_NAME, {"messages": HELLO})
        cid = first.structured_content["conversation_id"]
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute('UPDATE conversations SET messages = \'[{"role": "us\' WHERE id = ?', (cid,))
        arguments = {"conversation_id": cid} if collect else {"conversation_id": cid, "messages": HELLO}
        result = await client.call_tool(TOOL_NAME, arguments)
        assert result.is_error
        assert text_of(result) == (
            f"conversation {cid} in the conversation store {path} is damaged (its JSON does not parse); "
            "send the full history in messages without conversation_id to start a new conversation "
            "(the damaged record expires like any other)"
        )
        fresh = await client.call_tool(TOOL_NAME, {"messages": HELLO})  # the server goes on serving
        assert not fresh.is_error
    assert len(upstream.calls) == 2  # nothing was sent for the damaged conversation


async def test_a_corrupt_sqlite_file_is_a_tool_error(tmp_path: Path, upstream: respx.MockRouter) -> None:
    path = tmp_path / "conversations.db"
    settings = Settings(api_token=TOKEN, store=f"sqlite://{path}")
    upstream.post("/grok/chat/completions").respond(200, json=completion("x" * 5000))
    async with Client(build_server(settings)) as client:
        cid = (await client.call_tool(TOOL_NAME, {"messages": HELLO})).structured_content["conversation_id"]
    with path.open("r+b") as file:  # the server has stopped: its file is whole; damage the table's page
        file.seek(4096)
        file.write(b"\xff" * 200)
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(TOOL_NAME, {"conversation_id": cid})
    assert result.is_error
    assert text_of(result) == (
        f"the conversation store {path} is damaged (database disk image is malformed); stop the server and "
        "move that file aside (the server creates a new one when it starts), then send the full history "
        "in messages without conversation_id"
    )
