"""stdio when the client misbehaves or leaves (issues 27 and 29): signals with stdout full, and the
two ways a run ends (the client leaves: it returns; a signal: it is cancelled)."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from standin.upstream import Upstream

from tests.conftest import HELLO, SCRIPT, server_env
from tests.slow.test_stdio_wire import INIT, Raw, call, reap

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")

#: ``auto`` is uvloop where it is installed; ``asyncio`` is the fallback.
LOOPS = ["auto", "asyncio"]
SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
#: The promise: a signal ends the process within this many seconds, whatever it is doing.
PROMPT = 1.0


def wait_for(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll ``condition`` (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


def unread(fd: int) -> int:
    """Bytes waiting in a pipe, written and not yet read."""
    size = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, size)
    return int.from_bytes(size, sys.byteorder)


def stop_within(process: subprocess.Popen[bytes], signum: int) -> tuple[int | None, float]:
    """Send ``signum``; the exit status within :data:`PROMPT` (None if still running) and the time."""
    started = time.monotonic()
    process.send_signal(signum)
    try:
        status: int | None = process.wait(PROMPT)
    except subprocess.TimeoutExpired:
        status = None
    return status, time.monotonic() - started


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        reap(process)


# --- signals while the client does not read stdout (issue 29 item 4) -------------------------------


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="needs the pipe's capacity (Linux)")
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
@pytest.mark.parametrize(("signum", "status"), SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_server_within_a_second_while_stdout_is_full(
    stand_in: Upstream,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    loop: str,
    busy: bool,
    signum: int,
    status: int,
) -> None:
    """The client stopped reading: the server's stdout pipe is full and its writer is blocked in a
    write. A signal must still end it at once (it stayed until the client closed the pipe)."""
    process = subprocess.Popen(
        [SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.log").open("wb"),
        env=server_env(stand_in.url("ok"), GROK_EVENT_LOOP=loop, GROK_MAX_RETRIES="0"),
        cwd=tmp_path,
    )
    processes.append(process)
    assert process.stdin is not None and process.stdout is not None
    lines = [json.dumps(INIT), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})]
    if busy:  # a call in flight upstream as well
        lines.append(call(1, json.dumps({"messages": HELLO, "user": "scenario:hang"})))
    capacity = fcntl.fcntl(process.stdout.fileno(), fcntl.F_GETPIPE_SZ)
    pings = capacity // len('{"jsonrpc":"2.0","id":100000,"result":{}}\n') * 2 + 100
    lines += [json.dumps({"jsonrpc": "2.0", "id": 100 + n, "method": "ping"}) for n in range(pings)]
    data = ("\n".join(lines) + "\n").encode()
    feeder = threading.Thread(target=_feed, args=(process, data), daemon=True)  # stdin may fill too
    feeder.start()
    stdout = process.stdout.fileno()
    wait_for(lambda: unread(stdout) >= capacity - 4096, "stdout full")
    if busy:
        wait_for(lambda: bool(stand_in.requests), "the call reached upstream")
    time.sleep(0.2)  # the writer is blocked in its write by now
    assert unread(stdout) >= capacity - 4096  # nobody read anything

    exit_status, took = stop_within(process, signum)
    assert exit_status == status, f"still running {took:.2f} s after {signal.Signals(signum).name}"
    assert took < PROMPT
    assert b"Traceback" not in (tmp_path / "stderr.log").read_bytes()


def _feed(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(data)
        process.stdin.flush()
    except (BrokenPipeError, ValueError):  # the server is gone: nothing more to feed
        pass


# --- how a run ends: the client leaves (it returns) or a signal (it is cancelled) -----------------

#: ``serve()`` around a stand-in for the server's run, which notes what happens to it in a file:
#: it answers pings until its input ends, then "drains" (the lifespan finishing calls reported
#: ``running``) for a given time, shielded from cancellation or not.
FAKE_RUN = """
import sys, anyio, mcp_types as types
from mcp.shared.message import SessionMessage
from grok_chat_mcp import eventloop
from grok_chat_mcp.transports import stdio

loop, drain, shielded, notes = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "shielded", sys.argv[4]

def note(text):
    with open(notes, "a") as file:
        file.write(text + "\\n")

