"""The stdin gate in the real console script (issue 29 item 3, issue 27 item 6): a line with too much
structure is answered with its id before the SDK parses it, and the server carries on; fd 0 reads
the null device while the server reads the protocol from its own copy."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from standin.upstream import Upstream

from tests.conftest import HELLO
from tests.slow.test_clients import TS_SDK, typescript_over_stdio
from tests.slow.test_stdio_wire import Raw, call, serving

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")

#: ``auto`` is uvloop where it is installed; ``asyncio`` is the fallback.
LOOPS = ["auto", "asyncio"]
#: 200,000 one-character text parts: about 400,000 marks, four times the gate's limit.
PARTS = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 200_000}]})


@pytest.fixture(params=LOOPS)
def raw(request: pytest.FixtureRequest, stand_in: Upstream, tmp_path: Path) -> Iterator[Raw]:
    with (
        (tmp_path / "stderr.log").open("wb") as log,
        serving(stand_in, tmp_path, log, GROK_EVENT_LOOP=request.param) as server,
    ):
        yield server
    assert b"Traceback" not in (tmp_path / "stderr.log").read_bytes()


def test_a_refused_line_is_answered_with_its_id_and_the_next_call_succeeds(raw: Raw) -> None:
    id_first = call(1, PARTS)
    id_last = json.dumps(  # as the TypeScript SDK writes a request: {...request, jsonrpc, id}
        {
            "method": "tools/call",
            "params": {"name": "grok_chat_completions", "arguments": json.loads(PARTS)},
            "jsonrpc": "2.0",
            "id": "ts-7",
        }
    )
    notification = json.dumps({"jsonrpc": "2.0", "method": "notifications/x", "params": json.loads(PARTS)})
    for line, request_id in ((id_first, 1), (notification, None), (id_last, "ts-7")):
        raw.send(line)
        if request_id is None:
            continue  # no reply is due; the next reply must be the next request's
        reply = raw.receive(timeout=60)
        assert reply["id"] == request_id
        assert reply["error"]["code"] == -32600
        assert "too much structure" in reply["error"]["message"]
    raw.send(call(2, json.dumps({"messages": HELLO})))
    reply = raw.receive(timeout=60)
    assert reply["id"] == 2 and reply["result"]["isError"] is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_fd_0_reads_the_null_device_while_serving(raw: Raw) -> None:
    """Handlers and child processes that read stdin get the end of input, never the protocol."""
    raw.send({"jsonrpc": "2.0", "id": 3, "method": "ping"})
    assert raw.receive()["id"] == 3  # serving
    assert os.readlink(f"/proc/{raw.process.pid}/fd/0") == os.devnull


@pytest.mark.skipif(not (TS_SDK.exists() and shutil.which("node")), reason="needs the TypeScript SDK in .ci")
def test_the_typescript_sdk_gets_the_refusal_for_its_call_and_carries_on(tmp_path: Path) -> None:
    """The real consumer: its requests carry the id last, and its call must fail with our error
    (not time out), after which the next call works."""
    seen = typescript_over_stdio("ts_refused.mjs", tmp_path)
    assert seen["refused"]["code"] == -32600
    assert "too much structure" in seen["refused"]["message"]
    assert seen["result"]["isError"] is False
