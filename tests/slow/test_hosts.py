"""docs/clients.md's Codex CLI and Gemini CLI sections, run with the real CLIs (offline).

Each host is registered the way the page says, in a home directory under ``tmp_path``, and makes
real calls of our tool: a scripted model API on 127.0.0.1 (tests/slow/scripted_models.py) asks for the
call and then repeats the completion's text, and our server's upstream is the stand-in
(standin/upstream.py). The page's limits (answer size, timeouts, start-up, environment) are checked
the same way. CI installs both CLIs into ``.ci/node_modules``; without them these skip.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from standin.upstream import SSE_WORDS, Upstream

from tests.conftest import SCRIPT, TOKEN
from tests.slow.scripted_models import ARGUMENTS, SAYS, GeminiAPI, ResponsesAPI
from tests.slow.test_cli_and_packaging import ROOT

DOC = ROOT / "docs" / "clients.md"
#: The part of the page these tests run: from this heading to the next section after Gemini CLI.
SECTIONS = ("\n## Codex CLI\n", "\n## Gemini CLI\n")
#: What the page writes for the console script's path.
DOC_SCRIPT = "/path/to/grok-chat-mcp/.venv/bin/grok-chat-mcp"
#: The completion the stand-in streams (scenario ``sse``), as the host's final output must show it.
ANSWER = SAYS + "".join(SSE_WORDS)
PROMPT = "Ask Grok to say pong."
#: The server environment the page's registrations write: the token, and every answer in one call.
DOC_ENV = {"ACEDATACLOUD_API_TOKEN": TOKEN, "GROK_RETURN_AFTER": "0"}


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
    """The Codex CLI and Gemini CLI sections, with the script's path and the token filled in."""
    start, gemini = SECTIONS
    text = DOC.read_text()
    codex_on = text.index(start)
    gemini_end = text.find("\n## ", text.index(gemini, codex_on) + len(gemini))
    part = text[codex_on : gemini_end if gemini_end >= 0 else None]
    return part.replace(DOC_SCRIPT, SCRIPT).replace("your-token", TOKEN)


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


