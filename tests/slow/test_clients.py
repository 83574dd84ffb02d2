"""docs/clients.md's Claude Code instructions, run with the real ``claude`` binary, offline: add, list,
and headless calls through a scripted Messages API (tests/slow/scripted_models.py)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.slow.test_cli_and_packaging import ROOT


def claude_binary() -> str | None:
    """``CLAUDE_BIN``, the copy CI installs into ``.ci/node_modules``, or one on PATH."""
    for candidate in (
        os.environ.get("CLAUDE_BIN"),
        str(ROOT / ".ci" / "node_modules" / ".bin" / "claude"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("claude")


CLAUDE = claude_binary()
pytestmark = pytest.mark.skipif(CLAUDE is None, reason="Claude Code is not installed (CI installs it)")


def claude(home: Path, *args: str, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    """``claude`` with only ``home`` as its home, run in ``cwd`` (default: the home)."""
    assert CLAUDE is not None
    env = {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **extra,
    }
    return subprocess.run(
        [CLAUDE, *args], capture_output=True, text=True, env=env, cwd=cwd or home, timeout=120, check=False
    )


def trust(home: Path, folder: Path) -> None:
    """What accepting Claude Code's trust dialog in ``folder`` records."""
    config = json.loads((home / ".claude.json").read_text())
    config.setdefault("projects", {}).setdefault(str(folder), {})["hasTrustDialogAccepted"] = True
    (home / ".claude.json").write_text(json.dumps(config))


def documented_command(prefix: str) -> list[str]:
    """The one line of docs/clients.md that starts with ``prefix``, as a user would paste it."""
    text = (ROOT / "docs" / "clients.md").read_text(encoding="utf-8")
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return shlex.split(line.replace("/path/to/grok-chat-mcp", str(ROOT)).replace("your-token", TOKEN))


def test_documented_add_json_applies_always_load_and_connects(tmp_path: Path) -> None:
    command = documented_command("claude mcp add-json grok")
    assert json.loads(command[-1])["alwaysLoad"] is True
    added = claude(tmp_path, *command[1:])
    assert added.returncode == 0, added.stderr
    stored = json.loads((tmp_path / ".claude.json").read_text())["mcpServers"]["grok"]
    assert stored["alwaysLoad"] is True  # Claude Code keeps the key
    assert stored["env"]["ACEDATACLOUD_API_TOKEN"] == TOKEN
    project = tmp_path / "project"
    project.mkdir()
    for trusted in (False, True):  # `claude mcp list` checks servers only in a trusted folder
        if trusted:
            trust(tmp_path, project)
        listed = claude(tmp_path, *documented_command("claude mcp list")[1:], cwd=project)
        assert listed.returncode == 0, listed.stderr
        line = next(line for line in listed.stdout.splitlines() if line.startswith("grok:"))
        assert ("Connected" if trusted else "Not checked (folder not trusted") in line, listed.stdout
    again = claude(tmp_path, *command[1:])  # what the docs say about a second registration
    assert again.returncode != 0 and "already exists" in again.stdout + again.stderr
    removed = claude(tmp_path, *documented_command("claude mcp remove grok")[1:])
    assert removed.returncode == 0, removed.stderr


@pytest.mark.parametrize("always_load", [True, False])
def test_print_mode_calls_the_tool_and_defers_it_unless_always_load(
    tmp_path: Path, always_load: bool
) -> None:
    from standin.upstream import SSE_WORDS, Upstream

    from tests.slow.scripted_models import SAYS, MessagesAPI

    command = documented_command("claude mcp add-json grok")
    entry = json.loads(command[-1])
    with Upstream() as upstream, MessagesAPI() as model:
        entry["env"]["ACEDATACLOUD_API_BASE_URL"] = upstream.url("sse10")
        if not always_load:
            del entry["alwaysLoad"]
        assert claude(tmp_path, *command[1:-1], json.dumps(entry)).returncode == 0
        done = claude(
            tmp_path, *documented_command("claude -p")[1:],
            ANTHROPIC_BASE_URL=model.url, ANTHROPIC_API_KEY="sk-ant-scripted",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    first = next(request.body for request in model.requests if model.offers(request.body))
    assert model.loaded(first) is always_load  # else deferred: only ToolSearch can load it
    if always_load:
        assert model.turns == 2  # the call, then the answer
    else:  # ToolSearch costs a turn, and one more when the server connects after the first turn
        assert model.turns >= 3
    assert len(model.calls) == len(upstream.requests) == 1
    assert SAYS + "".join(SSE_WORDS) in done.stdout, done.stdout


TS_SDK = ROOT / ".ci" / "node_modules" / "@modelcontextprotocol" / "sdk"


def typescript_over_stdio(script: str, cwd: Path) -> dict[str, Any]:
    """Run ``tests/slow/<script>`` (a TypeScript SDK client) against the console script over stdio,
    the stand-in upstream answering; what it printed last, as JSON (it must exit 0)."""
    from standin.upstream import Upstream

    from tests.conftest import SCRIPT, server_env

    node = shutil.which("node")
    assert node is not None
    with Upstream() as upstream:
        done = subprocess.run(
            [node, str(ROOT / "tests" / "slow" / script), TS_SDK.as_uri(), SCRIPT],
            capture_output=True, text=True, env=server_env(upstream.url("ok")), cwd=cwd, timeout=120,
            check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


@pytest.mark.skipif(
    not (TS_SDK.exists() and shutil.which("node")), reason="needs the TypeScript SDK in .ci (CI installs it)"
)
def test_typescript_sdk_client_sees_tools_only_and_stays_alive_on_progress(tmp_path: Path) -> None:
    from standin.upstream import SSE_WORDS

    seen = typescript_over_stdio("ts_client.mjs", tmp_path)
    assert set(seen["capabilities"]) == {"tools"}
    (tool,) = seen["tools"]
    assert tool["_meta"]["anthropic/maxResultSizeChars"] == 500_000
    assert not seen["result"].get("isError")
    answer = seen["result"]["structuredContent"]["result"]["choices"][0]["message"]["content"]
    assert answer == "".join(SSE_WORDS * 57)  # 4 s of streaming outlived the 1.5 s request timeout
    assert len(seen["progress"]) > 5
    assert seen["progress"][-1]["message"].startswith("grok-4: ")
