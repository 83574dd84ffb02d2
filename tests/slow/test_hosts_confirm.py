"""GROK_CONFIRM_CALLS with the real consumer: Claude Code asks before each call (issue 31).

``claude -p`` runs against a scripted Anthropic Messages API on 127.0.0.1 (the model asks for one
call of our tool, then repeats the tool result it got back) and our server over stdio, with the
tool allow-listed (``--allowedTools``). Without the setting the call goes through; with it, Claude
Code still asks, and ``-p``, which has no one to ask, refuses the call before it reaches the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standin.upstream import Upstream

from tests.conftest import SCRIPT, TOKEN
from tests.slow.test_clients import CLAUDE

pytestmark = pytest.mark.skipif(CLAUDE is None, reason="Claude Code is not installed (CI installs it)")

TOOL = "mcp__grok__grok_chat_completions"
ARGUMENTS = {"messages": [{"role": "user", "content": "Say pong."}]}


def _sse(blocks: list[dict[str, Any]], stop: str) -> bytes:
    """One streamed Messages API answer holding ``blocks`` (text, or a tool call)."""
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5"}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                        "usage": {"input_tokens": 1, "output_tokens": 1}},
        }
    ]  # fmt: skip
    for index, block in enumerate(blocks):
        start: dict[str, Any]
        delta: dict[str, Any]
        if block["type"] == "text":
            start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            {"type": "content_block_start", "index": index, "content_block": start},
            {"type": "content_block_delta", "index": index, "delta": delta},
            {"type": "content_block_stop", "index": index},
        ]
    events += [
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


class MessagesAPI:
    """The scripted model: call our tool once, then say what the tool result was."""

    def __init__(self) -> None:
        self.tool_results: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def reply(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        messages = body.get("messages") or [{}]
        content = messages[-1].get("content")
        results = [c for c in content if c.get("type") == "tool_result"] if isinstance(content, list) else []
        if results:
            self.tool_results.append(results[-1])
            return [
                {"type": "text", "text": f"The tool said: {results[-1].get('content')}"[:300]}
            ], "end_turn"
        if TOOL in [tool.get("name") for tool in body.get("tools") or ()]:
            return [{"type": "tool_use", "id": "toolu_1", "name": TOOL, "input": ARGUMENTS}], "tool_use"
        return [{"type": "text", "text": "ok"}], "end_turn"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                if "count_tokens" in self.path:
                    data, kind = b'{"input_tokens": 10}', "application/json"
                else:
                    blocks, stop = api.reply(body)
                    data, kind = _sse(blocks, stop), "text/event-stream"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self) -> MessagesAPI:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def model() -> Iterator[MessagesAPI]:
    with MessagesAPI() as api:
        yield api


def ask(home: Path, model: MessagesAPI, stand_in: Upstream, confirm: str) -> dict[str, Any]:
    """One ``claude -p`` turn with our server allow-listed; its JSON result."""
    config = {
        "mcpServers": {
            "grok": {
                "command": SCRIPT,
                "args": [],
                "alwaysLoad": True,  # not deferred behind ToolSearch
                "env": {
                    "ACEDATACLOUD_API_TOKEN": TOKEN,
                    "ACEDATACLOUD_API_BASE_URL": stand_in.url("ok"),
                    "GROK_CONFIRM_CALLS": confirm,
                },
            }
        }
    }
    (home / "mcp.json").write_text(json.dumps(config))
    assert CLAUDE is not None
    command = [CLAUDE, "-p", "Ask grok to say pong.", "--mcp-config", str(home / "mcp.json")]
    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ANTHROPIC_BASE_URL": model.url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
    }
    done = subprocess.run(
        [*command, "--allowedTools", TOOL, "--output-format", "json"],
        capture_output=True, text=True, env=env, cwd=home, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_an_allow_listed_call_goes_through(tmp_path: Path, model: MessagesAPI, stand_in: Upstream) -> None:
    result = ask(tmp_path, model, stand_in, "0")
    assert result["permission_denials"] == []
    (tool_result,) = model.tool_results
    assert json.loads(tool_result["content"])["result"]["choices"][0]["message"]["content"] == "pong"
    assert len(stand_in.requests) == 1


def test_with_confirm_calls_claude_code_asks_even_for_an_allow_listed_tool(
    tmp_path: Path, model: MessagesAPI, stand_in: Upstream
) -> None:
    result = ask(tmp_path, model, stand_in, "1")
    assert [denial["tool_name"] for denial in result["permission_denials"]] == [TOOL]
    (tool_result,) = model.tool_results
    assert tool_result["is_error"] is True and "requires permission" in tool_result["content"]
    assert stand_in.requests == []  # refused before it reached the server: nothing was paid