def codex(home: Path, *args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    assert CODEX is not None
    return run([CODEX, *args], home, home, timeout, **env)


def documented_codex_entry(base_url: str) -> str:
    """The page's ``[mcp_servers.grok]`` entry, with the stand-in as the server's upstream."""
    entry = doc_block("toml")
    token = f'ACEDATACLOUD_API_TOKEN = "{TOKEN}"'
    assert token in entry
    return entry.replace(token, f'{token}, ACEDATACLOUD_API_BASE_URL = "{base_url}"')


def codex_exec(
    home: Path, entry: str, top: str = "", **env: str
) -> tuple[subprocess.CompletedProcess[str], ResponsesAPI]:
    """``codex exec`` with this server entry (and top-level keys) against the scripted model."""
    with ResponsesAPI() as model:
        (home / ".codex").mkdir(exist_ok=True)
        (home / ".codex" / "config.toml").write_text(top + CODEX_MODEL.format(url=model.url) + entry)
        done = codex(home, "exec", "--skip-git-repo-check", PROMPT, timeout=60, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, model


def env_dumping_server(tmp_path: Path, delay: float = 0) -> tuple[Path, Path]:
    """A command that writes its environment to a file, waits ``delay`` seconds, then becomes the server."""
    wrapper, dump = tmp_path / "grok-chat-mcp-env", tmp_path / "server-env.json"
    wrapper.write_text(
        f"#!{sys.executable}\nimport json, os, time\n"
        f"json.dump(dict(os.environ), open({str(dump)!r}, 'w'))\ntime.sleep({delay})\n"
        f"os.execv({SCRIPT!r}, [{SCRIPT!r}])\n"
    )
    wrapper.chmod(0o755)
    return wrapper, dump


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
    assert grok["transport"]["env"] == DOC_ENV
    written = tomllib.loads((tmp_path / ".codex" / "config.toml").read_text())
    assert written["mcp_servers"]["grok"]["env"] == DOC_ENV


@needs_codex
def test_codex_calls_the_tool_with_the_documented_config(tmp_path: Path, stand_in: Upstream) -> None:
    entry = documented_codex_entry(stand_in.url("sse10"))
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(entry)
    grok = codex_servers(tmp_path)["grok"]
    assert grok["tool_timeout_sec"] == tomllib.loads(entry)["mcp_servers"]["grok"]["tool_timeout_sec"] == 1800

    done, model = codex_exec(tmp_path, entry)
    assert "mcp__grok/grok_chat_completions" in model.offered_tools(0)  # `required`: no start-up race
    assert_one_call_reached(stand_in)
    assert ANSWER in done.stdout, done.stdout + done.stderr[-3000:]


@needs_codex
@pytest.mark.parametrize("limit", [None, 100_000])
def test_codex_cuts_a_big_answer_unless_its_token_limit_is_raised(
    tmp_path: Path, stand_in: Upstream, limit: int | None
) -> None:
    top = "" if limit is None else f"tool_output_token_limit = {limit}\n"
    _, model = codex_exec(tmp_path, documented_codex_entry(stand_in.url("big200")), top)
    (seen,) = model.tool_results  # the server sent 204,800 x's in its JSON
    if limit is None:  # about 12k characters: the start and the end, the middle elided
        assert len(seen) < 15_000 and "tokens truncated" in seen, seen[:300]
        assert '"content":"xxx' in seen and seen.endswith("}")
    else:
        assert "x" * 204_800 in seen


@needs_codex
def test_codex_passes_the_server_only_env_and_env_vars(tmp_path: Path, stand_in: Upstream) -> None:
    wrapper, dump = env_dumping_server(tmp_path)
    entry = documented_codex_entry(stand_in.url("sse10")).replace(SCRIPT, str(wrapper))
    entry = entry.replace("required = true", 'required = true\nenv_vars = ["SSL_CERT_FILE"]')
    codex_exec(
        tmp_path,
        entry,
        SSL_CERT_FILE="/etc/proxy-ca.pem",
        HTTPS_PROXY="http://127.0.0.1:9",
        GROK_MODEL="grok-3",
    )
    seen = json.loads(dump.read_text())
    assert seen["ACEDATACLOUD_API_TOKEN"] == TOKEN
    assert seen["SSL_CERT_FILE"] == "/etc/proxy-ca.pem"  # named in env_vars
    assert "HTTPS_PROXY" not in seen and "GROK_MODEL" not in seen


@needs_codex
@pytest.mark.parametrize("required", [True, False])
def test_codex_waits_for_a_slow_server_only_if_required(
    tmp_path: Path, stand_in: Upstream, required: bool
) -> None:
    wrapper, _ = env_dumping_server(tmp_path, delay=2.5)  # Codex gives other servers about 1 s
    entry = documented_codex_entry(stand_in.url("sse10")).replace(SCRIPT, str(wrapper))
    if not required:
        entry = entry.replace("required = true\n", "")
    done, model = codex_exec(tmp_path, entry)
    assert ("mcp__grok/grok_chat_completions" in model.offered_tools(0)) is required
    assert (ANSWER in done.stdout) is required


@needs_codex
def test_codex_tool_timeout_sec_ends_a_long_call(tmp_path: Path, stand_in: Upstream) -> None:
    entry = documented_codex_entry(stand_in.url("slow6000")).replace(
        "tool_timeout_sec = 1800", "tool_timeout_sec = 2"
    )
    _, model = codex_exec(tmp_path, entry)
    (seen,) = model.tool_results
    assert "timed out awaiting tools/call after 2s" in seen, seen


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
    assert grok["env"] == DOC_ENV
    assert grok["timeout"] == 1_800_000
    listed = gemini(home, project, "mcp", "list")
    assert listed.returncode == 0, listed.stderr
    shown = listed.stdout + listed.stderr  # 0.61 prints the list on stderr
    line = next(line for line in shown.splitlines() if "grok:" in line)
    assert line.endswith("Connected"), shown  # it started the server and connected


def gemini_prompt(
    tmp_path: Path,
    base_url: str,
    model: GeminiAPI | None = None,
    settings: dict[str, Any] | None = None,
    **server: Any,
) -> tuple[subprocess.CompletedProcess[str], GeminiAPI, Path]:
    """``gemini -p`` with the page's settings entry (``server`` keys replaced) and ``settings``,
    the stand-in as upstream, the scripted model."""
    entry = json.loads(doc_block("json"))
    entry["mcpServers"]["grok"]["env"]["ACEDATACLOUD_API_BASE_URL"] = base_url
    entry["mcpServers"]["grok"].update(server)
    home, project = gemini_home(tmp_path, GEMINI_SETTINGS | entry | (settings or {}))
    with model or GeminiAPI() as model:
        done = gemini(
            home, project, "-p", PROMPT, "--approval-mode", "yolo", "--model", "gemini-2.5-flash", timeout=60,
            GEMINI_API_KEY="scripted-key", GOOGLE_GEMINI_BASE_URL=model.url,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done, model, home


@needs_gemini
def test_gemini_calls_the_tool_with_the_documented_settings(tmp_path: Path, stand_in: Upstream) -> None:
    done, model, _ = gemini_prompt(tmp_path, stand_in.url("sse10"))
    first, *_ = model.requests
    assert model.tool in model.offered_tools(first.body)
    assert_one_call_reached(stand_in)
    assert ANSWER in done.stdout, done.stdout + done.stderr[-3000:]


@needs_gemini
@pytest.mark.parametrize("threshold", [None, 300_000])
def test_gemini_keeps_the_first_8k_and_last_32k_characters_unless_its_threshold_is_raised(
    tmp_path: Path, stand_in: Upstream, threshold: int | None
) -> None:
    settings = {} if threshold is None else {"tools": {"truncateToolOutputThreshold": threshold}}
    _, model, home = gemini_prompt(tmp_path, stand_in.url("big200"), settings=settings)
    seen = model.tool_results[0]  # the server sent 204,800 x's in its JSON
    if threshold is not None:
        assert "x" * 204_800 in seen
        return
    notice, _, kept = seen.partition("\n")
    assert notice.startswith("Output too large. Showing first 8,000 and last 32,000 characters."), notice
    saved = Path(notice.rpartition(": ")[2])
    assert saved.is_relative_to(home) and "x" * 204_800 in saved.read_text()  # the whole answer, in a file
    assert 40_000 <= len(kept) < 40_500 and kept.rstrip().endswith("</untrusted_context>")


@needs_gemini
def test_gemini_strips_secrets_and_certificates_from_the_servers_environment(tmp_path: Path) -> None:
    wrapper, dump = env_dumping_server(tmp_path)
    server = {
        "command": str(wrapper),
        "env": {"ACEDATACLOUD_API_TOKEN": TOKEN, "SSL_CERT_FILE": "$SSL_CERT_FILE"},
    }
    home, project = gemini_home(tmp_path, GEMINI_SETTINGS | {"mcpServers": {"grok": server}})
    shell: dict[str, str] = {
        "ACEDATACLOUD_API_TOKEN": "from-the-shell", "SSL_CERT_FILE": "/etc/proxy-ca.pem",
        "SSL_CERT_DIR": "/etc/certs",
        "HTTPS_PROXY": "http://user:secret@127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
        "REQUESTS_CA_BUNDLE": "/etc/proxy-ca.pem", "GROK_MODEL": "grok-3",
    }  # fmt: skip
    listed = gemini(home, project, "mcp", "list", timeout=30, **shell)
    assert "Connected" in listed.stdout + listed.stderr, listed.stdout + listed.stderr
    seen = json.loads(dump.read_text())
    assert seen["ACEDATACLOUD_API_TOKEN"] == TOKEN  # from `env`, not the shell
    assert seen["SSL_CERT_FILE"] == "/etc/proxy-ca.pem"  # only because `env` names it
    assert "SSL_CERT_DIR" not in seen and "HTTPS_PROXY" not in seen  # a *CERT* name; a URL with a password
    assert {name: seen.get(name) for name in ("HTTP_PROXY", "REQUESTS_CA_BUNDLE", "GROK_MODEL")} == {
        name: shell[name] for name in ("HTTP_PROXY", "REQUESTS_CA_BUNDLE", "GROK_MODEL")
    }


@needs_gemini
def test_gemini_timeout_ends_a_long_call(tmp_path: Path, stand_in: Upstream) -> None:
    _, model, _ = gemini_prompt(tmp_path, stand_in.url("slow9000"), timeout=6000)  # also the start-up limit
    (seen,) = model.tool_results
    assert "MCP error -32001: Request timed out" in seen, seen


@needs_gemini
def test_gemini_checks_the_arguments_against_the_schema_itself(tmp_path: Path, stand_in: Upstream) -> None:
    arguments = {**ARGUMENTS, "temperature": 5}
    _, model, _ = gemini_prompt(tmp_path, stand_in.url("sse10"), GeminiAPI(arguments=arguments))
    (seen,) = model.tool_results
    assert "temperature must be <= 2" in seen, seen
    assert not stand_in.requests  # refused before the call
