"""The floor: the least an MCP server on the same SDK can do for this tool.

One pooled httpx client with grok-chat-mcp's limits (``upstream.client.LIMITS``, written out so
the floor imports nothing of ours: httpx's default bound of 100 ran the 300 slow streams in
waves), no validation, no retries: arguments go straight upstream and the JSON comes straight back;
with ``stream`` it reads the events and returns the joined text, no more (with a progress token,
a progress notification at most every 0.2 s, as grok-chat-mcp sends them).
Benchmarks compare grok-chat-mcp with it.

    python bench/floor_server.py [--loop asyncio|uvloop]          # stdio
    python bench/floor_server.py --http [--loop asyncio|uvloop]   # stateless streamable HTTP on
        # 127.0.0.1, a free port (prints "port N" on stderr), through the SDK's public app

``--loop``: ``asyncio`` (the default, what the SDK runs on) or ``uvloop``. Over HTTP the listening
socket is made as ``IPPROTO_TCP``, as uvicorn makes its own, so that asyncio sets ``TCP_NODELAY``
on each accepted connection (with protocol 0 it does not, and every response waits for the
client's delayed ACK: about 40 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from mcp.server.mcpserver import Context, MCPServer


@asynccontextmanager
async def lifespan(_: MCPServer[httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        timeout=180,
        limits=httpx.Limits(max_connections=1024, max_keepalive_connections=64, keepalive_expiry=60),
    ) as client:
        yield client


server = MCPServer("floor", lifespan=lifespan, log_level="WARNING")


@server.tool()
async def grok_chat_completions(
    ctx: Context[httpx.AsyncClient, Any],
    messages: list[dict[str, Any]],
    model: str = "grok-4",
    user: str | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """Forward a chat completion request."""
    payload: dict[str, Any] = {"model": model, "messages": messages}
    if user is not None:
        payload["user"] = user
    url = os.environ["ACEDATACLOUD_API_BASE_URL"] + "/grok/chat/completions"
    headers = {"Authorization": f"Bearer {os.environ['ACEDATACLOUD_API_TOKEN']}"}
    http = ctx.request_context.lifespan_context
    if not stream:
        result: dict[str, Any] = (await http.post(url, json=payload, headers=headers)).json()
        return result
    text: list[str] = []
    chars, last = 0, float("-inf")
    report = (
        ctx.request_context.meta is not None and ctx.request_context.meta.get("progress_token") is not None
    )
    async with http.stream("POST", url, json={**payload, "stream": True}, headers=headers) as response:
        async for line in response.aiter_lines():
            data = line.removeprefix("data:").strip()
            if line.startswith("data:") and data and data != "[DONE]":
                for choice in json.loads(data).get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content") or ""
                    text.append(piece)
                    chars += len(piece)
                if report and time.monotonic() - last >= 0.2:
                    last = time.monotonic()
                    await ctx.report_progress(chars, None, f"{chars} chars")
    return {"content": "".join(text)}


def serve_http(loop: str) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"port {sock.getsockname()[1]}", file=sys.stderr, flush=True)
    app = server.streamable_http_app(stateless_http=True)
    config = uvicorn.Config(
        app, loop=loop, http="h11", log_config=None, access_log=False, lifespan="on", backlog=2048
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.http:
        serve_http(args.loop)
    else:
        anyio.run(server.run_stdio_async, backend_options={"use_uvloop": args.loop == "uvloop"})
