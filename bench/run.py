"""Benchmark grok-chat-mcp side by side with the floor and the incumbent, in one run.

    python bench/run.py            # full run; installs mcp-grok into bench/.venvs/ on first use
    python bench/run.py --quick    # a short run (CI uses it to prove the benchmark works)

Everything talks to a stand-in upstream on 127.0.0.1 (standin/upstream.py). Each server is driven
by a minimal raw JSON-RPC client over stdio, the same for all, so differences are the servers'.
Prints a markdown table (medians, p95 and ratios) and writes JSON. Times are never asserted on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import felt  # noqa: E402, I001 - bench/ on the path first
from standin.upstream import Upstream  # noqa: E402

TOKEN = "bench-token-0000"
HELLO = [{"role": "user", "content": "ping"}]
INIT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "bench", "version": "1"},
}
INCUMBENT_VENV = ROOT / "bench" / ".venvs" / "mcp-grok"
T = TypeVar("T")


@dataclass
class Server:
    name: str
    command: list[str]


@dataclass
class Results:
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # figure -> server -> values

    def add(self, figure: str, server: str, values: list[float]) -> None:
        self.samples.setdefault(figure, {})[server] = values


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

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


def rotated(items: list[T], by: int) -> list[T]:
    by %= len(items)
    return items[by:] + items[:by]


async def cold_starts(
    servers: list[Server], env: dict[str, str], reps: int
) -> dict[str, dict[str, list[float]]]:
    """Spawn to ``initialize`` reply and to the first ``tools/list`` reply, taking the servers in turn
    (the order rotating each round, so that neither machine noise nor the previous server's exit
    favours one)."""
    times: dict[str, dict[str, list[float]]] = {
        server.name: {"cold start (ms)": [], "cold start to tools/list (ms)": []} for server in servers
    }
    for round_ in range(reps):
        for server in rotated(servers, round_):
            started = time.perf_counter()
            peer = await Peer.start(server.command, env)
            times[server.name]["cold start (ms)"].append((time.perf_counter() - started) * 1000)
            await peer.request("tools/list", {})
            times[server.name]["cold start to tools/list (ms)"].append((time.perf_counter() - started) * 1000)
            await peer.close()
    return times


async def in_turn(
    servers: list[Server], env: dict[str, str], reps: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Per-call and large-response times, one call per server in turn (the order rotating each
    round), so noise hits all alike."""
    peers = {server.name: await Peer.start(server.command, env) for server in servers}
    out: dict[str, dict[str, Any]] = {
        name: {"per call (ms)": [], "~1 MiB response (ms)": []} for name in peers
    }
    try:
        for _ in range(reps["warmup"]):
            for peer in peers.values():
                await peer.call(scenario("ok"))
        for figure, name, count in (
            ("per call (ms)", "ok", reps["calls"]),
            ("~1 MiB response (ms)", "big1024", reps["large"]),
        ):
            for round_ in range(count):
                for server, peer in rotated(list(peers.items()), round_):
                    out[server][figure].append(await timed(lambda p=peer, n=name: p.call(scenario(n))))  # type: ignore[misc]
    finally:
        for peer in peers.values():
            await peer.close()
    return out


