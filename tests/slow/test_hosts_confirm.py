"""GROK_CONFIRM_CALLS with the real consumer: Claude Code asks before each call (issue 31).

``claude -p`` runs against a scripted Anthropic Messages API on 127.0.0.1 (``MessagesAPI``: the
model asks for one call of our tool, then repeats the tool result it got back) and our server over
stdio, with the tool allow-listed (``--allowedTools``). Without the setting the call goes through;
with it, Claude Code still asks, and ``-p``, which has no one to ask, refuses the call before it
reaches the server.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standin.upstream import Upstream

from tests.conftest import SCRIPT, TOKEN
from tests.slow.scripted_models import CLAUDE_TOOL as TOOL
from tests.slow.scripted_models import MessagesAPI, content_blocks, tool_result_text
from tests.slow.test_clients import CLAUDE

pytestmark = pytest.mark.skipif(CLAUDE is None, reason="Claude Code is not installed (CI installs it)")

ARGUMENTS = {"messages": [{"role": "user", "content": "Say pong."}]}


def tool_result_blocks(model: MessagesAPI) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks Claude Code sent back to the model, as sent."""
    return [
        block
        for request in model.requests
        for message in request.body.get("messages", ())
        for block in content_blocks(message)
        if block.get("type") == "tool_result"
    ]


@pytest.fixture
def model() -> Iterator[MessagesAPI]:
    with MessagesAPI(arguments=ARGUMENTS) as api:
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
    assert json.loads(tool_result)["result"]["choices"][0]["message"]["content"] == "pong"
    assert len(stand_in.requests) == 1


def test_with_confirm_calls_claude_code_asks_even_for_an_allow_listed_tool(
    tmp_path: Path, model: MessagesAPI, stand_in: Upstream
) -> None:
    result = ask(tmp_path, model, stand_in, "1")
    assert [denial["tool_name"] for denial in result["permission_denials"]] == [TOOL]
    (tool_result,) = {
        json.dumps(block, sort_keys=True): block for block in tool_result_blocks(model)
    }.values()
    assert tool_result["is_error"] is True and "requires permission" in tool_result_text(tool_result)
    assert stand_in.requests == []  # refused before it reached the server: nothing was paid
