"""docs/clients-codex-gemini.md, run with the real Codex CLI and Gemini CLI (offline).

Each host is registered the way the page says, in a home directory under ``tmp_path``, and makes
one real call of our tool: a scripted model API on 127.0.0.1 (tests/scripted_models.py) asks for
the call and then repeats the completion's text, and our server's upstream is the stand-in
(tests/upstream.py). CI installs both CLIs into ``.ci/node_modules``; without them these skip.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SCRIPT, TOKEN
from tests.scripted_models import ARGUMENTS, SAYS, GeminiAPI, ResponsesAPI
from tests.test_cli_and_packaging import ROOT
from tests.upstream import SSE_WORDS, Upstream

pytestmark = pytest.mark.slow

DOC = ROOT / "docs" / "clients-codex-gemini.md"
#: What the page writes for the console script's path.
DOC_SCRIPT = "/path/to/grok-chat-mcp/.venv/bin/grok-chat-mcp"
#: The completion the stand-in streams (scenario ``sse``), as the host's final output must show it.
ANSWER = SAYS + "".join(SSE_WORDS)
PROMPT = "Ask Grok to say pong."


def binary(name: str) -> str | None:
    """``<NAME>_BIN``, the copy CI installs into ``.ci/node_modules``, or one on PATH."""
    for candidate in (
        os.environ.get(f"{name.upper()}_BIN"),
        str(ROOT / ".ci" / "node_modules" / ".bin" / name),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which(name)


CODEX = binary("codex")
GEMINI = binary("gemini")
needs_codex = pytest.mark.skipif(CODEX is None, reason="the Codex CLI is not installed (CI installs it)")
needs_gemini = pytest.mark.skipif(GEMINI is None, reason="the Gemini CLI is not installed (CI installs it)")


def doc() -> str:
    return DOC.read_text().replace(DOC_SCRIPT, SCRIPT).replace("your-token", TOKEN)


def doc_command(prefix: str) -> list[str]:
    """The page's one command line that starts with ``prefix``, split as a shell would."""
    (line,) = [line for line in doc().splitlines() if line.startswith(prefix)]
    return shlex.split(line)


def doc_block(language: str) -> str:
    """The page's one fenced block in ``language``."""
    (block,) = re.findall(rf"^```{language}\n(.*?)^```", doc(), re.MULTILINE | re.DOTALL)
    return str(block)


def run(
    command: list[str], home: Path, cwd: Path, timeout: float, **env: str
) -> subprocess.CompletedProcess[str]:
    """A host command with only ``home`` as its home: nothing of the real one is read or written."""
    environment = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", **env}
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=cwd, stdin=subprocess.DEVNULL,
        timeout=timeout, check=False,
    )  # fmt: skip


def assert_one_call_reached(stand_in: Upstream) -> None:
    (request,) = stand_in.requests
    assert request.path.endswith("/grok/chat/completions")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.body["messages"] == ARGUMENTS["messages"]


# Codex CLI -------------------------------------------------------------------------------------

#: Top-level keys (they must come before any table): the scripted model, no plugin or update
#: traffic.
CODEX_MODEL = """\
model = "scripted"
model_provider = "scripted"
check_for_update_on_startup = false

[features]
plugins = false
apps = false

[model_providers.scripted]
name = "scripted"
base_url = "{url}/v1"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

"""