async def bench_server(
    server: Server, env: dict[str, str], upstream: Upstream, reps: dict[str, int]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    peer = await Peer.start(server.command, env)
    try:
        await peer.request("tools/list", {})
        await asyncio.sleep(0.5)  # settled: what a client sees between turns
        out["RSS idle (MiB)"] = [peer.rss_mib()]
        for _ in range(reps["warmup"]):
            await peer.call(scenario("ok"))

        async def pipelined() -> None:
            await asyncio.gather(*(peer.call(scenario("ok")) for _ in range(reps["pipelined"])))

        out["pipelined calls (per s)"] = [
            reps["pipelined"] / (await timed(pipelined) / 1000) for _ in range(reps["rounds"])
        ]

        async def forty() -> None:
            await asyncio.gather(*(peer.call(scenario("slow300")) for _ in range(40)))

        out["40 x 300 ms concurrent (ms)"] = [await timed(forty) for _ in range(reps["concurrency"])]
        await peer.call(scenario("big200"))
        out["200 KiB answer on the wire (KB)"] = [peer.reply_bytes[peer.last_id] / 1000]

        async def streams() -> None:
            await asyncio.gather(*(peer.call(scenario("sse20", stream=True)) for _ in range(50)))

        cpu = []
        for _ in range(reps["rounds"]):
            before = peer.cpu_seconds()
            await streams()
            cpu.append((peer.cpu_seconds() - before) * 1000)
        out["CPU for 50 concurrent streams (ms)"] = cpu
        if server.name == "grok-chat-mcp":
            lags = []
            for index in range(reps["stream"]):
                upstream.first_chunk_sent.clear()
                token = f"s{index}"
                await peer.call(scenario("sse50", stream=True), progress_token=token)
                lags.append((peer.progress[token][0] - upstream.first_chunk_sent[0]) * 1000)
            out["first progress after first chunk (ms)"] = lags
        out["RSS after load (MiB)"] = [peer.rss_mib()]
        for _ in range(reps["soak"]):
            await peer.call(scenario("ok"))
        out[f"RSS after {reps['soak']:,} more calls (MiB)"] = [peer.rss_mib()]
        out["stray stdout lines"] = [float(peer.stray_lines)]
    finally:
        await peer.close()
    return out


async def bench_direct(base_url: str, reps: dict[str, int]) -> dict[str, Any]:
    """The same requests straight from httpx, without any MCP hop."""
    out: dict[str, Any] = {}
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


def start_up_instructions(servers: list[Server], env: dict[str, str]) -> dict[str, float]:
    """Instructions from spawn to exit after an ``initialize`` (valgrind's callgrind): unlike wall
    time, the same on a busy machine. Millions; empty where valgrind is missing."""
    if shutil.which("valgrind") is None:
        return {}
    line = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}) + "\n"

    def count(server: Server) -> tuple[str, float]:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *server.command],
            input=line.encode(), capture_output=True, env=env, timeout=1200, check=False,
        )  # fmt: skip
        return server.name, _instructions(done.stderr)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(pool.map(count, servers))


async def instructions_for_calls(server: Server, env: dict[str, str], calls: int) -> float:
    """Instructions (millions, callgrind) of a whole session: ``initialize``, ``tools/list``,
    ``calls`` instant calls, exit."""
    process = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *server.command,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
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


async def per_call_instructions(servers: list[Server], env: dict[str, str]) -> dict[str, float]:
    """Instructions one ``tools/call`` costs the server (callgrind): a session with 60 calls minus
    one with 10, over 50. The per-call figure a busy machine cannot move. Millions."""
    if shutil.which("valgrind") is None:
        return {}

    out = {}
    for server in servers:  # two sessions at a time: one per core here
        few, many = await asyncio.gather(
            instructions_for_calls(server, env, 10), instructions_for_calls(server, env, 60)
        )
        out[server.name] = (many - few) / 50
    return out


async def start_up_to_list_instructions(servers: list[Server], env: dict[str, str]) -> dict[str, float]:
    """Instructions from spawn to exit after ``initialize`` and the first ``tools/list`` (callgrind).
    Millions; empty where valgrind is missing."""
    if shutil.which("valgrind") is None:
        return {}
    counts = await asyncio.gather(*(instructions_for_calls(server, env, 0) for server in servers))
    return {server.name: count for server, count in zip(servers, counts, strict=True)}


