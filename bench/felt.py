"""What users feel: long streams, many slow calls over HTTP, HTTP throughput, real clients.

Called by ``bench/run.py``; each function returns ``{variant label: {figure: [samples]}}``. The servers
run as their own processes (stdio, or streamable HTTP on 127.0.0.1) against
``bench/fast_upstream.py`` (the stand-in's bytes from one asyncio process) or the stand-in itself;
the HTTP client here is a bare HTTP/1.1 one over asyncio streams, the same for every server, so
that differences are the servers'. Repetitions alternate the servers, so machine noise hits all
alike. Times are never asserted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
STAMP = re.compile(rb"<(\d+\.\d{6})>")
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
CLIENT_INFO = {"name": "bench", "version": "1"}
Samples = dict[str, dict[str, list[float]]]
#: The setup of the headline figures: the default install (no uvloop), the default store.
HEADLINE = "asyncio"
T = TypeVar("T")


def cpu_clock(pid: int) -> dict[int, int]:
    """CPU time each live thread of a process has used, in nanoseconds (``/proc/PID/task/*/schedstat``:
    ``/proc/PID/stat`` counts in 10 ms ticks, coarse for an 80 ms stream)."""
    clock = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread that just ended
            clock[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return clock


def cpu_since(pid: int, before: dict[int, int]) -> float:
    """Seconds of CPU the process has used since ``before`` (:func:`cpu_clock`), thread by thread:
    a worker thread that ended meanwhile takes its whole time with it, and must not count as a
    negative (only what it used in between is missed)."""
    return sum(used - before.get(thread, 0) for thread, used in cpu_clock(pid).items()) / 1e9


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rotated(items: list[T], by: int) -> list[T]:
    """``items`` starting at ``by`` (each round a different one first, so noise hits all alike)."""
    by %= len(items)
    return items[by:] + items[:by]


def add(out: Samples, server: str, figure: str, value: float) -> None:
    out.setdefault(server, {}).setdefault(figure, []).append(value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def fast_upstream() -> AsyncIterator[str]:
    """``bench/fast_upstream.py`` in its own process; yields its base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "fast_upstream.py"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        yield f"http://127.0.0.1:{int(line.split()[1])}/ok"
    finally:
        process.stdin.close()
        await stop(process)


@dataclass(frozen=True)
class Variant:
    """One server as measured: which one, on which event loop, with which store.

    ``asyncio`` is the default install (``pip install grok-chat-mcp``: no uvloop); ``uvloop`` is the
    ``[uvloop]`` extra and the Docker image. Ours reads the loop from ``GROK_EVENT_LOOP``, the floor
    from ``--loop``. Ours's store is the default (the per-user SQLite file, in a temporary
    ``XDG_STATE_HOME`` of its own) or ``memory`` (``GROK_STORE=memory``).
    """

    server: str  # "floor server", "grok-chat-mcp" or "mcp-grok"
    loop: str = "asyncio"
    store: str = "default"
    incumbent: tuple[str, ...] = ()  # mcp-grok's command (its own virtualenv)

    @property
    def setup(self) -> str:
        """The row of the table it belongs to."""
        return self.loop if self.store == "default" else f"{self.loop}, {self.store} store"

    @property
    def label(self) -> str:
        return f"{self.server} [{self.setup}]"

    @property
    def ours(self) -> bool:
        return self.server == "grok-chat-mcp"

    def command(self) -> list[str]:
        """Its stdio command."""
        if self.server == "floor server":
            return [sys.executable, str(ROOT / "bench" / "floor_server.py"), "--loop", self.loop]
        if self.ours:
            return [str(Path(sys.executable).parent / "grok-chat-mcp")]
        return list(self.incumbent)

    def environ(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` (which carries the run's temporary ``XDG_STATE_HOME``) for this variant."""
        if not self.ours:
            return env
        state = Path(env["XDG_STATE_HOME"]) / re.sub(r"\W+", "-", self.setup)
        extra = {"GROK_EVENT_LOOP": self.loop, "XDG_STATE_HOME": str(state)}
        if self.store != "default":
            extra["GROK_STORE"] = self.store
        return {**env, **extra}


@dataclass
class HttpServer:
    """One server process serving streamable HTTP on 127.0.0.1."""

    process: asyncio.subprocess.Process
    port: int


async def start_http(variant: Variant, env: dict[str, str]) -> HttpServer:
    """Ours as users run it (``grok-chat-mcp --transport http``), or the floor's HTTP mode."""
    env = variant.environ(env)
    if not variant.ours:
        process = await asyncio.create_subprocess_exec(
            *variant.command(), "--http", stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env
        )
        assert process.stderr is not None
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        port = int(line.split()[1])
        DRAINS.add(asyncio.ensure_future(process.stderr.read()))  # never blocks the server
    else:
        port = free_port()  # not --port 0: that needs INFO logging to learn the port, a cost per call
        process = await asyncio.create_subprocess_exec(
            *variant.command(), "--transport", "http", "--port", str(port),
            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    server = HttpServer(process, port)
    await Connection(port).call(tools_call(1, {"model": "grok-4", "messages": HELLO}), MODERN)  # warm
    return server


HELLO = [{"role": "user", "content": "ping"}]
DRAINS: set[asyncio.Future[bytes]] = set()


def tools_call(
    id_: int, arguments: dict[str, Any], progress: str | None = None, modern: bool = True
) -> bytes:
    params: dict[str, Any] = {"name": "grok_chat_completions", "arguments": arguments}
    meta: dict[str, Any] = {}
    if modern:
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    if progress is not None:
        meta["progressToken"] = progress
    if meta:
        params["_meta"] = meta
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}).encode()


INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO},
    }
).encode()


class Connection:
    """A bare keep-alive HTTP/1.1 client for ``POST /mcp`` (reconnects when the server closes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, version: str, extra: str = "") -> bytes:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: {version}\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        headers = (await self._reader.readuntil(b"\r\n\r\n")).lower()
        status = int(headers.split(b" ", 2)[1])
        if b"content-length:" in headers:
            length = int(headers.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            data = await self._reader.readexactly(length)
        elif b"transfer-encoding: chunked" in headers:
            parts = []
            while size := int((await self._reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16):
                parts.append(await self._reader.readexactly(size + 2))
            await self._reader.readuntil(b"\r\n")
            data = b"".join(part[:-2] for part in parts)
        else:
            data = await self._reader.read()
        if b"connection: close" in headers:
            self.close()
        if status != 200 or b'"error":{' in data or b'"isError":true' in data:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
        return data

    async def call(self, body: bytes, version: str) -> bytes:
        extra = "Mcp-Method: tools/call\r\nMcp-Name: grok_chat_completions\r\n" if version == MODERN else ""
        return await self.post(body, version, extra)

    async def legacy_call(self, body: bytes) -> bytes:
        """What a stateless legacy client does per call: ``initialize``, then ``tools/call``."""
        await self.post(INITIALIZE, LEGACY)
        return await self.post(body, LEGACY)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# 1. Stream relay --------------------------------------------------------------------------


async def relay_in_process(reps: int, chunks: int, quick: bool) -> Samples:
    """``bench/stream_relay.py`` in a fresh process (a benchmark process full of earlier figures'
    objects makes the collector's share noisy): CPU per chunk of the relay loop alone, ours and
    the floor's on the same bytes, one event per read and (full runs) 16 KiB reads."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "stream_relay.py"), "--json", "--reps", str(reps),
        "--chunks", str(chunks), *(["--quick"] if quick else []), stdout=subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await process.communicate()
    out: Samples = {}
    for reads, runs in json.loads(stdout.splitlines()[-1]).items():
        for run, name in (("floor", "floor server [asyncio]"), ("ours", "grok-chat-mcp [asyncio]")):
            for value in runs[run]:
                add(out, name, f"10k-chunk relay in-process, {reads}: CPU per chunk (us)", value)
    return out


async def relay_end_to_end(
    variants: list[Variant],
    env: dict[str, str],
    peer_start: Callable[[list[str], dict[str, str]], Awaitable[Any]],
    reps: int,
    chunks: int,
) -> Samples:
    """A ``chunks``-chunk stream through each real server over stdio: the server's CPU per chunk and
    the time from upstream's first chunk to the result reaching the client, with and without a
    progress token."""
    out: Samples = {}
    async with fast_upstream() as base:
        env = {**env, "ACEDATACLOUD_API_BASE_URL": base}
        peers = {v.label: await peer_start(v.command(), v.environ(env)) for v in variants}
        arguments = {"model": "grok-4", "messages": HELLO, "stream": True, "user": f"stream:{chunks}:0"}
        try:
            for rep in range(reps + 1):
                for name, peer in rotated(list(peers.items()), rep):
                    for progress in (False, True):
                        params: dict[str, Any] = {"name": "grok_chat_completions", "arguments": arguments}
                        if progress:
                            params["_meta"] = {"progressToken": f"p{rep}"}
                        before = cpu_clock(peer.process.pid)
                        reply = await peer.request("tools/call", params)
                        done = time.monotonic()
                        used = cpu_since(peer.process.pid, before)
                        raw = json.dumps(reply).encode()
                        stamps = [float(found) for found in STAMP.findall(raw)]
                        if "error" in reply or reply["result"].get("isError") or not stamps:
                            raise RuntimeError(f"{name}: stream failed: {raw[:300]!r}")
                        if rep == 0:
                            continue  # warm-up
                        label = ", with progress" if progress else ""
                        add(
                            out,
                            name,
                            f"10k-chunk stream{label}: first byte to result (ms)",
                            (done - min(stamps)) * 1000,
                        )
                        add(
                            out,
                            name,
                            f"10k-chunk stream{label}: server CPU per chunk (us)",
                            used / chunks * 1e6,
                        )
        finally:
            for peer in peers.values():
                await peer.close()
    return out


# 2. Many slow calls over HTTP -------------------------------------------------------------


async def slow_call(port: int, body: bytes, lags: list[float]) -> None:
    """One streamed call; appends the lag of its last chunk (ms)."""
    connection = Connection(port)
    try:
        data = await connection.call(body, MODERN)
        lags.append((time.monotonic() - max(float(stamp) for stamp in STAMP.findall(data))) * 1000)
    finally:
        connection.close()


async def slow_calls(
    variants: list[Variant], env: dict[str, str], reps: int, calls: int, chunks: int
) -> Samples:
    """``calls`` concurrent streamed calls on one server process, a chunk every 50 ms.

    Per run: how many complete; the added latency of each call's last chunk (upstream writing it to
    the client holding the result; between chunks the servers are idle, so this is the lag of any
    chunk plus assembling the result) at p50 and p99 over the calls; the server's CPU per relayed
    chunk; and its resident memory per call in flight (half-way, over the idle figure).
    """
    out: Samples = {}
    arguments = {"model": "grok-4", "messages": HELLO, "stream": True}
    async with fast_upstream() as base:
        env = {**env, "ACEDATACLOUD_API_BASE_URL": base}
        for rep in range(reps):
            for variant in rotated(variants, rep):
                name = variant.label
                server = await start_http(variant, env)
                try:
                    pid = server.process.pid
                    idle, cpu_before = rss_mib(pid), cpu_clock(pid)
                    lags: list[float] = []
                    body = tools_call(1, {**arguments, "user": f"stream:{chunks}:50"})
                    tasks = [asyncio.ensure_future(slow_call(server.port, body, lags)) for _ in range(calls)]
                    await asyncio.sleep(chunks * 0.05 / 2)
                    in_flight = rss_mib(pid)
                    await asyncio.wait(tasks, timeout=chunks * 0.05 * 3 + 30)
                    for task in tasks:
                        task.cancel()
                    cpu = cpu_since(pid, cpu_before)
                    add(out, name, "slow calls over HTTP: completed", float(len(lags)))
                    if lags:
                        lags.sort()
                        add(
                            out,
                            name,
                            "slow calls over HTTP: added latency per chunk p50 (ms)",
                            statistics.median(lags),
                        )
                        add(
                            out,
                            name,
                            "slow calls over HTTP: added latency per chunk p99 (ms)",
                            lags[int(0.99 * (len(lags) - 1))],
                        )
                        add(
                            out,
                            name,
                            "slow calls over HTTP: server CPU per chunk (us)",
                            cpu / (len(lags) * chunks) * 1e6,
                        )
                    add(
                        out,
                        name,
                        "slow calls over HTTP: RSS per call in flight (KiB)",
                        (in_flight - idle) * 1024 / calls,
                    )
                finally:
                    await stop(server.process)
    return out


# 3. HTTP request throughput ---------------------------------------------------------------


async def worker(port: int, body: bytes, mode: str, deadline: float, times: list[float]) -> None:
    """Calls back to back on one connection until ``deadline``; appends each round trip (s)."""
    connection = Connection(port)
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            if mode == "modern":
                await connection.call(body, MODERN)
            else:
                await connection.legacy_call(body)
            times.append(time.perf_counter() - started)
    finally:
        connection.close()


async def throughput(
    variants: list[Variant], env: dict[str, str], reps: int, seconds: float, plan: list[tuple[str, int, int]]
) -> Samples:
    """Calls per second and p99 round trip with ``connections`` clients calling back to back for
    ``seconds``, ``legacy`` (a stateless client's ``initialize`` + ``tools/call``, two POSTs) or
    ``modern`` (one 2026-07-28 POST); over one server process or two (connections split)."""
    out: Samples = {}
    async with fast_upstream() as base:
        env = {**env, "ACEDATACLOUD_API_BASE_URL": base}
        count = max(processes for _, _, processes in plan)
        # Two processes: on the default install only (a second process has no core of its own here).
        servers = {
            v.label: [await start_http(v, env) for _ in range(count if v.setup == HEADLINE else 1)]
            for v in variants
        }
        body = tools_call(1, {"model": "grok-4", "messages": HELLO})
        legacy_body = tools_call(1, {"model": "grok-4", "messages": HELLO}, modern=False)
        try:
            for rep in range(reps):
                for step, (mode, connections, processes) in enumerate(plan):
                    for name in rotated(list(servers), rep + step):
                        if len(servers[name]) < processes:
                            continue
                        ports = [server.port for server in servers[name][:processes]]
                        pids = [server.process.pid for server in servers[name][:processes]]
                        times: list[float] = []
                        deadline = time.monotonic() + seconds
                        request = body if mode == "modern" else legacy_body
                        clocks = [cpu_clock(pid) for pid in pids]
                        started = time.monotonic()
                        await asyncio.gather(
                            *(
                                worker(ports[i % processes], request, mode, deadline, times)
                                for i in range(connections)
                            )
                        )
                        elapsed = time.monotonic() - started
                        cpu = sum(cpu_since(pid, clock) for pid, clock in zip(pids, clocks, strict=True))
                        label = f"HTTP {mode}, {connections} conn" + (
                            f", {processes} processes" if processes > 1 else ""
                        )
                        times.sort()
                        add(out, name, f"{label}: calls per s", len(times) / elapsed)
                        add(out, name, f"{label}: p99 (ms)", times[int(0.99 * (len(times) - 1))] * 1000)
                        add(out, name, f"{label}: server CPU per call (ms)", cpu / len(times) * 1000)
        finally:
            for pair in servers.values():
                for server in pair:
                    await stop(server.process)
    return out


# 5. Per call through real clients ---------------------------------------------------------


def client_commands() -> dict[str, list[str]]:
    """The real clients that are installed: SDK 2.x (ours), SDK 1.x (bench/.venvs/mcp1), TypeScript."""
    script = str(ROOT / "bench" / "clients" / "python_client.py")
    clients = {"Python SDK 2.x client": [sys.executable, script]}
    sdk1 = ensure_venv("mcp1", "mcp<2")
    if sdk1 is not None:
        clients["Python SDK 1.x client"] = [str(sdk1 / "bin" / "python"), script]
    sdk = ROOT / ".ci" / "node_modules" / "@modelcontextprotocol" / "sdk"
    if sdk.is_dir() and (node := shutil_which("node")):
        clients["TypeScript SDK client"] = [node, str(ROOT / "bench" / "clients" / "ts_client.mjs"), str(sdk)]
    else:
        print("TypeScript client skipped: run npm ci --prefix .ci", file=sys.stderr)
    return clients


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def ensure_venv(name: str, requirement: str) -> Path | None:
    venv = ROOT / "bench" / ".venvs" / name
    if not (venv / "bin" / "python").exists() or not (venv / "installed").exists():
        print(f"installing {requirement} into bench/.venvs/{name} ...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement]
            subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
            (venv / "installed").write_text(requirement)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"{requirement} unavailable, skipped: {exc}", file=sys.stderr)
            return None
    return venv


async def real_clients(
    variants: list[Variant], env: dict[str, str], rounds: int, calls: int, large: int
) -> Samples:
    """Round trips as real clients see them: each client process starts each server over stdio
    and times ``calls`` instant calls and ``large`` ~1 MiB answers; rounds alternate the order."""
    out: Samples = {}
    clients = client_commands()
    for round_ in range(rounds):
        for client, command in clients.items():
            for variant in rotated(variants, round_):
                name, server = variant.label, variant.command()
                argv = [*command, str(calls), str(large)]
                argv += server if client.startswith("TypeScript") else ["--", *server]
                process = await asyncio.create_subprocess_exec(
                    *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=variant.environ(env)
                )
                stdout, stderr = await asyncio.wait_for(process.communicate(), 600)
                if process.returncode != 0:
                    print(f"{client} with {name} failed: {stderr[-500:]!r}", file=sys.stderr)
                    continue
                times = json.loads(stdout.splitlines()[-1])
                for value in times["ok"]:
                    add(out, name, f"per call via {client} (ms)", value)
                for value in times["big1024"]:
                    add(out, name, f"~1 MiB response via {client} (ms)", value)
    return out
