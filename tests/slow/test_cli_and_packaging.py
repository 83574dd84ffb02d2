"""--check, the registry metadata, and launching through third-party tooling (uvx, the Inspector)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from standin.upstream import Upstream

from grok_chat_mcp import __version__
from grok_chat_mcp.cli import mask
from grok_chat_mcp.config import ENV_VARS
from tests.conftest import SCRIPT, TOKEN, server_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: The Inspector version the docs name, pinned with the other npm tools.
INSPECTOR = json.loads((ROOT / ".ci" / "package.json").read_text())["devDependencies"][
    "@modelcontextprotocol/inspector"
]


def run_check(env: dict[str, str], cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, "--check", *extra], capture_output=True, text=True, env=env, cwd=cwd, timeout=30
    )


def test_check_prints_masked_configuration(tmp_path: Path) -> None:
    done = run_check(server_env("http://127.0.0.1:1/x", GROK_REQUEST_TIMEOUT="42"), tmp_path)
    assert done.returncode == 0
    assert TOKEN not in done.stdout
    assert f"{mask(TOKEN)}  (environment)" in done.stdout
    assert "http://127.0.0.1:1/x" in done.stdout and "42 s read" in done.stdout
    assert "no request was made" in done.stdout


def test_check_without_token_fails_clearly(tmp_path: Path) -> None:
    env = server_env("http://127.0.0.1:1")
    del env["ACEDATACLOUD_API_TOKEN"]
    done = run_check(env, tmp_path)
    assert done.returncode == 1
    assert "ACEDATACLOUD_API_TOKEN is not set" in done.stdout


@pytest.mark.parametrize(
    ("token", "model", "code", "verdict"),
    [
        (TOKEN, "grok-4", 0, "ok: the token works and grok-4 answered in "),
        ("bad-token", "grok-4", 1, "error: the token does not work ("),
        ("used-up-token", "grok-4", 1, "error: the token works, but the balance is used up ("),
        (TOKEN, "grok-2-vision", 1, "error: the token works, but grok-2-vision is not available ("),
    ],
)
def test_live_check_says_what_works(
    stand_in: Upstream, tmp_path: Path, token: str, model: str, code: int, verdict: str
) -> None:
    env = server_env(stand_in.url("ok"), ACEDATACLOUD_API_TOKEN=token)
    done = run_check(env, tmp_path, "--live", "--model", model)
    assert done.returncode == code, done.stdout + done.stderr
    assert f"(model {model}, max_completion_tokens 1)" in done.stdout
    assert verdict in done.stdout
    assert token not in done.stdout and "Traceback" not in done.stderr
    assert stand_in.requests[-1].body == {
        "model": model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_completion_tokens": 1,
    }


def test_live_needs_check(tmp_path: Path) -> None:
    done = subprocess.run([SCRIPT, "--live"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and "--live goes with --check" in done.stderr


def test_mask() -> None:
    assert mask("sk-0123456789abcdefXYZ") == "sk-...fXYZ (22 characters)"
    assert mask("short") == "set (5 characters)"


def test_registry_metadata_matches_the_package() -> None:
    server = json.loads((ROOT / "server.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert f"<!-- mcp-name: {server['name']} -->" in readme
    assert len(server["description"]) <= 100
    (package,) = server["packages"]
    assert server["version"] == package["version"] == __version__
    assert package["identifier"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert package["transport"] == {"type": "stdio"}
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert list(variables) == [name for name, _, _ in ENV_VARS]
    assert variables["ACEDATACLOUD_API_TOKEN"]["isSecret"] is True
    assert f"## {__version__}" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.skipif(
    shutil.which("uvx", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}") is None, reason="no uvx"
)
def test_uvx_from_source_completes_initialize(tmp_path: Path) -> None:
    uvx = shutil.which("uvx", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert uvx is not None
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "uvx", "version": "0"},
    }
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}) + "\n"
    env = server_env("http://127.0.0.1:1", UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    done = subprocess.run(
        [uvx, "--no-config", "--from", str(ROOT), "grok-chat-mcp"],
        input=message,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reply = json.loads(done.stdout.splitlines()[0])
    assert reply["result"]["serverInfo"] == {**reply["result"]["serverInfo"], "name": "grok-chat-mcp"}


@pytest.mark.skipif(shutil.which("npx") is None, reason="no npx (Node.js)")
def test_mcp_inspector_cli_lists_and_calls_the_tool(tmp_path: Path) -> None:
    npx = shutil.which("npx")
    assert npx is not None
    inspector = [npx, "-y", f"@modelcontextprotocol/inspector@{INSPECTOR}", "--cli"]
    with Upstream() as upstream:
        server = [
            "-e",
            f"ACEDATACLOUD_API_TOKEN={TOKEN}",
            "-e",
            f"ACEDATACLOUD_API_BASE_URL={upstream.url('ok')}",
        ]
        listed = subprocess.run(
            [*inspector, *server, SCRIPT, "--method", "tools/list"],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert json.loads(listed.stdout)["tools"][0]["name"] == "grok_chat_completions"
        called = subprocess.run(
            [*inspector, *server, SCRIPT, "--method", "tools/call", "--tool-name", "grok_chat_completions",
             "--tool-arg", 'messages=[{"role":"user","content":"hi"}]', "--tool-arg", "temperature=0.5"],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert called.returncode == 0, called.stderr[-2000:]
        result = json.loads(called.stdout)
        assert result["structuredContent"]["result"]["choices"][0]["message"]["content"] == "pong"
        assert upstream.requests[-1].body == {
            "model": "grok-4",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.5,
        }


#: The files whose JSON blocks are client configurations a user pastes.
CONFIG_DOCS = ("README.md", "docs/clients.md")


def json_blocks(path: Path) -> list[Any]:
    """The ```json blocks of a Markdown file, parsed."""
    text = path.read_text(encoding="utf-8")
    return [json.loads(block.split("```", 1)[0]) for block in text.split("```json\n")[1:]]


def doc_configs() -> list[dict[str, Any]]:
    """The client configurations in the README and docs/clients.md, with the clone's path filled in
    as a user would (other JSON blocks, such as the README's example call, are left out)."""
    configs = []
    for name in CONFIG_DOCS:
        text = json.dumps(json_blocks(ROOT / name)).replace("/path/to/grok-chat-mcp", str(ROOT))
        configs += [c for c in json.loads(text) if {"mcpServers", "servers", "command"} & c.keys()]
    return configs


def test_documented_configs_launch_the_installed_server() -> None:
    configs = doc_configs()
    assert len(configs) >= 3  # Claude Desktop (README), Cursor, VS Code
    for config in configs:
        servers = config.get("mcpServers") or config.get("servers") or {"grok": config}
        server = servers["grok"]
        assert server["command"] == str(ROOT / ".venv" / "bin" / "grok-chat-mcp")
        assert Path(server["command"]).exists() or not (ROOT / ".venv").exists()
        assert server["args"] == []
        assert "ACEDATACLOUD_API_TOKEN" in server["env"]


def test_start_up_defers_garbage_collection_and_restores_it() -> None:
    """The collector is off while the SDK is imported and the server built, then as it was; what
    a successful start-up built is frozen."""
    from grok_chat_mcp.cli import collecting_later

    assert gc.isenabled()
    try:
        with collecting_later():
            assert not gc.isenabled()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # what start-up built is never walked again
        gc.unfreeze()
        gc.disable()
        try:
            with collecting_later():
                pass
            assert not gc.isenabled()  # a host that turned it off keeps it off
        finally:
            gc.enable()
        gc.unfreeze()
        with pytest.raises(RuntimeError), collecting_later():
            raise RuntimeError("start-up failed")
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0  # a failed start-up freezes nothing
    finally:
        gc.unfreeze()


UV = shutil.which("uv", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.mark.skipif(UV is None, reason="needs uv (the test extra installs it)")
def test_the_sdist_carries_what_its_tests_need_and_they_run_from_it(tmp_path: Path) -> None:
    """Built as a release builds it; unpacked, its tests import and the unit tests pass against its
    own source (they stopped at conftest when standin/ was left out)."""
    assert UV is not None
    done = subprocess.run(
        [UV, "build", "--sdist", "--no-config", "--out-dir", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        archive.extractall(tmp_path / "unpacked", filter="data")
    root = tmp_path / "unpacked" / sdist.name.removesuffix(".tar.gz")
    for needed in ("standin/upstream.py", "tests/conftest.py", "docs/design.md", ".ci/run", "uv.lock", "src"):
        assert (root / needed).exists(), needed
    assert not [
        name for name in names if "/.venv/" in name or "node_modules" in name or "__pycache__" in name
    ]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run(
        [*pytest_command, "--collect-only", "-m", "slow or not slow"],
        capture_output=True, text=True, cwd=root, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout[-3000:]
    unit = subprocess.run(
        [*pytest_command, "tests/unit", "-x"], capture_output=True, text=True, cwd=root, env=env, timeout=600,
        check=False,
    )  # fmt: skip
    assert unit.returncode == 0, unit.stdout[-3000:]
    assert "passed" in unit.stdout.splitlines()[-1]