async def what_users_feel(
    servers: list[Server], env: dict[str, str], results: dict[str, dict[str, Any]], reps: dict[str, Any]
) -> None:
    """Issue 23's figures (bench/felt.py): long streams, many slow calls and throughput over HTTP,
    round trips through real clients. Merged into ``results``."""
    chunks = 10_000
    streaming = [(server.name, server.command) for server in servers if server.name != "mcp-grok"]
    names = [name for name, _ in streaming]
    if reps["slow calls"] >= 300:
        plan = [(mode, connections, 1) for mode in ("legacy", "modern") for connections in (1, 10, 100)]
        plan += [("legacy", 100, 2), ("modern", 100, 2)]
    else:
        plan = [("legacy", 10, 1), ("modern", 10, 1)]
    everyone = [(server.name, server.command) for server in servers]
    steps: list[tuple[str, Callable[[], Awaitable[felt.Samples]]]] = [
        (
            "stream relay in-process",
            lambda: felt.relay_in_process(reps["relay"], chunks, reps["slow calls"] < 300),
        ),
        (
            "10k-chunk streams over stdio",
            lambda: felt.relay_end_to_end(streaming, env, Peer.start, reps["streams"], chunks),
        ),
        (
            f"{reps['slow calls']} slow calls over HTTP",
            lambda: felt.slow_calls(names, env, reps["slow reps"], reps["slow calls"], reps["slow chunks"]),
        ),
        (
            "HTTP throughput",
            lambda: felt.throughput(names, env, reps["http reps"], reps["http seconds"], plan),
        ),
        (
            "per call through real clients",
            lambda: felt.real_clients(
                everyone, env, reps["client rounds"], reps["client calls"], reps["client large"]
            ),
        ),
    ]
    for label, step in steps:
        started = time.monotonic()
        print(f"{label} ...", file=sys.stderr, end=" ", flush=True)
        for name, figures in (await step()).items():
            results.setdefault(name, {}).update(figures)
        print(f"{time.monotonic() - started:.0f} s", file=sys.stderr)


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


def targets(soak: int) -> dict[str, str]:
    return {
        "cold start (ms)": "<= 0.95 x floor",
        "cold start (million instructions)": "<= 0.95 x floor",
        "cold start to tools/list (ms)": "<= 0.95 x floor",
        "cold start to tools/list (million instructions)": "<= 0.85 x floor; moonshot < mcp-grok",
        "per call (ms)": "<= 0.8 x floor, <= 0.35 x mcp-grok",
        "per call (million instructions)": "reported (what load cannot move)",
        "pipelined calls (per s)": ">= 1.3 x floor",
        "40 x 300 ms concurrent (ms)": "<= 600 ms",
        "~1 MiB response (ms)": "<= 1.2 x floor",
        "200 KiB answer on the wire (KB)": "reported",
        "CPU for 50 concurrent streams (ms)": "reported",
        "RSS idle (MiB)": "reported",
        "RSS after load (MiB)": "<= 1.15 x floor",
        f"RSS after {soak:,} more calls (MiB)": "flat: within a few MiB of the line above",
        "first progress after first chunk (ms)": "<= 50 ms",
        "stray stdout lines": "0",
    }


def target(figure: str, soak: int, slow_calls: int) -> str:
    """The target of a figure (issue 23's for what users feel)."""
    fixed = targets(soak) | {
        "slow calls over HTTP: completed": f"all {slow_calls}",
        "slow calls over HTTP: added latency per chunk p50 (ms)": "reported",
        "slow calls over HTTP: added latency per chunk p99 (ms)": "< 10 ms",
        "slow calls over HTTP: RSS per call in flight (KiB)": "reported, bounded",
    }
    if figure in fixed:
        return fixed[figure]
    if figure.startswith("10k-chunk") or "CPU per chunk" in figure:
        return "<= 0.8 x floor"
    if figure.endswith("calls per s"):
        return ">= 1.2 x floor" + ("; ~2 x one process" if "processes" in figure else "")
    if figure.startswith("HTTP") and figure.endswith("p99 (ms)"):
        return "<= floor"
    if figure.startswith("per call via"):
        return "<= 0.9 x floor"
    if figure.startswith("~1 MiB response via"):
        return "<= 1.2 x floor"
    return "reported"


COLUMNS = ["direct httpx", "floor server", "grok-chat-mcp", "mcp-grok"]


