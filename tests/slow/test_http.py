"""The streamable HTTP transport: per-request tokens, no open relay, browser safety, parity."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from standin.upstream import SSE_WORDS, Upstream

from grok_chat_mcp.config import Settings
from grok_chat_mcp.transports.http import Policy, bearer, create_app, is_loopback
from tests.conftest import HELLO, SCRIPT, server_env

pytestmark = pytest.mark.anyio
SERVER_TOKEN = "server-own-token-0000"


@asynccontextmanager
async def serving(stand_in: Upstream, policy: Policy, server_token: str | None = None) -> AsyncIterator[str]:
    """Serve the app on 127.0.0.1 (whatever host the policy believes in); yield the base URL."""
    settings = Settings(api_token=server_token, base_url=stand_in.url("ok"), max_retries=0)
    app = create_app(settings, policy, heartbeat=0.2)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        for _ in range(500):  # uvicorn sets a flag, it has no event to wait on
            if server.started:
                break
            await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True


@asynccontextmanager
async def mcp_client(base: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        yield client


LOCAL = Policy(host="127.0.0.1", server_token=False)
PUBLIC = Policy(host="0.0.0.0", server_token=False)


async def test_health_answers_without_upstream(stand_in: Upstream) -> None:
    async with serving(stand_in, PUBLIC) as base, httpx.AsyncClient() as http:
        response = await http.get(f"{base}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert stand_in.requests == []


async def test_request_token_is_forwarded_and_wins(stand_in: Upstream) -> None:
    async with serving(stand_in, LOCAL, SERVER_TOKEN) as base, mcp_client(base, "client-token-A") as client:
        result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
    assert not result.is_error
    assert stand_in.requests[-1].headers["Authorization"] == "Bearer client-token-A"


async def test_loopback_without_token_uses_the_servers(stand_in: Upstream) -> None:
    policy = Policy(host="127.0.0.1", server_token=True)
    async with serving(stand_in, policy, SERVER_TOKEN) as base, mcp_client(base, None) as client:
        result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
    assert not result.is_error
    assert stand_in.requests[-1].headers["Authorization"] == f"Bearer {SERVER_TOKEN}"


async def test_non_loopback_refuses_requests_without_their_own_token(stand_in: Upstream) -> None:
    async with serving(stand_in, PUBLIC) as base, httpx.AsyncClient() as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        refused = await http.post(f"{base}/mcp", json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in refused.json()["error"]["message"]
        async with mcp_client(base, "client-token-B") as client:
            assert not (await client.call_tool("grok_chat_completions", {"messages": HELLO})).is_error
    assert [r.headers["Authorization"] for r in stand_in.requests] == ["Bearer client-token-B"]


async def test_shared_token_on_non_loopback_only_when_opted_in(stand_in: Upstream) -> None:
    policy = Policy(host="0.0.0.0", server_token=True, allow_shared_token=True)
    async with serving(stand_in, policy, SERVER_TOKEN) as base, mcp_client(base, None) as client:
        assert not (await client.call_tool("grok_chat_completions", {"messages": HELLO})).is_error
    assert stand_in.requests[-1].headers["Authorization"] == f"Bearer {SERVER_TOKEN}"


async def test_two_clients_never_see_each_others_token(stand_in: Upstream) -> None:
    async with serving(stand_in, PUBLIC) as base:

        async def calls(token: str) -> None:
            async with mcp_client(base, token) as client:
                for index in range(5):
                    arguments = {"messages": HELLO, "user": "scenario:slow20", "seed": index}
                    arguments["messages"] = [{"role": "user", "content": token}]
                    assert not (await client.call_tool("grok_chat_completions", arguments)).is_error

        async with anyio.create_task_group() as group:
            group.start_soon(calls, "token-of-alice")
            group.start_soon(calls, "token-of-bob")
    assert len(stand_in.requests) == 10
    for recorded in stand_in.requests:
        assert recorded.headers["Authorization"] == f"Bearer {recorded.body['messages'][0]['content']}"


@pytest.mark.parametrize(
    ("origin", "allowed", "status"),
    [
        ("http://evil.example", (), 403),
        ("http://localhost:3000", (), 401),  # passes the origin check, then needs a token
        ("https://app.example.com", ("https://app.example.com",), 401),
        ("https://other.example.com", ("https://app.example.com",), 403),
    ],
)
async def test_browser_origins(
    stand_in: Upstream, origin: str, allowed: tuple[str, ...], status: int
) -> None:
    policy = Policy(host="0.0.0.0", server_token=False, allowed_origins=allowed)
    async with serving(stand_in, policy) as base, httpx.AsyncClient() as http:
        response = await http.post(f"{base}/mcp", json={}, headers={"Origin": origin})
    assert response.status_code == status


async def test_streamed_call_with_progress_over_http(stand_in: Upstream) -> None:
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with serving(stand_in, LOCAL) as base, mcp_client(base, "tok-stream") as client:
        arguments = {"messages": HELLO, "stream": True, "user": "scenario:sse100"}
        result = await client.call_tool("grok_chat_completions", arguments, progress_callback=on_progress)
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["result"]["choices"][0]["message"]["content"] == "".join(SSE_WORDS)
    assert len(messages) >= 3
    assert messages[-1].endswith("chars received ... " + "".join(SSE_WORDS))


async def test_validation_and_errors_match_stdio(stand_in: Upstream) -> None:
    async with serving(stand_in, LOCAL) as base, mcp_client(base, "tok-errors") as client:
        invalid = await client.call_tool("grok_chat_completions", {"messages": HELLO, "top_p": 3})
        failed = await client.call_tool(
            "grok_chat_completions", {"messages": HELLO, "user": "scenario:status403"}
        )
        local_file = {"type": "image_url", "image_url": {"url": "/etc/hostname"}}
        refused = await client.call_tool(
            "grok_chat_completions", {"messages": [{"role": "user", "content": [local_file]}]}
        )
    assert invalid.is_error and "top_p: input should be less than or equal to 1" in str(invalid.content)
    assert failed.is_error and "HTTP 403" in str(failed.content)
    assert refused.is_error and "local files are not accepted here" in str(refused.content)
    assert len(stand_in.requests) == 1


def test_policy() -> None:
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("127.8.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("example.com")
    assert Policy("127.0.0.1", server_token=True).startup_problem() is None
    problem = Policy("0.0.0.0", server_token=True).startup_problem()
    assert problem is not None and "--allow-shared-token" in problem
    assert Policy("0.0.0.0", server_token=True, allow_shared_token=True).startup_problem() is None
    assert Policy("0.0.0.0", server_token=False).startup_problem() is None
    assert not Policy("192.0.2.1", server_token=True, allow_shared_token=False).shares_server_token
    assert Policy("localhost", server_token=True).shares_server_token
    assert bearer({"authorization": "Bearer abc"}) == "abc"
    assert bearer({"authorization": "bearer  abc "}) == "abc"
    assert bearer({"authorization": "Basic abc"}) is None
    assert bearer({"authorization": "Bearer "}) is None
    assert bearer(None) is None


def test_cli_refuses_to_share_the_token_on_a_public_address(tmp_path: Path) -> None:
    done = subprocess.run(
        [SCRIPT, "--transport", "http", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True, text=True, env=server_env("http://127.0.0.1:1"), cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--allow-shared-token" in done.stderr
    assert "Traceback" not in done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_cli_serves_http(stand_in: Upstream, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - a server that runs beside the test
        [SCRIPT, "--transport", "http", "--port", str(port)],
        env=server_env(stand_in.url("ok")), cwd=tmp_path, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await anyio.sleep(0.05)
        async with mcp_client(f"http://127.0.0.1:{port}", "tok-cli") as client:
            result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
        assert not result.is_error
        assert stand_in.requests[-1].headers["Authorization"] == "Bearer tok-cli"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert b"tok-cli" not in stderr


def test_stdio_mode_does_not_load_the_http_transport() -> None:
    # (The SDK itself imports starlette and uvicorn; our HTTP layer stays out of stdio start-up.)
    code = (
        "import sys; from grok_chat_mcp.config import Settings; "
        "from grok_chat_mcp.server import build_server; build_server(Settings()); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('grok_chat_mcp.web'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize("origin", ["https://app.example.com", "http://localhost:5173"])
async def test_allowed_browser_origins_get_cors_headers(stand_in: Upstream, origin: str) -> None:
    policy = Policy(host="0.0.0.0", server_token=False, allowed_origins=("https://app.example.com",))
    preflight_headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with serving(stand_in, policy) as base, httpx.AsyncClient() as http:
        preflight = await http.options(f"{base}/mcp", headers=preflight_headers)
        refused = await http.options(
            f"{base}/mcp", headers={**preflight_headers, "Origin": "https://evil.example"}
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 403


MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_answers_vary_by_origin(stand_in: Upstream) -> None:
    """Every MCP answer says it depends on Origin (caches must not share it across origins), with
    or without an Origin header; an allowed origin also gets its CORS header."""
    policy = Policy(host="0.0.0.0", server_token=False, allowed_origins=("https://app.example.com",))
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {**MCP_HEADERS, "Mcp-Protocol-Version": "2025-06-18", "Authorization": "Bearer tok-vary"}
    async with serving(stand_in, policy) as base, httpx.AsyncClient(timeout=10) as http:
        plain = await http.post(f"{base}/mcp", json=ping, headers=headers)
        browser = await http.post(
            f"{base}/mcp", json=ping, headers={**headers, "Origin": "https://app.example.com"}
        )
    assert plain.status_code == browser.status_code == 200
    assert plain.headers.get_list("vary") == ["Origin"]
    assert "access-control-allow-origin" not in plain.headers
    assert browser.headers.get_list("vary") == ["Origin"]
    assert browser.headers["access-control-allow-origin"] == "https://app.example.com"


def raw_call(request_id: int, scenario: str) -> dict[str, object]:
    arguments = {"messages": HELLO, "user": f"scenario:{scenario}", "stream": True}
    params = {"name": "grok_chat_completions", "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def cancel(request_id: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}


async def test_cancellation_in_its_own_post_aborts_the_callers_upstream_call(stand_in: Upstream) -> None:
    async with serving(stand_in, PUBLIC) as base, httpx.AsyncClient(timeout=30) as http:

        async def post(body: dict[str, object], token: str) -> httpx.Response:
            headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
            return await http.post(f"{base}/mcp", json=body, headers=headers)

        async with anyio.create_task_group() as group:
            group.start_soon(post, raw_call(7, "long50"), "token-of-alice")
            with anyio.fail_after(5):
                while not stand_in.first_chunk_sent:
                    await anyio.sleep(0.02)
            other = await post(cancel(7), "token-of-mallory")  # same id, another caller: no effect
            assert other.status_code == 202
            await anyio.sleep(0.4)
            assert stand_in.disconnects == []
            own = await post(cancel(7), "token-of-alice")
            assert own.status_code == 202
            with anyio.fail_after(3):
                while not stand_in.disconnects:
                    await anyio.sleep(0.02)
    assert stand_in.disconnects, "the upstream generation was not aborted"


async def test_get_on_the_stateless_endpoint_is_refused(stand_in: Upstream) -> None:
    async with serving(stand_in, LOCAL) as base, httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{base}/mcp", headers={"Accept": "text/event-stream"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"


async def test_every_loopback_address_is_served(stand_in: Upstream) -> None:
    settings = Settings(api_token=None, base_url=stand_in.url("ok"), max_retries=0)
    app = create_app(settings, Policy(host="127.0.0.2", server_token=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.2", port=0, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        with anyio.fail_after(5):
            while not server.started:
                await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            async with mcp_client(f"http://127.0.0.2:{port}", "tok-2") as client:  # Host: 127.0.0.2:port
                assert not (await client.call_tool("grok_chat_completions", {"messages": HELLO})).is_error
        finally:
            server.should_exit = True


def start_cli(
    stand_in: Upstream, tmp_path: Path, *extra: str, **env: str
) -> tuple[subprocess.Popen[bytes], int]:
    """The console script over HTTP on a port it picks (--port 0); the port, read from its log."""
    process = subprocess.Popen(
        [SCRIPT, "--transport", "http", "--port", "0", *extra],
        env=server_env(stand_in.url("ok"), **env),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    for line in process.stderr:  # the first lines: the real address
        if b"serving MCP at http://127.0.0.1:" in line:
            return process, int(line.split(b"127.0.0.1:")[1].split(b"/")[0])
    raise AssertionError("the server never said where it listens")


async def test_port_zero_logs_the_real_port_and_tokens_never_reach_the_log(
    stand_in: Upstream, tmp_path: Path
) -> None:
    process, port = start_cli(stand_in, tmp_path, LOG_LEVEL="DEBUG")
    try:
        async with mcp_client(f"http://127.0.0.1:{port}", "callers-own-token-1234") as client:
            arguments = {"messages": HELLO, "user": "scenario:echo-token"}
            result = await client.call_tool("grok_chat_completions", arguments)
        assert result.is_error and "callers-own-token-1234" not in str(result.content)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert b"callers-own-token-1234" not in stderr
    assert b"[redacted]" in stderr  # the DEBUG log did carry it, redacted


async def test_idle_connections_neither_lock_the_server_out_nor_stay_open(
    stand_in: Upstream, tmp_path: Path
) -> None:
    process, port = start_cli(stand_in, tmp_path, "--max-requests", "2", "--idle-timeout", "1")
    idle: list[socket.socket] = []
    try:
        idle += [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]  # sending nothing
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200
            async with mcp_client(f"http://127.0.0.1:{port}", None) as client:
                assert (await client.list_tools()).tools
        idle[0].settimeout(10)
        assert idle[0].recv(1) == b""  # closed by the server after the idle timeout
    finally:
        for sock in idle:
            sock.close()
        process.terminate()
        process.communicate(timeout=10)


async def test_requests_beyond_the_limit_get_503_and_health_still_answers(
    stand_in: Upstream, tmp_path: Path
) -> None:
    process, port = start_cli(stand_in, tmp_path, "--max-requests", "1")
    url = f"http://127.0.0.1:{port}"
    headers = {"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-06-18"}
    slow = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "grok_chat_completions",
            "arguments": {"messages": HELLO, "user": "scenario:slow1500"}}}  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=10) as http, anyio.create_task_group() as group:
            group.start_soon(lambda: http.post(f"{url}/mcp", json=slow, headers=headers))
            with anyio.fail_after(10):
                while not stand_in.requests:  # the one request allowed is in flight
                    await anyio.sleep(0.02)
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            busy = await http.post(f"{url}/mcp", json=ping, headers=headers)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert (await http.get(f"{url}/health")).status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=10)
