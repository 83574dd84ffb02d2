"""Benchmark grok-chat-mcp side by side with the floor and the incumbent, on both event loops.

    python bench/run.py            # full run; installs mcp-grok and mcp<2 into bench/.venvs/ on first use
    python bench/run.py --quick    # a short run (CI uses it to prove the benchmark works)

Each figure is taken on the default install (plain asyncio: ``pip install grok-chat-mcp`` brings no
uvloop) and with uvloop (the ``[uvloop]`` extra, the Docker image), the servers taking turns. Ours
runs with its default store, the per-user SQLite file (here under a temporary ``XDG_STATE_HOME``,
never the real home's), and in full runs also with ``GROK_STORE=memory``. Everything talks to a
stand-in upstream on 127.0.0.1 (standin/upstream.py, bench/fast_upstream.py). Over stdio each
server is driven by a minimal raw JSON-RPC client, the same for all, so differences are the
servers'. Prints a markdown table (medians, spreads, ratios; one row per loop), then issue 27's
guards with their verdicts, and writes JSON. Times are never asserted on: a guard not met is
reported, never an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import felt  # noqa: E402, I001 - bench/ on the path first
from felt import HEADLINE, Samples, Variant, add, rotated  # noqa: E402
from standin.upstream import Upstream  # noqa: E402

TOKEN = "bench-token-0000"
HELLO = [{"role": "user", "content": "ping"}]
INIT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "bench", "version": "1"},
}
INCUMBENT_VENV = ROOT / "bench" / ".venvs" / "mcp-grok"


class Peer:
    """A bare JSON-RPC client for one stdio server process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.progress: dict[str, list[float]] = {}
        self.stray_lines = 0
        self.reply_bytes: dict[int, int] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, command: list[str], env: dict[str, str]) -> Peer:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            limit=64 * 1024 * 1024,
        )
        peer = cls(process)
        await peer.request("initialize", INIT)
        peer._write({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return peer

    def _write(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")

    @property
    def last_id(self) -> int:
        return self._next

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        self._write({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        return await future

    async def call(self, arguments: dict[str, Any], progress_token: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": "grok_chat_completions", "arguments": arguments}
        if progress_token is not None:
            params["_meta"] = {"progressToken": progress_token}
            self.progress[progress_token] = []
        reply = await self.request("tools/call", params)
        if "error" in reply or reply["result"].get("isError"):
            raise RuntimeError(f"call failed: {json.dumps(reply)[:300]}")
        return reply

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                self.stray_lines += 1
                continue
            if "id" in message and message["id"] in self._waiting:
                self.reply_bytes[message["id"]] = len(line)
                self._waiting.pop(message["id"]).set_result(message)
            elif message.get("method") == "notifications/progress":
                token = message["params"]["progressToken"]
                self.progress.setdefault(token, []).append(time.monotonic())

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


def scenario(name: str, **extra: Any) -> dict[str, Any]:
    return {"model": "grok-4", "messages": HELLO, "user": f"scenario:{name}", **extra}


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


async def start(variant: Variant, env: dict[str, str]) -> Peer:
    return await Peer.start(variant.command(), variant.environ(env))


async def cold_starts(variants: list[Variant], env: dict[str, str], reps: int) -> Samples:
    """Spawn to ``initialize`` reply and to the first ``tools/list`` reply, taking the servers in turn
    (the order rotating each round, so that neither machine noise nor the previous server's exit
    favours one)."""
    out: Samples = {}
    for round_ in range(reps):
        for variant in rotated(variants, round_):
            started = time.perf_counter()
            peer = await start(variant, env)
            add(out, variant.label, "cold start (ms)", (time.perf_counter() - started) * 1000)
            await peer.request("tools/list", {})
            add(out, variant.label, "cold start to tools/list (ms)", (time.perf_counter() - started) * 1000)
            await peer.close()
    return out


async def in_turn(variants: list[Variant], env: dict[str, str], reps: dict[str, int]) -> Samples:
    """Per-call and large-response times, one call per server in turn (the order rotating each
    round), so noise hits all alike."""
    peers = {variant.label: await start(variant, env) for variant in variants}
    out: Samples = {}
    try:
        for _ in range(reps["warmup"]):
            for peer in peers.values():
                await peer.call(scenario("ok"))
        for figure, name, count in (
            ("per call (ms)", "ok", reps["calls"]),
            ("~1 MiB response (ms)", "big1024", reps["large"]),
        ):
            for round_ in range(count):
                for label, peer in rotated(list(peers.items()), round_):
                    add(out, label, figure, await timed(partial(peer.call, scenario(name))))
    finally:
        for peer in peers.values():
            await peer.close()
    return out


async def under_load(
    variants: list[Variant], env: dict[str, str], upstream: Upstream, reps: dict[str, int]
) -> Samples:
    """Pipelined and concurrent calls, streams, memory and stray output: all servers started at
    once, each figure taken from each in turn."""
    out: Samples = {}
    peers = {variant.label: await start(variant, env) for variant in variants}
    try:
        for peer in peers.values():
            await peer.request("tools/list", {})
        await asyncio.sleep(0.5)  # settled: what a client sees between turns
        for label, peer in peers.items():
            add(out, label, "RSS idle (MiB)", peer.rss_mib())
            for _ in range(reps["warmup"]):
                await peer.call(scenario("ok"))

        async def many(peer: Peer, count: int, name: str, **extra: Any) -> None:
            await asyncio.gather(*(peer.call(scenario(name, **extra)) for _ in range(count)))

        for round_ in range(reps["rounds"]):
            for label, peer in rotated(list(peers.items()), round_):
                elapsed = await timed(partial(many, peer, reps["pipelined"], "ok"))
                add(out, label, "pipelined calls (per s)", reps["pipelined"] / (elapsed / 1000))
        for round_ in range(reps["concurrency"]):
            for label, peer in rotated(list(peers.items()), round_):
                add(
                    out, label, "40 x 300 ms concurrent (ms)", await timed(partial(many, peer, 40, "slow300"))
                )
        for label, peer in peers.items():
            await peer.call(scenario("big200"))
            add(out, label, "200 KiB answer on the wire (KB)", peer.reply_bytes[peer.last_id] / 1000)
        for round_ in range(reps["rounds"]):
            for label, peer in rotated(list(peers.items()), round_):
                before = felt.cpu_clock(peer.process.pid)
                await many(peer, 50, "sse20", stream=True)
                add(
                    out,
                    label,
                    "CPU for 50 concurrent streams (ms)",
                    felt.cpu_since(peer.process.pid, before) * 1000,
                )
        for variant in variants:
            if variant.ours:
                peer = peers[variant.label]
                for index in range(reps["stream"]):
                    upstream.first_chunk_sent.clear()
                    token = f"s{index}"
                    await peer.call(scenario("sse50", stream=True), progress_token=token)
                    lag = (peer.progress[token][0] - upstream.first_chunk_sent[0]) * 1000
                    add(out, variant.label, "first progress after first chunk (ms)", lag)
        for label, peer in peers.items():
            add(out, label, "RSS after load (MiB)", peer.rss_mib())
        for _ in range(reps["soak"] // 100):
            for peer in peers.values():
                for _ in range(100):
                    await peer.call(scenario("ok"))
        for label, peer in peers.items():
            add(out, label, f"RSS after {reps['soak']:,} more calls (MiB)", peer.rss_mib())
            add(out, label, "stray stdout lines", float(peer.stray_lines))
    finally:
        for peer in peers.values():
            await peer.close()
    return out


async def bench_direct(base_url: str, reps: dict[str, int]) -> dict[str, list[float]]:
    """The same requests straight from httpx, without any MCP hop."""
    out: dict[str, list[float]] = {}
    url = base_url + "/grok/chat/completions"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=60) as client:

        async def post(name: str) -> None:
            (await client.post(url, json=scenario(name), headers=headers)).raise_for_status()

        for _ in range(reps["warmup"]):
            await post("ok")
        out["per call (ms)"] = [await timed(lambda: post("ok")) for _ in range(reps["calls"])]

        async def forty() -> None:
            await asyncio.gather(*(post("slow300") for _ in range(40)))

        out["40 x 300 ms concurrent (ms)"] = [await timed(forty) for _ in range(reps["concurrency"])]
        out["~1 MiB response (ms)"] = [await timed(lambda: post("big1024")) for _ in range(reps["large"])]
    return out


def _instructions(stderr: bytes) -> float:
    refs = re.search(rb"I\s+refs:\s+([\d,]+)", stderr)
    return int(refs.group(1).replace(b",", b"")) / 1e6 if refs else float("nan")


async def session_instructions(variant: Variant, env: dict[str, str], calls: int) -> float:
    """Instructions (millions, valgrind's callgrind) of a whole session: ``initialize``,
    ``tools/list``, ``calls`` instant calls, exit. Unlike wall time, the same on a busy machine."""
    process = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *variant.command(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=variant.environ(env),
    )  # fmt: skip
    assert process.stdin is not None and process.stderr is not None
    peer = Peer(process)
    await peer.request("initialize", INIT)
    peer._write({"jsonrpc": "2.0", "method": "notifications/initialized"})
    await peer.request("tools/list", {})
    for _ in range(calls):
        await peer.call(scenario("ok"))
    process.stdin.close()
    stderr = await process.stderr.read()
    await process.wait()
    peer._reader.cancel()
    return _instructions(stderr)


async def instructions(start_up: list[Variant], per_call: list[Variant], env: dict[str, str]) -> Samples:
    """Start-up: spawn to exit after ``initialize`` and the first ``tools/list``. Per call: a session
    with 60 calls minus one with 10, over 50. Millions of instructions; as many sessions at once
    as there are cores; empty where valgrind is missing."""
    out: Samples = {}
    if shutil.which("valgrind") is None:
        print("valgrind missing: no instruction counts", file=sys.stderr)
        return out
    cores = asyncio.Semaphore(os.cpu_count() or 2)

    async def count(variant: Variant, calls: int) -> float:
        async with cores:
            return await session_instructions(variant, env, calls)

    jobs = [(variant, 0) for variant in start_up] + [(v, calls) for v in per_call for calls in (10, 60)]
    counts = dict(zip(jobs, await asyncio.gather(*(count(*job) for job in jobs)), strict=True))
    for variant in start_up:
        add(out, variant.label, "cold start to tools/list (million instructions)", counts[variant, 0])
    for variant in per_call:
        add(
            out,
            variant.label,
            "per call (million instructions)",
            (counts[variant, 60] - counts[variant, 10]) / 50,
        )
    return out


def merge(results: Samples, more: Samples) -> None:
    for label, figures in more.items():
        results.setdefault(label, {}).update(figures)


SECTIONS = ("stdio", "start-up", "streams", "slow", "http", "clients", "instructions")


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """Says on stderr what runs and how long it took."""
    started = time.monotonic()
    print(f"{label} ...", file=sys.stderr, end=" ", flush=True)
    yield
    print(f"{time.monotonic() - started:.0f} s", file=sys.stderr)


async def what_users_feel(
    groups: dict[str, list[Variant]],
    env: dict[str, str],
    results: Samples,
    reps: dict[str, Any],
    only: set[str],
) -> None:
    """Issue 23's figures (bench/felt.py): long streams, many slow calls and throughput over HTTP,
    round trips through real clients. Merged into ``results``."""
    chunks = 10_000
    if reps["slow calls"] >= 300:
        plan = [(mode, connections, 1) for mode in ("legacy", "modern") for connections in (1, 10, 100)]
        plan += [("legacy", 100, 2), ("modern", 100, 2)]
    else:
        plan = [("legacy", 10, 1), ("modern", 10, 1)]
    served, quick = groups["served"], reps["slow calls"] < 300
    steps: list[tuple[str, str, Callable[[], Awaitable[Samples]]]] = [
        ("streams", "stream relay in-process", lambda: felt.relay_in_process(reps["relay"], chunks, quick)),
        (
            "streams",
            "10k-chunk streams over stdio",
            lambda: felt.relay_end_to_end(served, env, Peer.start, reps["streams"], chunks),
        ),
        (
            "slow",
            f"{reps['slow calls']} slow calls over HTTP",
            lambda: felt.slow_calls(served, env, reps["slow reps"], reps["slow calls"], reps["slow chunks"]),
        ),
        (
            "http",
            "HTTP throughput",
            lambda: felt.throughput(served, env, reps["http reps"], reps["http seconds"], plan),
        ),
        (
            "clients",
            "per call through real clients",
            lambda: felt.real_clients(
                groups["started"], env, reps["client rounds"], reps["client calls"], reps["client large"]
            ),
        ),
    ]
    for section, label, run in steps:
        if section in only:
            with step(label):
                merge(results, await run())


def ensure_incumbent() -> list[str] | None:
    script = INCUMBENT_VENV / "bin" / "mcp-grok"
    if not script.exists():
        print("installing mcp-grok into bench/.venvs/mcp-grok ...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(INCUMBENT_VENV)], check=True)
            pip = [str(INCUMBENT_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "mcp-grok"]
            subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"mcp-grok unavailable, skipped: {exc}", file=sys.stderr)
            return None
    return [str(script)]


def summary(values: list[float]) -> tuple[float, float, float]:
    """Median, 5th and 95th percentile."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[0], cuts[18]


@dataclass(frozen=True)
class Guard:
    """One of issue 27's guards, on the default install: ours against the floor, or an absolute bound."""

    text: str
    ratio_at_most: float | None = None
    ratio_at_least: float | None = None
    below: float | None = None
    every_run_at_least: float | None = None

    def verdict(self, ours: list[float], floor: list[float] | None) -> str:
        mid = statistics.median(ours)
        if self.every_run_at_least is not None:
            met = min(ours) >= self.every_run_at_least
        elif self.below is not None:
            met = mid < self.below
        elif not floor:
            return "not measured (no floor)"
        else:
            ratio = mid / statistics.median(floor)
            met = (
                ratio <= self.ratio_at_most
                if self.ratio_at_most is not None
                else ratio >= (self.ratio_at_least or 0)
            )
        return "met" if met else "not met"


def guards(slow_calls: int) -> dict[str, Guard]:
    """Issue 27, item 9: the figures ours must keep on the default install (``asyncio`` rows)."""
    out = {
        "per call (ms)": Guard("<= 1.1 x floor", ratio_at_most=1.1),
        "10k-chunk stream: server CPU per chunk (us)": Guard("<= 0.9 x floor", ratio_at_most=0.9),
        "10k-chunk stream, with progress: server CPU per chunk (us)": Guard(
            "<= 0.9 x floor", ratio_at_most=0.9
        ),
        "slow calls over HTTP: completed": Guard(
            f"all {slow_calls}, every run", every_run_at_least=slow_calls
        ),
        "slow calls over HTTP: added latency per chunk p99 (ms)": Guard("< 10 ms", below=10),
        "cold start to tools/list (million instructions)": Guard("<= 0.95 x floor", ratio_at_most=0.95),
    }
    for mode in ("legacy", "modern"):
        for connections in (1, 10, 100):
            out[f"HTTP {mode}, {connections} conn: calls per s"] = Guard(">= 1.0 x floor", ratio_at_least=1.0)
    return out


COLUMNS = ["direct httpx", "floor server", "grok-chat-mcp", "mcp-grok"]


def cells(results: Samples, figure: str, setup: str) -> tuple[list[str], dict[str, float]] | None:
    """A row's cells and medians: ours on ``setup``, the floor and the others on the same loop."""
    loop = setup.split(",")[0]
    sources = {
        "direct httpx": f"direct httpx [{HEADLINE}]" if setup == HEADLINE else "",
        "floor server": f"floor server [{loop}]" if setup == loop else "",
        "grok-chat-mcp": f"grok-chat-mcp [{setup}]",
        "mcp-grok": f"mcp-grok [{HEADLINE}]" if setup == HEADLINE else "",
    }
    if not results.get(sources["grok-chat-mcp"], {}).get(figure):
        return None
    out, medians = [], {}
    for column in COLUMNS:
        values = results.get(sources[column], {}).get(figure)
        if not values:
            out.append("-")
            continue
        median, p5, p95 = summary(values)
        medians[column] = median
        out.append(f"{median:.1f}" if len(values) == 1 else f"{median:.1f} ({p5:.1f}-{p95:.1f})")
    floor = results.get(f"floor server [{loop}]", {}).get(figure)
    if floor:
        medians["floor server"] = statistics.median(floor)
    return out, medians


def table(results: Samples, setups: list[str], checks: dict[str, Guard]) -> str:
    head = "| figure | loop | " + " | ".join(COLUMNS) + " | ours / floor | ours / mcp-grok | guard |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 5)]
    figures: list[str] = []
    for figures_of in results.values():
        figures += [figure for figure in figures_of if figure not in figures]
    for figure in figures:
        for setup in setups:
            row = cells(results, figure, setup)
            if row is None:
                continue
            shown, medians = row
            ours = medians["grok-chat-mcp"]
            ratios = [
                f"{ours / medians[ref]:.2f}" if medians.get(ref) else "-"
                for ref in ("floor server", "mcp-grok")
            ]
            guard = checks.get(figure)
            verdict = ""
            if guard is not None and setup == HEADLINE:
                floor = results.get(f"floor server [{HEADLINE}]", {}).get(figure)
                verdict = f"{guard.text}: {guard.verdict(results['grok-chat-mcp [asyncio]'][figure], floor)}"
            lines.append(
                f"| {figure} | {setup} | " + " | ".join(shown) + f" | {' | '.join(ratios)} | {verdict} |"
            )
    return "\n".join(lines)


def verdicts(results: Samples, checks: dict[str, Guard]) -> str:
    """Each guard with ours, the floor, the ratio and the verdict, on the default install."""
    lines = []
    ours = results.get(f"grok-chat-mcp [{HEADLINE}]", {})
    floor = results.get(f"floor server [{HEADLINE}]", {})
    for figure, guard in checks.items():
        if not ours.get(figure):
            lines.append(f"- {figure}: {guard.text}: not measured in this run")
            continue
        mid = statistics.median(ours[figure])
        against = ""
        if floor.get(figure):
            base = statistics.median(floor[figure])
            against = f" against the floor's {base:.2f} ({mid / base:.2f} x)"
        lines.append(
            f"- {figure}: {mid:.2f}{against}; {guard.text}: {guard.verdict(ours[figure], floor.get(figure))}"
        )
    return "\n".join(lines)


def versions() -> str:
    """The versions that decide the figures, and the commit measured."""
    names = ("grok-chat-mcp", "mcp", "httpx", "httpcore", "anyio", "starlette", "uvicorn", "uvloop")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return ", ".join(found) + (f" (commit {commit})" if commit else "")


def variants(loops: list[str], incumbent: list[str] | None, memory: bool) -> dict[str, list[Variant]]:
    """Which servers each section measures. ``served``: the floor and ours on each loop (ours also
    with the memory store, where asked); ``started``: the floor and ours on each loop, and mcp-grok;
    instructions (callgrind, minutes a session): the default install only."""
    pairs = [Variant(server, loop) for loop in loops for server in ("floor server", "grok-chat-mcp")]
    served = pairs + ([Variant("grok-chat-mcp", HEADLINE, "memory")] if memory else [])
    others = [Variant("mcp-grok", HEADLINE, incumbent=tuple(incumbent))] if incumbent else []
    headline_pair = [v for v in pairs if v.loop == HEADLINE]
    return {
        "served": served,
        "started": pairs + others,
        "stdio": served + others,
        "start-up instructions": headline_pair,
        "per call instructions": headline_pair + [v for v in served if v.store != "default"],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few repetitions, no incumbent (CI)")
    parser.add_argument("--no-incumbent", action="store_true", help="skip AceDataCloud's mcp-grok")
    parser.add_argument(
        "--loops", default="asyncio,uvloop", help="event loops, comma-separated (default: asyncio,uvloop)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"sections, comma-separated (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    reps = (
        {"cold": 1, "warmup": 3, "calls": 20, "concurrency": 1, "large": 2, "stream": 2}
        | {"pipelined": 50, "rounds": 1, "soak": 100}
        if args.quick
        else {"cold": 20, "warmup": 30, "calls": 200, "concurrency": 3, "large": 10, "stream": 10}
        | {"pipelined": 200, "rounds": 3, "soak": 1000}
    )
    felt_reps = (
        {"relay": 3, "streams": 1, "slow reps": 1, "slow calls": 30, "slow chunks": 30}
        | {"http reps": 1, "http seconds": 1.0, "client rounds": 1, "client calls": 5, "client large": 1}
        if args.quick
        else {"relay": 15, "streams": 8, "slow reps": 2, "slow calls": 300, "slow chunks": 200}
        | {"http reps": 2, "http seconds": 4.0, "client rounds": 3, "client calls": 40, "client large": 4}
    )
    loops = [loop for loop in args.loops.split(",") if loop]
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed here: asyncio only", file=sys.stderr)
        loops.remove("uvloop")
    only = set(args.only.split(",")) & set(SECTIONS)
    incumbent = None
    if not (args.quick or args.no_incumbent) and only & {"stdio", "start-up", "clients"}:
        incumbent = ensure_incumbent()
    groups = variants(loops, incumbent, memory=not args.quick)
    checks = guards(int(felt_reps["slow calls"]))

    results: Samples = {}
    with Upstream() as upstream, tempfile.TemporaryDirectory(prefix="grok-chat-mcp-bench-") as state:
        base = upstream.url("ok")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "XDG_STATE_HOME": state,  # the default store's file: never the real home's
            "ACEDATACLOUD_API_TOKEN": TOKEN,
            "ACEDATACLOUD_API_BASE_URL": base,
            "LOG_LEVEL": "WARNING",
            "GROK_MAX_RETRIES": "0",
        }
        if "stdio" in only:
            with step("per call and large responses, in turn"):
                results[f"direct httpx [{HEADLINE}]"] = await bench_direct(base, reps)
                merge(results, await in_turn(groups["stdio"], env, reps))
            with step("under load, in turn"):
                merge(results, await under_load(groups["stdio"], env, upstream, reps))
        if "start-up" in only:
            with step("cold starts"):
                merge(results, await cold_starts(groups["started"], env, reps["cold"]))
        # A quick run takes what users feel on the default install only: under a minute on 2 cores.
        felt_groups = variants([HEADLINE], None, False) if args.quick else groups
        await what_users_feel(felt_groups, env, results, felt_reps, only)
        if not args.quick and "instructions" in only:
            with step("instructions (valgrind)"):
                merge(
                    results,
                    await instructions(groups["start-up instructions"], groups["per call instructions"], env),
                )

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    setups = [v.setup for v in groups["served"] if v.ours]
    print(f"Measured {stamp} on {machine}{' (quick run)' if args.quick else ''}; {versions()}.")
    print(f"Loops: {', '.join(setups)} ({HEADLINE}: the default install, no uvloop).\n")
    print(table(results, setups, checks))
    few = " (a quick run: too few samples to judge)" if args.quick else ""
    print(f"\nGuards (issue 27), on the default install ({HEADLINE}, the default store){few}; never fatal:\n")
    print(verdicts(results, checks))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "date": stamp,
                "machine": machine,
                "versions": versions(),
                "quick": args.quick,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
