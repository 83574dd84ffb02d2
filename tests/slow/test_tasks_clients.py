"""Real Tasks clients run a 3-minute call of our tool to the full answer, over stdio and over HTTP.

- The TypeScript requester of ``@modelcontextprotocol/ext-tasks`` (tests/slow/ts_tasks.mjs) on the
  2026-07-28 TypeScript client.
- Claude Code's interactive UI, driven in tmux (send-keys, capture-pane) with a scripted model
  (tests/slow/scripted_models.py): it declares the Tasks extension on every request; ``claude -p``
  does not (docs/clients.md), so a second check runs ``-p`` on the path it takes, the ``running``
  result, and asserts that the model is told how to collect.

The four long runs start together (a module fixture) and each test waits for its own, so the file
takes about as long as one call. The stand-in (standin/upstream.py) streams the answer for 3 minutes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from standin.upstream import SSE_WORDS, Upstream

from tests.conftest import SCRIPT, TOKEN, server_env
from tests.slow.scripted_models import CLAUDE_TOOL, SAYS, MessagesAPI
from tests.slow.test_cli_and_packaging import ROOT
from tests.slow.test_clients import CLAUDE

MODULES = ROOT / ".ci" / "node_modules"
NODE = shutil.which("node")
TMUX = shutil.which("tmux")
#: 400 chunks, one every 450 ms: the answer streams for 3 minutes.
LONG = "long450"
FULL_ANSWER = "".join(SSE_WORDS * 57)
ARGUMENTS: dict[str, Any] = {
    "model": "grok-4",
    "messages": [{"role": "user", "content": "Say hello, slowly."}],
    "stream": True,
}
#: Start-up, the 3-minute answer, and the host's polling, with room for a loaded machine.
LIMIT = 300
PROMPT = "Ask Grok to say hello, slowly."
#: What Claude Code's input line starts with, once it takes input.
PROMPT_MARK = "\u276f"
#: A key Claude Code is told to accept without asking (its last 20 characters).
API_KEY = "sk-ant-scripted-key-0123456789abcdefghij"

TS_READY = NODE is not None and (MODULES / "@modelcontextprotocol" / "ext-tasks").exists()
needs_ts = pytest.mark.skipif(
    not TS_READY,
    reason="needs node and @modelcontextprotocol/ext-tasks in .ci (CI installs them)",
)
needs_claude_ui = pytest.mark.skipif(
    CLAUDE is None or TMUX is None, reason="needs Claude Code (CI installs it) and tmux"
)


@contextmanager
def http_server(upstream: Upstream) -> Iterator[str]:
    """Our server over streamable HTTP on a free port; yields the MCP URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [SCRIPT, "--transport", "http", "--port", str(port)],
        env=server_env(upstream.url(LONG)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


# The TypeScript requester ------------------------------------------------------------------------


def ts_requester(transport: str, tmp_path: Path) -> dict[str, Any]:
    """ts_tasks.mjs over ``transport``; what it printed."""
    assert NODE is not None
    script = str(ROOT / "tests" / "slow" / "ts_tasks.mjs")
    with Upstream() as upstream, http_server(upstream) if transport == "http" else nullcontext() as url:
        target = [transport, SCRIPT, json.dumps(ARGUMENTS)]
        if url is not None:
            target = [transport, url, json.dumps(ARGUMENTS), TOKEN]
        done = subprocess.run(
            [NODE, script, str(MODULES), *target], capture_output=True, text=True, cwd=tmp_path,
            env=server_env(upstream.url(LONG)), timeout=LIMIT, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


# Claude Code ---------------------------------------------------------------------------------------


@dataclass
class ClaudeHome:
    """A home and a trusted project folder for Claude Code, with our server registered."""

    root: Path
    model: MessagesAPI
    server: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def project(self) -> Path:
        return self.root / "project"

    def __post_init__(self) -> None:
        self.project.mkdir(parents=True, exist_ok=True)
        trusted = {"hasTrustDialogAccepted": True, "allowedTools": [CLAUDE_TOOL]}
        (self.root / ".claude.json").write_text(
            json.dumps({
                "hasCompletedOnboarding": True, "theme": "dark",
                "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
                "projects": {str(self.project): trusted},
            })
        )  # fmt: skip
        (self.root / "mcp.json").write_text(json.dumps({"mcpServers": {"grok": self.server}}))

    def environment(self) -> dict[str, str]:
        return {
            "HOME": str(self.root), "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8",
            "TERM": "xterm-256color", "ANTHROPIC_BASE_URL": self.model.url, "ANTHROPIC_API_KEY": API_KEY,
            "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", **self.env,
        }  # fmt: skip

    def arguments(self) -> list[str]:
        return [
            "--mcp-config", str(self.root / "mcp.json"), "--strict-mcp-config",
            "--allowedTools", CLAUDE_TOOL, "--debug-file", str(self.root / "debug.log"),
        ]  # fmt: skip

    def debug_log(self) -> str:
        path = self.root / "debug.log"
        return path.read_text(errors="replace") if path.exists() else ""


def stdio_entry(base_url: str, **env: str) -> dict[str, Any]:
    server_vars = {"ACEDATACLOUD_API_TOKEN": TOKEN, "ACEDATACLOUD_API_BASE_URL": base_url, **env}
    return {"type": "stdio", "command": SCRIPT, "args": [], "env": server_vars, "alwaysLoad": True}


def http_entry(url: str) -> dict[str, Any]:
    return {"type": "http", "url": url, "headers": {"Authorization": f"Bearer {TOKEN}"}, "alwaysLoad": True}


class Tmux:
    """One tmux server of our own (its own socket), running one command in a 200x50 window."""

    def __init__(self, name: str, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        assert TMUX is not None
        self.base = [TMUX, "-L", name]
        line = shlex.join(["env", "-i", *(f"{key}={value}" for key, value in env.items()), *command])
        self.run("new-session", "-d", "-s", "main", "-x", "200", "-y", "50", "-c", str(cwd), line)

    def run(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "main", "-S", "-300")

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "main", "-l", text)
        time.sleep(0.5)
        self.run("send-keys", "-t", "main", "Enter")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30, check=False)


def wait_for(condition: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(1)
    return False


def claude_ui(home: ClaudeHome, name: str, expected: str) -> str:
    """Claude Code's interactive UI in tmux: type the prompt, wait for the model to answer with
    ``expected``; the screen at the end."""
    assert CLAUDE is not None
    tmux = Tmux(name, [CLAUDE, *home.arguments()], home.project, home.environment())
    try:
        assert wait_for(lambda: PROMPT_MARK in tmux.screen(), 60), tmux.screen()
        tmux.type(PROMPT)
        wait_for(lambda: any(expected in answer for answer in home.model.answers), LIMIT)
        time.sleep(2)
        return tmux.screen()
    finally:
        tmux.close()


@dataclass
class UIRun:
    screen: str
    model: MessagesAPI
    debug: str
    upstream_requests: int


def claude_ui_long_call(transport: str, tmp_path: Path) -> UIRun:
    """Claude Code's UI asks for the 3-minute call over ``transport``."""
    with Upstream() as upstream, MessagesAPI(arguments=ARGUMENTS) as model:
        with http_server(upstream) if transport == "http" else nullcontext() as url:
            entry = stdio_entry(upstream.url(LONG)) if url is None else http_entry(url)
            home = ClaudeHome(tmp_path / "claude", model, entry)
            screen = claude_ui(home, f"grok-tasks-{os.getpid()}-{transport}", FULL_ANSWER)
        return UIRun(screen, model, home.debug_log(), len(upstream.requests))


@dataclass
class PrintRun:
    done: subprocess.CompletedProcess[str]
    model: MessagesAPI


def claude_print_collects(tmp_path: Path) -> PrintRun:
    """``claude -p`` asks for a call that returns ``running`` after 1 s; its model collects it."""
    assert CLAUDE is not None
    with Upstream() as upstream, MessagesAPI(collect=True) as model:
        home = ClaudeHome(tmp_path, model, stdio_entry(upstream.url("slow4000"), GROK_RETURN_AFTER="1"))
        done = subprocess.run(
            [CLAUDE, "-p", PROMPT, *home.arguments()], capture_output=True, text=True,
            env=home.environment(), cwd=home.project, timeout=120, check=False,
        )  # fmt: skip
    return PrintRun(done, model)


# The runs, concurrently --------------------------------------------------------------------------

RUNS: dict[str, Callable[[Path], Any]] = {
    "ts-stdio": lambda path: ts_requester("stdio", path),
    "ts-http": lambda path: ts_requester("http", path),
    "claude-stdio": lambda path: claude_ui_long_call("stdio", path),
    "claude-http": lambda path: claude_ui_long_call("http", path),
    "claude-print": claude_print_collects,
}


@pytest.fixture(scope="module")
def long_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Any]]]:
    """Every long run of this file that can run here, started at once."""
    wanted = {name for name in RUNS if TS_READY or not name.startswith("ts")}
    wanted -= {"claude-stdio", "claude-http"} if CLAUDE is None or TMUX is None else set()
    wanted -= {"claude-print"} if CLAUDE is None else set()
    with ThreadPoolExecutor(max_workers=len(RUNS)) as pool:
        yield {name: pool.submit(RUNS[name], tmp_path_factory.mktemp(name)) for name in sorted(wanted)}