class Run:
    def create_initialization_options(self):
        return None

    async def run(self, read, write, options):
        try:
            async with read, write:
                async for item in read:
                    await anyio.sleep((item.message.params or {}).get("delay", 0))
                    reply = types.JSONRPCResponse(jsonrpc="2.0", id=item.message.id, result={})
                    await write.send(SessionMessage(reply))
            note("end of input")
            with anyio.CancelScope(shield=shielded):
                await anyio.sleep(drain)
            note("returned")
        except anyio.get_cancelled_exc_class():
            note("cancelled")
            raise

use_uvloop = eventloop.choose(loop) == "uvloop"
sys.exit(anyio.run(stdio.serve, Run(), backend_options={"use_uvloop": use_uvloop}))
"""


class FakeRun:
    """``serve()`` with the stand-in run, in its own process, over pipes."""

    def __init__(self, tmp_path: Path, loop: str, drain: float, shielded: bool) -> None:
        self.notes_path = tmp_path / "notes.txt"
        arguments = [loop, str(drain), "shielded" if shielded else "-", str(self.notes_path)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", FAKE_RUN, *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.raw = Raw(self.process)

    def notes(self) -> list[str]:
        return self.notes_path.read_text().split() if self.notes_path.exists() else []

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        wait_for(lambda: "end" in self.notes(), "the run saw the end of its input")

    def errors(self) -> bytes:
        assert self.process.stderr is not None
        return self.process.stderr.read()


@pytest.fixture
def fake_run(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> Callable[..., FakeRun]:
    def start(loop: str, drain: float, shielded: bool = False) -> FakeRun:
        run = FakeRun(tmp_path, loop, drain, shielded)
        processes.append(run.process)
        run.raw.send({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert run.raw.receive(timeout=30)["id"] == 1  # serving: the signal handlers are set
        return run

    return start


@pytest.mark.parametrize("loop", LOOPS)
def test_end_of_input_lets_the_run_return_normally(fake_run: Callable[..., FakeRun], loop: str) -> None:
    """The client left: the run is not cancelled; it finishes what it has (0.5 s here), then the
    process exits with status 0."""
    run = fake_run(loop, drain=0.5)
    run.close_stdin()
    assert run.process.wait(10) == 0
    assert run.notes() == ["end", "of", "input", "returned"]
    assert b"Traceback" not in run.errors()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_closed_stdout_is_the_client_leaving_too(fake_run: Callable[..., FakeRun], loop: str) -> None:
    """stdin stays open, but nobody reads the answers: the run's input ends, it returns normally,
    and the process exits with status 0 (the SDK's reader, still blocked on stdin, is left)."""
    run = fake_run(loop, drain=0.5)
    assert run.process.stdout is not None
    run.process.stdout.close()
    assert run.process.wait(10) == 0
    assert run.notes() == ["end", "of", "input", "returned"]
    assert b"Traceback" not in run.errors()


@pytest.mark.parametrize("loop", LOOPS)
def test_an_answer_written_to_a_closed_stdout_ends_the_process(
    fake_run: Callable[..., FakeRun], loop: str
) -> None:
    """The client closes stdout while an answer is on its way: the write fails in the SDK's writer
    (which ends its transport) before the closed stdout is seen; the process still exits, 0."""
    run = fake_run(loop, drain=0.5)
    assert run.process.stdout is not None
    run.raw.send({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"delay": 0.01}})
    run.process.stdout.close()
    assert run.process.wait(10) == 0
    assert b"Traceback" not in run.errors()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(("signum", "status"), SIGNALS, ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("state", ["reading", "draining", "draining-shielded"])
def test_a_signal_cancels_the_run_and_ends_the_process_within_a_second(
    fake_run: Callable[..., FakeRun], loop: str, signum: int, status: int, state: str
) -> None:
    """Waiting for input (stdin open), draining after the end of input, or draining in a scope
    shielded from cancellation: the process ends within a second, with 128 + the signal."""
    run = fake_run(loop, drain=60, shielded=state == "draining-shielded")
    if state != "reading":
        run.close_stdin()
    exit_status, took = stop_within(run.process, signum)
    assert exit_status == status, f"still running {took:.2f} s after {signal.Signals(signum).name}"
    assert took < PROMPT
    expected = {"reading": ["cancelled"], "draining": ["end", "of", "input", "cancelled"]}
    assert run.notes() == expected.get(state, ["end", "of", "input"])  # a shielded run is left
    assert b"Traceback" not in run.errors()