def codex(home: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    assert CODEX is not None
    return run([CODEX, *args], home, home, timeout)


def codex_servers(home: Path) -> dict[str, Any]:
    listed = codex(home, "mcp", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {server["name"]: server for server in json.loads(listed.stdout)}


@needs_codex
def test_codex_mcp_add_as_documented(tmp_path: Path) -> None:
    command = doc_command("codex mcp add grok")
    added = codex(tmp_path, *command[1:])
    assert added.returncode == 0, added.stderr
    grok = codex_servers(tmp_path)["grok"]
    assert grok["enabled"] is True
    assert grok["transport"]["command"] == SCRIPT
    assert grok["transport"]["env"] == {"ACEDATACLOUD_API_TOKEN": TOKEN}
    written = tomllib.loads((tmp_path / ".codex" / "config.toml").read_text())
    assert written["mcp_servers"]["grok"]["env"] == {"ACEDATACLOUD_API_TOKEN": TOKEN}


@needs_codex
def test_codex_calls_the_tool_with_the_documented_config(tmp_path: Path, stand_in: Upstream) -> None:
    entry = doc_block("toml")
    token = f'ACEDATACLOUD_API_TOKEN = "{TOKEN}"'
    assert token in entry
    entry = entry.replace(token, f'{token}, ACEDATACLOUD_API_BASE_URL = "{stand_in.url("sse10")}"')
    with ResponsesAPI() as model:
        config = CODEX_MODEL.format(url=model.url) + entry
        (tmp_path / ".codex").mkdir()
        (tmp_path / ".codex" / "config.toml").write_text(config)
        grok = codex_servers(tmp_path)["grok"]
        assert grok["tool_timeout_sec"] == tomllib.loads(entry)["mcp_servers"]["grok"]["tool_timeout_sec"]

        done = codex(tmp_path, "exec", "--skip-git-repo-check", PROMPT, timeout=60)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "mcp__grok/grok_chat_completions" in model.offered_tools(0)  # `required`: no start-up race
    assert_one_call_reached(stand_in)
    assert ANSWER in done.stdout, done.stdout + done.stderr[-3000:]


# Gemini CLI ------------------------------------------------------------------------------------

#: The user settings a signed-in user has (the API-key method), without update or usage traffic.
GEMINI_SETTINGS: dict[str, Any] = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
}


def gemini_home(tmp_path: Path, settings: dict[str, Any]) -> tuple[Path, Path]:
    """A home with these user settings, and a project folder the user has trusted."""
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".gemini").mkdir(parents=True)
    project.mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    (home / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    return home, project


def gemini(
    home: Path, project: Path, *args: str, timeout: float = 30, **env: str
) -> subprocess.CompletedProcess[str]:
    assert GEMINI is not None
    return run([GEMINI, *args], home, project, timeout, **env)


@needs_gemini
def test_gemini_mcp_add_as_documented_connects(tmp_path: Path) -> None:
    home, project = gemini_home(tmp_path, GEMINI_SETTINGS)
    command = doc_command("gemini mcp add")
    added = gemini(home, project, *command[1:])
    assert added.returncode == 0, added.stderr
    grok = json.loads((home / ".gemini" / "settings.json").read_text())["mcpServers"]["grok"]
    assert grok["command"] == SCRIPT
    assert grok["env"] == {"ACEDATACLOUD_API_TOKEN": TOKEN}
    assert grok["timeout"] == 1_800_000
    listed = gemini(home, project, "mcp", "list")
    assert listed.returncode == 0, listed.stderr
    shown = listed.stdout + listed.stderr  # 0.61 prints the list on stderr
    line = next(line for line in shown.splitlines() if "grok:" in line)
    assert line.endswith("Connected"), shown  # it started the server and connected


@needs_gemini
def test_gemini_calls_the_tool_with_the_documented_settings(tmp_path: Path, stand_in: Upstream) -> None:
    entry = json.loads(doc_block("json"))
    entry["mcpServers"]["grok"]["env"]["ACEDATACLOUD_API_BASE_URL"] = stand_in.url("sse10")
    home, project = gemini_home(tmp_path, GEMINI_SETTINGS | entry)
    with GeminiAPI() as model:
        done = gemini(
            home, project, "-p", PROMPT, "--approval-mode", "yolo", "--model", "gemini-2.5-flash", timeout=60,
            GEMINI_API_KEY="scripted-key", GOOGLE_GEMINI_BASE_URL=model.url,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    first, *_ = model.requests
    assert model.tool in model.offered_tools(first.body)
    assert_one_call_reached(stand_in)
    assert ANSWER in done.stdout, done.stdout + done.stderr[-3000:]
