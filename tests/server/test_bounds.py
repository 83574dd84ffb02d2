"""Every byte, second and secret from upstream has a limit: hostile bodies, streams and echoes."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from mcp import Client

from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.request import GrokRequest
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from grok_chat_mcp.upstream.client import GrokClient, make_http_client
from tests.conftest import HELLO, TOKEN, completion, text_of

pytestmark = pytest.mark.anyio
SSE = {"content-type": "text/event-stream"}
CALLER_TOKEN = "caller-own-token-abcdef0123456789"


@pytest.fixture
async def grok(settings: Settings) -> AsyncIterator[GrokClient]:
    async def no_sleep(_: float) -> None:
        return None

    async with make_http_client(settings) as http:
        yield GrokClient(http, settings, sleep=no_sleep)


async def failure(grok: GrokClient, payload: dict[str, Any] | None = None, token: str | None = None) -> str:
    with pytest.raises(GrokError) as caught:
        await grok.complete(GrokRequest.of(payload or {"model": "grok-4", "messages": HELLO}), token=token)
    return str(caught.value)


def peak_rss_mib() -> float:
    """Peak resident memory of this process (0 where the platform cannot tell: Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Endless(httpx.AsyncByteStream):
    """An event stream that never ends: a chunk, then keep-alive comments forever (or a 1-byte trickle)."""

    def __init__(self, piece: bytes, delay: float) -> None:
        self.piece, self.delay = piece, delay

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import anyio

        yield b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
        while True:
            await anyio.sleep(self.delay)
            yield self.piece


class Repeated(httpx.AsyncByteStream):
    """``count`` copies of ``piece``: a large body without holding it in memory."""

    def __init__(self, piece: bytes, count: int) -> None:
        self.piece, self.count = piece, count
        self.served = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.served += 1
            yield self.piece


def gzip_bomb(size: int) -> bytes:
    return gzip.compress(b"\0" * size, compresslevel=9)


async def test_gzip_bomb_is_stopped_without_inflating_it(
    grok: GrokClient, upstream: respx.MockRouter
) -> None:
    bomb = gzip_bomb(512 * 1024 * 1024)  # ~0.5 MB on the wire, 512 MiB inflated
    assert len(bomb) < 1024 * 1024
    before = peak_rss_mib()
    upstream.post("/grok/chat/completions").respond(  # a stream: respx would inflate plain content itself
        200, stream=Repeated(bomb, 1), headers={"content-encoding": "gzip"}
    )
    started = time.perf_counter()
    text = await failure(grok)
    assert time.perf_counter() - started < 2
    assert "Unexpected response (HTTP 200): the response passed 16 MiB" in text
    assert peak_rss_mib() - before < 200  # not the 512 MiB (or 1.1 GiB) of old


async def test_streamed_gzip_bomb_is_stopped(grok: GrokClient, upstream: respx.MockRouter) -> None:
    bomb = gzip_bomb(256 * 1024 * 1024)  # one endless line of NULs once inflated
    upstream.post("/grok/chat/completions").respond(
        200, stream=Repeated(bomb, 1), headers={**SSE, "content-encoding": "gzip"}
    )
    text = await failure(grok, {"model": "grok-4", "messages": HELLO, "stream": True})
    assert "Response too large" in text and "longer than 4,194,304 bytes" in text


async def test_gzip_body_is_decoded(grok: GrokClient, upstream: respx.MockRouter) -> None:
    body = gzip.compress(json.dumps(completion("zipped")).encode())
    route = upstream.post("/grok/chat/completions").respond(
        200, content=body, headers={"content-encoding": "gzip"}
    )
    assert await grok.complete(GrokRequest.of({"messages": HELLO})) == completion("zipped")
    assert route.calls.last.request.headers["accept-encoding"] == "gzip"


async def test_unknown_content_encoding_is_a_clear_error(
    grok: GrokClient, upstream: respx.MockRouter
) -> None:
    upstream.post("/grok/chat/completions").respond(200, content=b"xx", headers={"content-encoding": "br"})
    assert "unsupported Content-Encoding: 'br'" in await failure(grok)


async def test_a_line_without_newline_is_bounded(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(
        200, stream=Repeated(b"data: " + b"a" * 65536, 300), headers=SSE
    )  # 19 MiB without a newline
    text = await failure(grok, {"model": "grok-4", "messages": HELLO, "stream": True})
    assert "an event-stream line is longer than 4,194,304 bytes" in text


async def test_assembled_completion_is_bounded(
    grok: GrokClient, upstream: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("grok_chat_mcp.upstream.client.MAX_ASSEMBLED_CHARS", 10_000)
    event = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 1000 + b'"}}]}\n\n'
    upstream.post("/grok/chat/completions").respond(200, stream=Repeated(event, 100), headers=SSE)
    text = await failure(grok, {"model": "grok-4", "messages": HELLO, "stream": True})
    assert "the streamed answer passed 10,000 characters" in text


async def test_huge_error_body_neither_freezes_nor_floods(
    grok: GrokClient, upstream: respx.MockRouter
) -> None:
    body = Repeated(b"<" * 65536, 640)  # 40 MiB of '<'
    upstream.post("/grok/chat/completions").respond(400, stream=body, headers={"content-type": "text/html"})
    text = await failure(grok)
    assert body.served <= 2  # 64 KiB are read and looked at, not 40 MiB
    assert "Request rejected (HTTP 400)" in text and len(text) < 600


@pytest.mark.parametrize(
    ("stream", "why"),
    [(Endless(b": keep-alive\n\n", 0.01), "keep-alive comments only"), (Endless(b"\n", 0.05), "a trickle")],
)
async def test_endless_streams_end_at_the_call_deadline(
    upstream: respx.MockRouter, stream: httpx.AsyncByteStream, why: str
) -> None:
    settings = Settings(api_token=TOKEN, timeout=5.0, call_timeout=0.5)
    upstream.post("/grok/chat/completions").respond(200, stream=stream, headers=SSE)
    async with make_http_client(settings) as http:
        started = time.perf_counter()
        text = await failure(
            GrokClient(http, settings), {"model": "grok-4", "messages": HELLO, "stream": True}
        )
    assert time.perf_counter() - started < 2, why
    assert "Timeout: the call did not finish within 0.5s (GROK_CALL_TIMEOUT)" in text


async def test_retry_after_nan_does_not_wait_30_seconds(upstream: respx.MockRouter) -> None:
    settings = Settings(api_token=TOKEN, max_retries=1)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    upstream.post("/grok/chat/completions").mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after": "NaN"}),
            httpx.Response(200, json=completion()),
        ]
    )
    async with make_http_client(settings) as http:
        await GrokClient(http, settings, sleep=sleep).complete(GrokRequest.of({"messages": HELLO}))
    assert len(waits) == 1 and waits[0] <= 0.5  # the backoff, not 30 s


async def test_error_event_keeps_the_upstream_message(grok: GrokClient, upstream: respx.MockRouter) -> None:
    body = (
        'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        "event: error\ndata: model overloaded, try later\n\n"
    )
    upstream.post("/grok/chat/completions").respond(200, content=body.encode(), headers=SSE)
    text = await failure(grok, {"model": "grok-4", "messages": HELLO, "stream": True})
    assert text.startswith("Upstream error (in the stream): model overloaded, try later")


async def test_empty_data_events_are_skipped(grok: GrokClient, upstream: respx.MockRouter) -> None:
    body = (
        "data:\n\n"
        'data: {"id":"foaicmpl-1","choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n'
        "data:\n\ndata: [DONE]\n\n"
    )
    upstream.post("/grok/chat/completions").respond(200, content=body.encode(), headers=SSE)
    result = await grok.complete(GrokRequest.of({"model": "grok-4", "messages": HELLO, "stream": True}))
    assert result["choices"][0]["message"]["content"] == "ok"


def nested(depth: int) -> str:
    return '{"choices": [' + "[" * depth + "]" * depth + "]}"


@pytest.mark.parametrize("depth", [200, 1000, 100_000])
async def test_deeply_nested_upstream_json_is_one_plain_error(
    grok: GrokClient, upstream: respx.MockRouter, depth: int
) -> None:
    upstream.post("/grok/chat/completions").respond(200, content=nested(depth).encode())
    text = await failure(grok)
    assert text.startswith(
        "Unexpected response (HTTP 200): upstream answered with a body that is not a JSON object"
    )


async def test_nan_from_upstream_becomes_null_in_both_result_forms(
    mcp: Client, upstream: respx.MockRouter
) -> None:
    body = json.dumps(completion()).replace('"prompt_tokens": 5', '"prompt_tokens": NaN')
    assert "NaN" in body
    upstream.post("/grok/chat/completions").respond(200, content=body.encode())
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO})
    assert not result.is_error
    assert result.structured_content["result"]["usage"]["prompt_tokens"] is None
    assert json.loads(text_of(result)) == result.structured_content
    assert "NaN" not in text_of(result)


