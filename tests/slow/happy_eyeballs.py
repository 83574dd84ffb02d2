"""One call through the server's client to ``http://NAME:PORT``, where NAME resolves to two
addresses: the first drops every SYN (its listener's queue is full), the second answers. Run by
tests/slow/test_hostile_upstream.py inside a private /etc/hosts; prints a JSON report.

    python -m tests.slow.happy_eyeballs asyncio|uvloop NAME
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from typing import Any

import anyio

from grok_chat_mcp.config import Settings
from grok_chat_mcp.request import GrokRequest
from grok_chat_mcp.upstream.client import GrokClient, make_http_client

ANSWER = json.dumps(
    {"id": "x", "object": "chat.completion", "model": "grok-4", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "live"}, "finish_reason": "stop"}]}
).encode()  # fmt: skip


def fill(address: tuple[str, int]) -> tuple[list[socket.socket], bool]:
    """Connections that fill a listener's queue; True once a connect got no answer (SYN dropped)."""
    held: list[socket.socket] = []
    for _ in range(16):
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(address)
        except TimeoutError:
            probe.close()
            return held, True
        held.append(probe)
    return held, False


def serve(listener: socket.socket) -> None:
    """Answers each connection's one request with the completion, then closes it."""
    while True:
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                f"Content-Length: {len(ANSWER)}\r\n\r\n"
            )
            connection.sendall(head.encode() + ANSWER)


async def call(settings: Settings) -> dict[str, Any]:
    async with make_http_client(settings) as http:
        return await GrokClient(http, settings).complete(
            GrokRequest.of({"messages": [{"role": "user", "content": "hi"}]})
        )


def main() -> None:
    loop, name = sys.argv[1], sys.argv[2]
    for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(variable, None)
    addresses = [info[4][0] for info in socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)]
    first, second = str(addresses[0]), str(addresses[1])
    live = socket.create_server((second, 0))
    port = live.getsockname()[1]
    dead = socket.socket()
    dead.bind((first, port))
    dead.listen(0)
    held, dead_first = fill((first, port))
    threading.Thread(target=serve, args=(live,), daemon=True).start()
    settings = Settings(
        api_token="sk-test",
        base_url=f"http://{name}:{port}",
        max_retries=0,
        timeout=20.0,
        connect_timeout=20.0,
    )
    started = time.perf_counter()
    answer = anyio.run(call, settings, backend_options={"use_uvloop": loop == "uvloop"})
    seconds = time.perf_counter() - started
    report = {
        "loop": loop,
        "addresses": [first, second],
        "dead_first": dead_first,
        "held": len(held),
        "answer": answer["choices"][0]["message"]["content"],
        "seconds": round(seconds, 3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
