"""End to end: the installed console script over stdio, against a stand-in upstream on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import TextContent
from standin.upstream import SSE_WORDS, Upstream

from tests.conftest import HELLO, SCRIPT, TOKEN, params, server_env, wait_for_disconnect

pytestmark = pytest.mark.anyio


async def test_round_trip_over_stdio(stand_in: Upstream, tmp_path: Path) -> None:
    async with Client(params(stand_in.url("ok"), tmp_path)) as client:
        (tool,) = (await client.list_tools()).tools
        assert tool.name == "grok_chat_completions"
        result = await client.call_tool(tool.name, {"messages": HELLO, "model": "grok-3", "seed": 1})
    assert not result.is_error
    completion = result.structured_content["result"]
    assert completion["choices"][0]["message"]["content"] == "pong"
    assert completion["model"] == "grok-4.3"  # the name grok-3 is answered by grok-4.3
    recorded = stand_in.requests[-1]
    assert recorded.path == "/ok/grok/chat/completions"
    assert recorded.headers["Authorization"] == f"Bearer {TOKEN}"
    assert recorded.body == {"model": "grok-3", "messages": HELLO, "seed": 1}


async def test_streaming_with_progress_over_stdio(stand_in: Upstream, tmp_path: Path) -> None:
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(params(stand_in.url("sse100"), tmp_path)) as client:
        result = await client.call_tool(
            "grok_chat_completions", {"messages": HELLO, "stream": True}, progress_callback=on_progress
        )
    assert not result.is_error
    text = "".join(SSE_WORDS)
    assert result.structured_content["result"]["choices"][0]["message"]["content"] == text
    assert len(messages) >= 3  # arrived while streaming, not at the end
    assert messages[-1] == f"grok-4: {len(text)} chars received ... {text}"  # a readable one-line status
    completion = result.structured_content["result"]
    assert completion["id"].startswith("foaicmpl-")  # AceDataCloud's stream format, assembled
    assert completion["usage"]["output_tokens"] == 7  # the real usage, not the zeros of the finish chunk


async def test_upstream_errors_over_stdio(stand_in: Upstream, tmp_path: Path) -> None:
    async with Client(params(stand_in.url("html"), tmp_path, GROK_MAX_RETRIES="0")) as client:
        result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert "HTTP 502" in block.text and "Bad Gateway" in block.text and "<" not in block.text


def rpc(message_id: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    return (
        json.dumps({"jsonrpc": "2.0", "id": message_id, "method": method, "params": params or {}}) + "\n"
    ).encode()


def test_stdout_is_only_json_rpc_and_token_never_logged(stand_in: Upstream, tmp_path: Path) -> None:
    """Raw pipes, LOG_LEVEL=DEBUG, an upstream that echoes the token: stdout stays clean."""
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    }
    notify = (json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n").encode()
    call = {"name": "grok_chat_completions", "arguments": {"messages": HELLO}}
    env = server_env(stand_in.url("echo-token"), LOG_LEVEL="DEBUG")
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=tmp_path
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(
            rpc(1, "initialize", init) + notify + rpc(2, "tools/list") + rpc(3, "tools/call", call)
        )
        process.stdin.flush()
        lines: list[bytes] = []
        while not any(b'"id":3' in line for line in lines):
            line = process.stdout.readline()
            assert line, "server closed stdout early"
            lines.append(line)
        process.stdin.close()  # the client goes away: the server must exit by itself, cleanly
        assert process.wait(timeout=10) == 0
        lines.extend(process.stdout.readlines())
    replies = [json.loads(line) for line in lines]  # every stdout line is JSON
    assert all(reply["jsonrpc"] == "2.0" for reply in replies)
    by_id = {reply["id"]: reply for reply in replies if "id" in reply}
    assert by_id[1]["result"]["serverInfo"]["name"] == "grok-chat-mcp"
    assert by_id[2]["result"]["tools"][0]["name"] == "grok_chat_completions"
    assert by_id[3]["result"]["isError"] is True
    assert "Authentication failed" in by_id[3]["result"]["content"][0]["text"]
    logged = stderr_path.read_text()
    assert "DEBUG" in logged  # debug logging was really on
    assert TOKEN not in logged and TOKEN not in b"".join(lines).decode()


def test_version_and_help() -> None:
    version = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("grok-chat-mcp ")
    helped = subprocess.run(
        [sys.executable, "-m", "grok_chat_mcp", "--help"], capture_output=True, text=True, check=True
    )
    for name in (
        "ACEDATACLOUD_API_TOKEN",
        "ACEDATACLOUD_API_BASE_URL",
        "GROK_REQUEST_TIMEOUT",
        "GROK_MAX_RETRIES",
    ):
        assert name in helped.stdout


async def test_starts_and_lists_without_token(stand_in: Upstream, tmp_path: Path) -> None:
    env = server_env(stand_in.url("ok"))
    del env["ACEDATACLOUD_API_TOKEN"]
    async with Client(StdioServerParameters(command=SCRIPT, env=env, cwd=tmp_path)) as client:
        assert len((await client.list_tools()).tools) == 1
        result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
    assert result.is_error


async def test_dotenv_in_working_directory_is_read(stand_in: Upstream, tmp_path: Path) -> None:
    env = server_env(stand_in.url("status404"))  # the real environment wins over .env ...
    del env["ACEDATACLOUD_API_TOKEN"]  # ... but the token comes from .env
    (tmp_path / ".env").write_text(
        "ACEDATACLOUD_API_TOKEN=from-dotenv-file\nACEDATACLOUD_API_BASE_URL=http://x\n"
    )
    async with Client(StdioServerParameters(command=SCRIPT, env=env, cwd=tmp_path)) as client:
        result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
    assert result.is_error
    assert stand_in.requests[-1].headers["Authorization"] == "Bearer from-dotenv-file"
    assert stand_in.requests[-1].path.startswith("/status404/")


async def test_stdio_client_with_captured_stderr(stand_in: Upstream, tmp_path: Path) -> None:
    log = (tmp_path / "stderr.log").open("w+")
    async with Client(stdio_client(params(stand_in.url("ok"), tmp_path), errlog=log)) as client:
        await client.call_tool("grok_chat_completions", {"messages": HELLO})
    log.seek(0)
    text = log.read()
    assert "grok call ok" in text
    assert TOKEN not in text


async def test_cancel_over_stdio_closes_the_upstream_connection(stand_in: Upstream, tmp_path: Path) -> None:
    async with Client(params(stand_in.url("long50"), tmp_path)) as client:
        with anyio.move_on_after(0.6):
            await client.call_tool("grok_chat_completions", {"messages": HELLO, "stream": True})
        await wait_for_disconnect(stand_in)
        healthy = await client.call_tool("grok_chat_completions", {"messages": HELLO, "user": "scenario:ok"})
    assert not healthy.is_error
    assert len(stand_in.requests) == 2