@needs_ts
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_ts_requester_gets_a_task_and_the_full_answer(
    long_runs: dict[str, Future[Any]], transport: str
) -> None:
    seen = long_runs[f"ts-{transport}"].result(timeout=LIMIT + 60)
    assert seen["era"] == "modern" and seen["advertised"], seen  # server/discover names the extension
    assert seen["kind"] == "task" and seen["taskId"], seen  # a long call became a task
    assert seen["statuses"][0] == "working" and seen["statuses"][-1] == "completed", seen["statuses"]
    assert seen["outcome"] == "completed", seen
    (block,) = seen["result"]["content"]
    answer = seen["result"]["structuredContent"]["result"]["choices"][0]["message"]["content"]
    assert answer == FULL_ANSWER and FULL_ANSWER in block["text"]
    assert seen["seconds"] >= 170  # the answer streamed for 3 minutes
    again = seen["again"]  # a second tasks/get returns the same finished task
    assert again["status"] == "completed" and again["taskId"] == seen["taskId"], again
    assert again["result"]["structuredContent"] == seen["result"]["structuredContent"]


@needs_claude_ui
@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_claude_code_ui_runs_a_long_call_as_a_task(long_runs: dict[str, Future[Any]], transport: str) -> None:
    run: UIRun = long_runs[f"claude-{transport}"].result(timeout=LIMIT + 60)
    assert run.model.calls == [ARGUMENTS], run.model.calls  # one call, no collecting
    assert run.upstream_requests == 1
    # The model is told at once that the call became a task, then gets the answer as a notification.
    notice, answer = run.model.answers
    assert answer == SAYS + FULL_ANSWER, (run.model.tool_results, run.screen[-3000:])
    task = re.search(r"started server-side task (conv_[\w-]+)", notice)
    assert task is not None, notice
    assert f"returned task {task[1]} (working); backgrounded" in run.debug  # in Claude Code's own log


# The path `claude -p` takes ---------------------------------------------------------------------


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code is not installed (CI installs it)")
def test_claude_code_print_mode_model_is_told_how_to_collect(long_runs: dict[str, Future[Any]]) -> None:
    run: PrintRun = long_runs["claude-print"].result(timeout=180)
    assert run.done.returncode == 0, run.done.stderr[-3000:]
    running, *_ = run.model.tool_results  # what the model saw: structuredContent, as JSON
    shown = json.loads(running)
    assert shown["status"] == "running", running
    conversation = shown["conversation_id"]
    told = [note for note in shown["notes"] if conversation in note]
    assert told and "grok_chat_completions" in told[0], running  # the instruction to collect
    assert run.model.calls[1] == {"conversation_id": conversation}
    assert SAYS + "pong" in run.done.stdout, run.done.stdout