def table(results: dict[str, dict[str, Any]], soak: int, slow_calls: int) -> str:
    head = "| figure | " + " | ".join(COLUMNS) + " | ours / floor | ours / mcp-grok | target |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    figures = list(targets(soak))
    for column in COLUMNS:
        figures += [figure for figure in results.get(column, {}) if figure not in figures]
    for figure in figures:
        cells, medians = [], {}
        for column in COLUMNS:
            values = results.get(column, {}).get(figure)
            if not values:
                cells.append("-")
                continue
            median, p5, p95 = summary(values)
            medians[column] = median
            cells.append(f"{median:.1f}" if len(values) == 1 else f"{median:.1f} ({p5:.1f}-{p95:.1f})")
        ours = medians.get("grok-chat-mcp")
        ratios = [
            f"{ours / medians[ref]:.2f}" if ours is not None and medians.get(ref) else "-"
            for ref in ("floor server", "mcp-grok")
        ]
        goal = target(figure, soak, slow_calls)
        lines.append(f"| {figure} | " + " | ".join(cells) + f" | {' | '.join(ratios)} | {goal} |")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few repetitions, no incumbent (CI)")
    parser.add_argument("--no-incumbent", action="store_true", help="skip AceDataCloud's mcp-grok")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args()
    reps = (
        {"cold": 2, "warmup": 3, "calls": 20, "concurrency": 1, "large": 2, "stream": 2}
        | {"pipelined": 50, "rounds": 1, "soak": 100}
        if args.quick
        else {"cold": 40, "warmup": 30, "calls": 300, "concurrency": 5, "large": 15, "stream": 10}
        | {"pipelined": 200, "rounds": 5, "soak": 2000}
    )
    felt_reps = (
        {"relay": 3, "streams": 1, "slow reps": 1, "slow calls": 30, "slow chunks": 30}
        | {"http reps": 1, "http seconds": 1.0, "client rounds": 1, "client calls": 5, "client large": 1}
        if args.quick
        else {"relay": 21, "streams": 10, "slow reps": 3, "slow calls": 300, "slow chunks": 400}
        | {"http reps": 3, "http seconds": 5.0, "client rounds": 5, "client calls": 40, "client large": 4}
    )
    bin_dir = Path(sys.executable).parent
    servers = [
        Server("floor server", [sys.executable, str(ROOT / "bench" / "floor_server.py")]),
        Server("grok-chat-mcp", [str(bin_dir / "grok-chat-mcp")]),
    ]
    if not (args.quick or args.no_incumbent) and (incumbent := ensure_incumbent()):
        servers.append(Server("mcp-grok", incumbent))

    results: dict[str, dict[str, Any]] = {}
    with Upstream() as upstream:
        base = upstream.url("ok")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "ACEDATACLOUD_API_TOKEN": TOKEN,
            "ACEDATACLOUD_API_BASE_URL": base,
            "LOG_LEVEL": "WARNING",
            "GROK_MAX_RETRIES": "0",
        }
        results["direct httpx"] = await bench_direct(base, reps)
        print("per call and large responses, in turn ...", file=sys.stderr)
        alternated = await in_turn(servers, env, reps)
        for server in servers:
            print(f"benchmarking {server.name} ...", file=sys.stderr)
            results[server.name] = {
                **alternated[server.name],
                **await bench_server(server, env, upstream, reps),
            }
        print("cold starts ...", file=sys.stderr)
        for name, figures in (await cold_starts(servers, env, reps["cold"])).items():
            results[name].update(figures)
        await what_users_feel(servers, env, results, felt_reps)
        if not args.quick:
            print("start-up instructions to tools/list (valgrind) ...", file=sys.stderr)
            for name, count in (await start_up_to_list_instructions(servers, env)).items():
                results[name]["cold start to tools/list (million instructions)"] = [count]
            print("cold start instructions (valgrind) ...", file=sys.stderr)
            for name, count in start_up_instructions(servers, env).items():
                results[name]["cold start (million instructions)"] = [count]
            print("per-call instructions (valgrind) ...", file=sys.stderr)
            for name, count in (await per_call_instructions(servers, env)).items():
                results[name]["per call (million instructions)"] = [count]

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Measured {stamp} on {machine}{' (quick run)' if args.quick else ''}.\n")
    print(table(results, reps["soak"], int(felt_reps["slow calls"])))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"date": stamp, "machine": machine, "quick": args.quick, "results": results})
    )


if __name__ == "__main__":
    asyncio.run(main())
