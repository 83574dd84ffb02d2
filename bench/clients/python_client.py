"""A real Python MCP client timing calls over stdio: SDK 2.x's ``Client``, or 1.x's ``ClientSession``.

    <venv>/bin/python bench/clients/python_client.py CALLS LARGE -- <server command> [args...]

Run with the interpreter of the SDK to measure (bench/.venvs/mcp1 holds ``mcp<2``). It starts the
server, lists the tools (as clients do before calling; 1.x keeps the output schemas it validates
results against), makes three warm-up calls, then ``CALLS`` instant calls and ``LARGE`` calls with
a ~1 MiB answer, and prints one JSON line of the round trips in milliseconds. The environment
passes through to the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import mcp
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ARGS = {"model": "grok-4", "messages": [{"role": "user", "content": "ping"}]}


def failed(result: Any) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


async def main() -> None:
    calls, large = int(sys.argv[1]), int(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :]
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    times: dict[str, list[float]] = {"ok": [], "big1024": []}
    with open(os.devnull, "w") as devnull:  # noqa: ASYNC230 - once, before anything is timed
        if hasattr(mcp, "Client"):  # SDK 2.x: the high-level client, protocol negotiated ("auto")
            async with mcp.Client(params) as client:
                await client.list_tools()
                for name, count in (("ok", 3), ("ok", calls), ("big1024", large)):
                    for _ in range(count):
                        started = time.perf_counter()
                        result: Any = await client.call_tool(
                            "grok_chat_completions", {**ARGS, "user": f"scenario:{name}"}
                        )
                        elapsed = (time.perf_counter() - started) * 1000
                        if failed(result):
                            raise SystemExit(f"call failed: {str(result)[:300]}")
                        times[name].append(elapsed)
        else:  # SDK 1.x
            async with (
                stdio_client(params, errlog=devnull) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                await session.list_tools()
                for name, count in (("ok", 3), ("ok", calls), ("big1024", large)):
                    for _ in range(count):
                        started = time.perf_counter()
                        result = await session.call_tool(
                            "grok_chat_completions", {**ARGS, "user": f"scenario:{name}"}
                        )
                        elapsed = (time.perf_counter() - started) * 1000
                        if failed(result):
                            raise SystemExit(f"call failed: {str(result)[:300]}")
                        times[name].append(elapsed)
    times["ok"] = times["ok"][3:]
    print(json.dumps(times))


if __name__ == "__main__":
    asyncio.run(main())
