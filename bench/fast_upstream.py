"""The stand-in's answers, served by one asyncio process: for load that a thread per request cannot carry.

    python bench/fast_upstream.py     # prints "port N" on stdout; stops when its stdin closes

It sends the same bytes as ``standin/upstream.py`` (its ``completion`` and ``chunk``), so what
the servers relay is what the tests check, but from one event loop in its own process, so that
300 slow streams, or a few thousand requests a second, neither need 300 threads nor share the
benchmark client's interpreter. A request's ``user`` picks the answer:

- ``stream:<chunks>:<interval ms>``: an event stream of ``<chunks>`` content chunks, one every
  ``<interval>`` (0: as fast as the socket takes them). The first content chunk is
  ``<t>`` and the last ``<t>``, where ``t`` is ``time.monotonic()`` when it was written
  (CLOCK_MONOTONIC, the same in every process on the machine), so a client can tell from the
  result alone when upstream sent its first and last chunk.
- anything else: an instant ``chat.completion`` (``pong``), keep-alive.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from standin.upstream import SSE_WORDS, USAGE, chunk, completion, served_by

STREAM = re.compile(r"stream:(\d+):(\d+)")
MODEL = "grok-4.3"


def stamp() -> str:
    return f"<{time.monotonic():.6f}>"


async def stream(writer: asyncio.StreamWriter, model: str, chunks: int, interval: float) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        + chunk(model, {"role": "assistant", "content": ""})
    )
    for index in range(chunks):
        word = stamp() if index in (0, chunks - 1) else SSE_WORDS[index % len(SSE_WORDS)]
        writer.write(chunk(model, {"content": word}))
        if interval:
            await writer.drain()
            if index < chunks - 1:
                await asyncio.sleep(interval)
        elif index % 64 == 0:
            await writer.drain()
    zero = {key: 0 for key in USAGE if key != "completion_tokens_details"}
    writer.write(chunk(model, {}, "stop", usage=zero) + chunk(model, None, usage=USAGE) + b"data: [DONE]\n\n")
    await writer.drain()


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = json.loads(await reader.readexactly(length) or b"{}")
            model = served_by(str(body.get("model", "grok-4")))
            found = STREAM.fullmatch(str(body.get("user", "")))
            if found is not None:
                await stream(writer, model, int(found.group(1)), int(found.group(2)) / 1000)
                break
            data = json.dumps(completion(model, "pong")).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data)
                + data
            )
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes our stdin (or exits)
    server.close()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
