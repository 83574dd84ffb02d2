"""Cancels reach the call on any replica (issue 28, item 4): two HTTP servers share one Redis, as
the Kubernetes example's replicas do behind a plain Service; a ``notifications/cancelled`` that
lands on the replica not running the call still closes the upstream request."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from standin.upstream import Upstream

from tests.slow.test_hostile import MCP_HEADERS, cancel, cancelled, streamed_call, tool_result, wait_until
from tests.slow.test_http import start_cli

pytestmark = pytest.mark.anyio


@contextmanager
def replica(stand_in: Upstream, tmp_path: Path, store: str) -> Iterator[str]:
    process, port = start_cli(stand_in, tmp_path, GROK_STORE=store, GROK_MAX_RETRIES="0")
    drain = threading.Thread(target=lambda: list(process.stderr or ()), daemon=True)
    drain.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_a_cancel_on_the_other_replica_aborts_the_call(
    stand_in: Upstream, tmp_path: Path, redis_url: str
) -> None:
    store = redis_url.rsplit("/", 1)[0] + "/12"
    headers = {**MCP_HEADERS, "Authorization": "Bearer team-token-0123456789"}
    results: dict[str, Any] = {}
    with replica(stand_in, tmp_path, store) as a, replica(stand_in, tmp_path, store) as b:
        async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as group:

            async def call() -> None:
                results["a"] = tool_result(
                    await http.post(f"{a}/mcp", json=streamed_call(7, "long50"), headers=headers)
                )

            group.start_soon(call)
            await wait_until(lambda: bool(stand_in.first_chunk_sent), "the call streaming on replica a")
            sent = await http.post(f"{b}/mcp", json=cancel(7), headers=headers)  # the other replica
            assert sent.status_code == 202
            await wait_until(lambda: bool(stand_in.disconnects), "the upstream request closed")
    assert cancelled(results["a"])
