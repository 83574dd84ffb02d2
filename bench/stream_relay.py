"""Stream relay, in-process: CPU per upstream chunk of ours against the floor, on the same bytes.

The floor is what ``bench/floor_server.py`` does with a stream: ``response.aiter_lines()``, then
``json.loads`` of each ``data:`` line and the content joined. Ours is
:class:`grok_chat_mcp.upstream.sse.EventStream` fed from ``response.aiter_raw()`` into
:class:`grok_chat_mcp.upstream.assembly.Assembly`, every bound on, and the assembled
``chat.completion`` built. Both read an :class:`httpx.Response` over the
same pieces of bytes (one event per read, as upstream flushes them, or coalesced reads), taken
interleaved so machine noise hits both alike. Prints medians, spreads and the ratio; asserts nothing.

    python bench/stream_relay.py [--quick] [--chunks N] [--reps N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx

from grok_chat_mcp.upstream.assembly import Assembly
from grok_chat_mcp.upstream.sse import EventStream

Run = Callable[[list[bytes]], Coroutine[Any, Any, int]]
WORDS = ("The", " answer", " is", " forty", "-two", ",", " as", " computed", " by", " Deep", " Thought", ".")


def event(
    delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None
) -> bytes:
    """One event as AceDataCloud sends it (spaced JSON, ``foaicmpl-`` id)."""
    data: dict[str, Any] = {
        "id": "foaicmpl-0d5c2a0e-6f1b-4f3c-9d2e-1a2b3c4d5e6f",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "grok-4",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def events(chunks: int) -> list[bytes]:
    """A stream of ``chunks`` content chunks, the finish and usage chunks, and ``[DONE]``."""
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": chunks + 12}
    out = [event({"role": "assistant", "content": ""})]
    out += [event({"content": WORDS[i % len(WORDS)]}) for i in range(chunks)]
    out += [event({}, "stop", zero), event(None, usage=usage), b"data: [DONE]\n\n"]
    return out


def coalesce(pieces: list[bytes], size: int) -> list[bytes]:
    """The same bytes in reads of ``size`` bytes (a busy connection)."""
    raw = b"".join(pieces)
    return [raw[i : i + size] for i in range(0, len(raw), size)]


class Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


def response(pieces: list[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Pieces(pieces))


async def floor(pieces: list[bytes]) -> int:
    """``bench/floor_server.py``'s loop."""
    text: list[str] = []
    async for line in response(pieces).aiter_lines():
        data = line.removeprefix("data:").strip()
        if line.startswith("data:") and data and data != "[DONE]":
            for choice in json.loads(data).get("choices") or ():
                text.append((choice.get("delta") or {}).get("content") or "")
    return len("".join(text))


async def ours(pieces: list[bytes]) -> int:
    events, assembly = EventStream(), Assembly()
    async for piece in response(pieces).aiter_raw():
        assembly.take(events.feed(piece))
        if assembly.done:
            break
    assert assembly.done
    return len(assembly.result()["choices"][0]["message"]["content"])


async def wrapped(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for piece in source:
        yield piece


async def ours_wrapped(pieces: list[bytes]) -> int:
    """Ours behind one more async generator (as the client's ``_decoded`` is today)."""
    events, assembly = EventStream(), Assembly()
    async for piece in wrapped(response(pieces).aiter_raw()):
        assembly.take(events.feed(piece))
    assembly.take(events.close())
    return len(assembly.result()["choices"][0]["message"]["content"])


def cpu(run: Run, pieces: list[bytes]) -> float:
    started = time.process_time()
    asyncio.run(run(pieces))
    return time.process_time() - started


def measure(name: str, pieces: list[bytes], chunks: int, reps: int) -> dict[str, list[float]]:
    runs: dict[str, Run] = {"floor": floor, "ours": ours, "ours, wrapped": ours_wrapped}
    assert len({asyncio.run(run(pieces)) for run in runs.values()}) == 1, "the runs disagree"
    times: dict[str, list[float]] = {key: [] for key in runs}
    for rep in range(reps):
        order = list(runs) if rep % 2 == 0 else list(reversed(runs))
        for key in order:
            times[key].append(cpu(runs[key], pieces) / chunks * 1e6)
    base = statistics.median(times["floor"])
    print(f"{name}: {len(pieces):,} reads, {sum(map(len, pieces)) / 2**20:.2f} MiB, {reps} reps")
    for key, values in times.items():
        low, mid, high = min(values), statistics.median(values), max(values)
        paired = sorted(ours / floor for ours, floor in zip(values, times["floor"], strict=True))
        print(
            f"  {key:14} {mid:6.2f} us/chunk CPU (min {low:.2f}, max {high:.2f});  "
            f"ratio of medians {mid / base:.2f}x the floor, per repetition {statistics.median(paired):.2f}x "
            f"({paired[len(paired) // 4]:.2f}-{paired[(3 * len(paired)) // 4]:.2f} quartiles)"
        )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few repetitions, under 5 s")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=0, help="repetitions (default 5 quick, 21 full)")
    parser.add_argument("--json", action="store_true", help="last line: the samples as JSON (bench/run.py)")
    args = parser.parse_args()
    reps = args.reps or (5 if args.quick else 21)
    pieces = events(args.chunks)
    samples = {"one event per read": measure("one event per read", pieces, args.chunks, reps)}
    if not args.quick:
        samples["16 KiB reads"] = measure("16 KiB reads", coalesce(pieces, 16 * 1024), args.chunks, reps)
    if args.json:
        print(json.dumps(samples))


if __name__ == "__main__":
    main()
