"""``--auth oauth`` in a real server process, signed in to by the TypeScript SDK's OAuth client
and by the Python SDK's over a socket; the command line's refusals."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult
from standin.upstream import Upstream

from tests.conftest import HELLO, server_env
from tests.server.oauth_flow import Memory, Person, code_of, form_values, sdk_client

ROOT = Path(__file__).resolve().parents[2]
TS_SDK = ROOT / ".ci" / "node_modules" / "@modelcontextprotocol" / "sdk"
ALICE = "alice-acedata-token-0001"
SERVER = [sys.executable, "-m", "grok_chat_mcp", "--transport", "http"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def oauth_server(upstream: Upstream, tmp_path: Path) -> Iterator[str]:
    """The server with ``--auth oauth`` on a free port; yields its public URL."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {**server_env(upstream.url("ok")), "GROK_OAUTH_KEY": Fernet.generate_key().decode()}
    env.pop("ACEDATACLOUD_API_TOKEN", None)
    log = (tmp_path / "server.log").open("w")
    command = [*SERVER, "--port", str(port), "--auth", "oauth", "--public-url", public]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=tmp_path)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{public}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield public
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        assert ALICE not in (tmp_path / "server.log").read_text()  # never in a log line


@pytest.mark.skipif(
    not (TS_SDK.exists() and shutil.which("node")), reason="needs the TypeScript SDK in .ci (CI installs it)"
)
def test_typescript_sdk_signs_in_and_calls_with_the_users_token(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    with Upstream() as upstream, oauth_server(upstream, tmp_path) as public:
        script = ROOT / "tests" / "slow" / "ts_oauth_client.mjs"
        done = subprocess.run(
            [node, str(script), TS_SDK.as_uri(), f"{public}/mcp", ALICE],
            capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
        )  # fmt: skip
        received = [request.headers.get("Authorization") for request in upstream.requests]
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["firstError"] == "UnauthorizedError"  # the first 401 started the flow
    assert "code_challenge_method=S256" in seen["authorizationUrl"]
    assert seen["registered"] and seen["tokenType"].lower() == "bearer"
    assert not seen["result"].get("isError"), seen["result"]
    assert received == [f"Bearer {ALICE}"]
    assert ALICE not in done.stdout


@pytest.mark.anyio
async def test_python_sdk_signs_in_over_a_socket(tmp_path: Path) -> None:
    with Upstream() as upstream, oauth_server(upstream, tmp_path) as public:
        async with httpx2.AsyncClient() as tab:
            person = Person(None, ALICE)

            async def come_back() -> AuthorizationCodeResult:  # the person, in their browser
                page = await tab.get((await tab.get(person.urls[-1])).headers["location"])
                fields = {**form_values(page.text), "token": ALICE, "decision": "allow"}
                return code_of(await tab.post(f"{public}/oauth/consent", data=fields))

            person.come_back = come_back  # type: ignore[method-assign]
            async with (
                sdk_client(person, Memory(), server_url=f"{public}/mcp") as http,
                Client(streamable_http_client(f"{public}/mcp", http_client=http)) as client,
            ):
                result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
        received = [request.headers.get("Authorization") for request in upstream.requests]
    assert not result.is_error, result
    assert received == [f"Bearer {ALICE}"]


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        ({}, ["--public-url", "https://grok.example.com"], "make one: python3 -c"),
        ({"GROK_OAUTH_KEY": "short"}, ["--public-url", "https://grok.example.com"], "not a valid Fernet key"),
        ({"GROK_OAUTH_KEY": Fernet.generate_key().decode()}, [], "needs --public-url"),
    ],
)
def test_oauth_mode_refuses_to_start_without_what_it_needs(
    tmp_path: Path, env: dict[str, str], args: list[str], says: str
) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("GROK_OAUTH_KEY", "ACEDATACLOUD_API_TOKEN")}
    done = subprocess.run(
        [*SERVER, "--port", "0", "--auth", "oauth", *args], env={**environ, **env}, capture_output=True,
        text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert "short" not in done.stderr  # the key's value is not echoed