def echo_body(secret: str) -> dict[str, Any]:
    return {
        "error": {"code": f"bad_{secret}", "message": f"token {secret} refused"},
        "trace_id": f"t-{secret}",
    }


@pytest.mark.parametrize("who", ["server", "caller"])
async def test_echoed_tokens_are_redacted_everywhere(
    grok: GrokClient, upstream: respx.MockRouter, who: str
) -> None:
    secret = TOKEN if who == "server" else CALLER_TOKEN
    upstream.post("/grok/chat/completions").respond(401, json=echo_body(secret))
    text = await failure(grok, token=None if who == "server" else CALLER_TOKEN)
    assert secret not in text and secret[:15] not in text
    assert text.count("[redacted]") == 3  # code, message and trace_id


async def test_non_json_body_is_redacted_before_it_is_cut(
    grok: GrokClient, upstream: respx.MockRouter
) -> None:
    page = "x" * 190 + TOKEN + "y" * 500  # the excerpt limit falls inside the token
    upstream.post("/grok/chat/completions").respond(400, text=page, headers={"content-type": "text/plain"})
    text = await failure(grok)
    assert TOKEN[:8] not in text


async def test_completion_echoing_the_token_is_redacted(mcp: Client, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(200, json=completion(f"your key is {TOKEN}"))
    result = await mcp.call_tool(TOOL_NAME, {"messages": HELLO})
    assert TOKEN not in text_of(result)
    assert TOKEN not in json.dumps(result.structured_content)
    assert result.structured_content["result"]["choices"][0]["message"]["content"] == "your key is [redacted]"


@pytest.fixture
def quiet_upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url="https://api.acedata.cloud", assert_all_called=False) as router:
        yield router


async def test_deadline_through_the_mcp_client(quiet_upstream: respx.MockRouter) -> None:
    settings = Settings(api_token=TOKEN, call_timeout=0.3)
    quiet_upstream.post("/grok/chat/completions").respond(
        200, stream=Endless(b": ping\n\n", 0.01), headers=SSE
    )
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(TOOL_NAME, {"messages": HELLO, "stream": True})
    assert result.is_error
    assert text_of(result).startswith("Timeout: the call did not finish within 0.3s")
