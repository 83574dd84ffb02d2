"""The Claude Desktop bundle: validated and packed by ``mcpb``, then started the way the host starts it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from standin.upstream import Upstream

from grok_chat_mcp import __version__
from grok_chat_mcp.config import ENV_VARS, TOKEN_VAR
from grok_chat_mcp.tool import DESCRIPTION as TOOL_DESCRIPTION
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, TOKEN

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((ROOT / "bundle" / "manifest.json").read_text())
MCPB_PACKAGE = ROOT / ".ci" / "node_modules" / "@anthropic-ai" / "mcpb"
BIN = Path(sys.executable).parent
UV = shutil.which("uv", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
NODE = shutil.which("node")


def test_manifest_is_in_step_with_the_server() -> None:
    assert MANIFEST["version"] == __version__
    assert MANIFEST["tools"] == [{"name": TOOL_NAME, "description": TOOL_DESCRIPTION}]
    token = MANIFEST["user_config"]["api_token"]
    assert token["sensitive"] is True and token["required"] is True
    env = MANIFEST["server"]["mcp_config"]["env"]
    assert env[TOKEN_VAR] == "${user_config.api_token}"
    # Claude Desktop's settings show what users tune; not log levels or the event loop. The bundle
    # keeps the default store (the user's own file) and GROK_RETURN_AFTER (45 s, under the host's 60 s).
    # GROK_OAUTH_KEY is for the HTTP transport's sign-ins; the bundle runs over stdio.
    untuned = {"LOG_LEVEL", "GROK_EVENT_LOOP", "GROK_STORE", "GROK_RETURN_AFTER", "GROK_OAUTH_KEY"}
    assert set(env) == {name for name, _, _ in ENV_VARS} - untuned
    for key, option in MANIFEST["user_config"].items():
        assert option.get("required") is (key == "api_token")
    assert MANIFEST["server"]["type"] == "uv"
    assert "--frozen" in MANIFEST["server"]["mcp_config"]["args"]  # uv installs what uv.lock pins
    assert (ROOT / "bundle" / MANIFEST["icon"]).read_bytes().startswith(b"\x89PNG")


def locked_versions(lock: Path) -> dict[str, str]:
    """Package name to version, as ``uv.lock`` pins them (the project itself has no pin)."""
    packages = tomllib.loads(lock.read_text())["package"]
    return {p["name"]: p["version"] for p in packages if "version" in p}


@pytest.mark.skipif(UV is None, reason="needs uv (the test extra installs it)")
def test_bundle_lock_is_in_step_with_pyproject(tmp_path: Path) -> None:
    """uv.lock (the bundle carries the repository's one lock) was generated from this pyproject.toml;
    uv would otherwise re-resolve."""
    assert UV is not None
    spec = importlib.util.spec_from_file_location("bundle_build", ROOT / "bundle" / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.stage(tmp_path / "staged")
    assert (tmp_path / "staged" / "uv.lock").read_bytes() == (ROOT / "uv.lock").read_bytes()
    done = subprocess.run(
        [UV, "lock", "--check", "--offline", "--directory", str(tmp_path / "staged")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"uv.lock is stale: run uv lock\n{done.stderr}"
    assert {"mcp", "httpx", "pydantic"} <= locked_versions(ROOT / "uv.lock").keys()


needs_tools = pytest.mark.skipif(
    not (MCPB_PACKAGE.exists() and UV and NODE),
    reason="needs mcpb in .ci/node_modules (CI installs it), uv and node",
)


def host_config(extension: Path, user_config: dict[str, Any]) -> dict[str, Any]:
    """The server command Claude Desktop would run: mcpb's own ``getMcpConfigForManifest``."""
    script = f"""
import {{ getMcpConfigForManifest }} from {json.dumps((MCPB_PACKAGE / "dist" / "index.js").as_uri())};
import {{ readFileSync }} from "node:fs";
const manifest = JSON.parse(readFileSync({json.dumps(str(extension / "manifest.json"))}, "utf8"));
const config = await getMcpConfigForManifest({{
  manifest, extensionPath: {json.dumps(str(extension))}, systemDirs: {{}}, pathSeparator: "/",
  userConfig: {json.dumps(user_config)},
}});
console.log(JSON.stringify(config));
"""
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script], capture_output=True, text=True, check=True, timeout=60
    )
    config: dict[str, Any] = json.loads(done.stdout)
    return config


@needs_tools
@pytest.mark.anyio
async def test_bundle_is_validated_packed_and_runs_as_the_host_runs_it(tmp_path: Path) -> None:
    mcpb = [str(ROOT / ".ci" / "node_modules" / ".bin" / "mcpb")]
    built = subprocess.run(  # noqa: ASYNC221 - a build step before the async part
        [sys.executable, str(ROOT / "bundle" / "build.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    bundle = Path(built.stdout.strip())
    assert bundle.name == f"grok-chat-mcp-{__version__}.mcpb"
    extension = tmp_path / "installed"
    unpack = [*mcpb, "unpack", str(bundle), str(extension)]
    subprocess.run(unpack, check=True, capture_output=True, timeout=60)  # noqa: ASYNC221
    assert (extension / "manifest.json").exists() and (
        extension / "src" / "grok_chat_mcp" / "server.py"
    ).exists()
    assert (extension / "uv.lock").read_bytes() == (ROOT / "uv.lock").read_bytes()

    with Upstream() as upstream:
        config = host_config(extension, {"api_token": TOKEN, "base_url": upstream.url("ok")})
        assert config["command"] == "uv"
        assert str(extension) in config["args"]
        assert config["env"][TOKEN_VAR] == TOKEN  # the keychain value, substituted by the host
        assert config["env"]["GROK_REQUEST_TIMEOUT"] == "900"  # defaults filled in
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ACEDATACLOUD_", "GROK_"))}
        env = {**inherited, **config["env"], "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        command = shutil.which(config["command"], path=env["PATH"])
        assert command is not None
        server = StdioServerParameters(command=command, args=config["args"], env=env, cwd=tmp_path)
        async with Client(server, read_timeout_seconds=300) as client:
            (tool,) = (await client.list_tools()).tools
            assert tool.name == TOOL_NAME
            result = await client.call_tool(TOOL_NAME, {"messages": HELLO})
        assert not result.is_error
        assert result.structured_content["result"]["choices"][0]["message"]["content"] == "pong"
        assert upstream.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    # The host's uv installed exactly the versions the bundle's uv.lock pins.
    pinned = locked_versions(extension / "uv.lock")
    installed = {}
    for info in extension.glob(".venv/**/site-packages/*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").split("-", 1)
        installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert {"mcp", "httpx", "pydantic"} <= installed.keys()
    for name, version in installed.items():
        if name != "grok-chat-mcp":
            assert pinned[name] == version, name
