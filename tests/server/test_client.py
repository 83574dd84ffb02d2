"""The HTTP client: requests, error taxonomy, retries, timeouts and streaming, with respx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from standin.upstream import Upstream

from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.request import GrokRequest
from grok_chat_mcp.upstream.client import GrokClient, make_http_client
from tests.conftest import HELLO, TOKEN, URL, completion

pytestmark = pytest.mark.anyio


@pytest.fixture
async def grok(settings: Settings) -> AsyncIterator[GrokClient]:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async with make_http_client(settings) as http:
        client = GrokClient(http, settings, sleep=sleep)
        client.delays = delays  # type: ignore[attr-defined]
        yield client


def error_body(code: str, message: str, trace: str = "trace-9") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "trace_id": trace}


async def failure(grok: GrokClient, payload: dict[str, Any] | None = None) -> GrokError:
    with pytest.raises(GrokError) as caught:
        await grok.complete(GrokRequest.of(payload or {"model": "grok-4", "messages": HELLO}))
    assert TOKEN not in str(caught.value)
    return caught.value


async def test_request_headers_and_body(grok: GrokClient, upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    payload = {"model": "grok-3", "messages": HELLO, "temperature": 0.25}
    result = await grok.complete(GrokRequest.of(payload))
    assert result == completion()
    request = route.calls.last.request
    assert str(request.url) == URL
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("grok-chat-mcp/")
    assert json.loads(request.content) == payload


async def test_token_override(grok: GrokClient, upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    await grok.complete(GrokRequest.of({"messages": HELLO}), token="other-token")
    assert route.calls.last.request.headers["authorization"] == "Bearer other-token"


async def test_missing_token_fails_without_a_request(upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    settings = Settings(api_token=None)
    async with make_http_client(settings) as http:
        with pytest.raises(GrokError) as caught:
            await GrokClient(http, settings).complete(GrokRequest.of({"messages": HELLO}))
    assert "ACEDATACLOUD_API_TOKEN" in str(caught.value)
    assert not route.called


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, error_body("bad_request", "model does not support reasoning_effort"),
         ["Request rejected", "HTTP 400", "bad_request", "does not support reasoning_effort", "trace-9"]),
        (422, error_body("bad_request", "messages: invalid"), ["Request rejected", "HTTP 422"]),
        (401, error_body("invalid_token", "bad"), ["Authentication failed", "ACEDATACLOUD_API_TOKEN"]),
        (401, error_body("token_expired", "expired"), ["Authentication failed", "token_expired"]),
        (403, error_body("used_up", "balance insufficient"), ["Insufficient balance", "top it up"]),
        (403, error_body("disabled", "account disabled"), ["Access disabled"]),
        (403, error_body("forbidden", "moderation"), ["Request refused", "moderation"]),
        (404, error_body("no_api", "no such api"), ["Not found", "HTTP 404", "ACEDATACLOUD_API_BASE_URL"]),
        (400, error_body("no_token", "token missing"), ["Authentication failed", "HTTP 400", "no_token"]),
        (400, error_body("token_mismatched", "wrong api"), ["Authentication failed", "token_mismatched"]),
        (400, error_body("disabled", "token disabled"), ["Access disabled (HTTP 400, disabled)"]),
        (400, error_body("api_not_implemented", "x"), ["Not available", "ACEDATACLOUD_API_BASE_URL"]),
        (403, error_body("used_up", "no money"), ["Insufficient balance (HTTP 403, used_up)"]),
        (500, error_body("api_error", "No valid account found"), ["Upstream error", "pool is exhausted"]),
        (400, error_body("bad_request", "The model `grok-2-vision` is not supported."),
         ["Model not available (HTTP 400, bad_request)", "retired upstream on 2026-07-27",
          "Use one of: grok-4.7, grok-4.5, grok-4, grok-3"]),
        (402, {"x402Version": 1, "accepts": []}, ["Payment required (HTTP 402)", "x402", "not a used-up"]),
        (403, {"error": {"message": "blocked"}}, ["Permission denied (HTTP 403)", "content moderation"]),
        (400, {"code": "Client specified an invalid argument",
               "error": "Argument not supported on this model: presencePenalty"},
         ["Request rejected (HTTP 400, Client specified an invalid argument)", "rejects presence_penalty"]),
        (400, {"code": "Client specified an invalid argument",
               "error": "Model grok-4.5 does not support parameter frequencyPenalty."},
         ["rejects frequency_penalty: call again without it"]),
        (400, {"code": "Client specified an invalid argument",
               "error": "Only messages of role 'user' can have a name."},
         ["Remove 'name' from every message"]),
        (504, error_body("timeout", "gateway timeout"), ["Upstream timeout", "billed", "not retried"]),
        (418, {"code": "teapot", "error": "xai style error"}, ["HTTP 418", "teapot", "xai style error"]),
    ],
)  # fmt: skip
async def test_error_taxonomy(
    grok: GrokClient, upstream: respx.MockRouter, status: int, body: dict[str, Any], expected: list[str]
) -> None:
    route = upstream.post("/grok/chat/completions").respond(status, json=body)
    model = "grok-2-vision" if "grok-2-vision" in str(body) else "grok-4"
    text = str(await failure(grok, {"model": model, "messages": HELLO}))
    for fragment in expected:
        assert fragment in text
    assert route.call_count == (3 if status == 500 else 1)  # only the 500 is retried


async def test_html_body_becomes_a_short_excerpt(grok: GrokClient, upstream: respx.MockRouter) -> None:
    page = "<html><head><style>x{}</style></head><body><h1>502 Bad Gateway</h1>" + "<p>nginx</p>" * 200
    upstream.post("/grok/chat/completions").respond(502, text=page, headers={"content-type": "text/html"})
    text = str(await failure(grok))
    assert "HTTP 502" in text and "502 Bad Gateway" in text
    assert "<" not in text
    assert len(text) < 500
    assert "after 3 attempts" in text


async def test_non_json_success_body(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(200, text="<html>login</html>")
    text = str(await failure(grok))
    assert "not a JSON object" in text and "login" in text


async def test_error_object_with_status_200(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(200, json=error_body("api_error", "oops"))
    text = str(await failure(grok))
    assert "api_error" in text and "oops" in text


async def test_upstream_echoing_the_token_is_redacted(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(401, json=error_body("invalid_token", f"bad {TOKEN}"))
    assert "[redacted]" in str(await failure(grok))


@pytest.mark.parametrize(("statuses", "calls"), [([429, 200], 2), ([503, 503, 200], 3), ([502, 200], 2)])
async def test_safe_statuses_are_retried(
    grok: GrokClient, upstream: respx.MockRouter, statuses: list[int], calls: int
) -> None:
    responses = [
        httpx.Response(s, json=completion() if s == 200 else error_body("x", "busy")) for s in statuses
    ]
    route = upstream.post("/grok/chat/completions").mock(side_effect=responses)
    assert await grok.complete(GrokRequest.of({"messages": HELLO})) == completion()
    assert route.call_count == calls


async def test_persistent_500_gives_up_after_max_retries(
    grok: GrokClient, upstream: respx.MockRouter
) -> None:
    route = upstream.post("/grok/chat/completions").respond(500, json=error_body("api_error", "down"))
    error = await failure(grok)
    assert route.call_count == 3
    assert error.attempts == 3 and "after 3 attempts" in str(error)
    assert "Upstream error" in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 504])
async def test_unsafe_statuses_are_not_retried(
    grok: GrokClient, upstream: respx.MockRouter, status: int
) -> None:
    route = upstream.post("/grok/chat/completions").respond(status, json=error_body("x", "no"))
    await failure(grok)
    assert route.call_count == 1


async def test_retries_disabled(upstream: respx.MockRouter) -> None:
    settings = Settings(api_token=TOKEN, max_retries=0)
    route = upstream.post("/grok/chat/completions").respond(429, json=error_body("too_many_requests", "slow"))
    async with make_http_client(settings) as http:
        with pytest.raises(GrokError, match="Rate limited"):
            await GrokClient(http, settings).complete(GrokRequest.of({"messages": HELLO}))
    assert route.call_count == 1


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("120", 30.0), ("0", 0.0)])
async def test_retry_after_is_honoured_and_capped(
    grok: GrokClient, upstream: respx.MockRouter, header: str, expected: float
) -> None:
    responses = [httpx.Response(429, headers={"Retry-After": header}), httpx.Response(200, json=completion())]
    upstream.post("/grok/chat/completions").mock(side_effect=responses)
    await grok.complete(GrokRequest.of({"messages": HELLO}))
    assert grok.delays == [expected]  # type: ignore[attr-defined]


async def test_retry_after_http_date(grok: GrokClient, upstream: respx.MockRouter) -> None:
    responses = [
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.Response(200, json=completion()),
    ]
    upstream.post("/grok/chat/completions").mock(side_effect=responses)
    await grok.complete(GrokRequest.of({"messages": HELLO}))
    assert grok.delays == [0.0]  # type: ignore[attr-defined]  # a date in the past: retry at once


async def test_backoff_grows_exponentially(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(500)
    await failure(grok)
    first, second = grok.delays  # type: ignore[attr-defined]
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


async def test_connection_failures_are_retried_then_reported(
    grok: GrokClient, upstream: respx.MockRouter
) -> None:
    route = upstream.post("/grok/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    text = str(await failure(grok))
    assert route.call_count == 3
    assert "Network error" in text and "api.acedata.cloud" in text


async def test_connection_failure_then_success(grok: GrokClient, upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=completion())]
    )
    assert await grok.complete(GrokRequest.of({"messages": HELLO})) == completion()
    assert route.call_count == 2


async def test_read_timeout_is_not_retried(grok: GrokClient, upstream: respx.MockRouter) -> None:
    route = upstream.post("/grok/chat/completions").mock(side_effect=httpx.ReadTimeout("slow"))
    text = str(await failure(grok))
    assert route.call_count == 1
    assert "Timeout" in text and "GROK_REQUEST_TIMEOUT" in text and "billed" in text


class Pieces(httpx.AsyncByteStream):
    """A body delivered in reads of ``size`` bytes (splitting lines, CRLF pairs, UTF-8 sequences)."""

    def __init__(self, raw: bytes, size: int) -> None:
        self._raw, self._size = raw, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._raw), self._size):
            yield self._raw[start : start + self._size]


def sse(*events: str) -> bytes:
    return "".join(f"data: {event}\n\n" for event in events).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return json.dumps(
        {"id": "c1", "object": "chat.completion.chunk", "model": "grok-4", "choices": [choice], **extra}
    )


async def test_stream_is_assembled_and_text_reported(grok: GrokClient, upstream: respx.MockRouter) -> None:
    body = sse(
        chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}), chunk({}, "stop"), "[DONE]"
    )
    route = upstream.post("/grok/chat/completions").respond(
        200, content=body, headers={"content-type": "text/event-stream"}
    )
    seen: list[str] = []

    async def on_text(text: str) -> None:
        seen.append(text)

    result = await grok.complete(GrokRequest.of({"messages": HELLO, "stream": True}), on_text=on_text)
    assert route.calls.last.request.headers["accept"] == "text/event-stream"
    assert json.loads(route.calls.last.request.content)["stream"] is True
    assert result["object"] == "chat.completion"
    assert result["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert result["choices"][0]["finish_reason"] == "stop"
    assert "".join(seen) == "Hello"  # new text only, as it arrives (one piece per read)


async def test_stream_without_done_is_an_error(grok: GrokClient, upstream: respx.MockRouter) -> None:
    body = sse(chunk({"content": "partial answer"}))
    upstream.post("/grok/chat/completions").respond(
        200, content=body, headers={"content-type": "text/event-stream"}
    )
    text = str(await failure(grok, {"messages": HELLO, "stream": True}))
    assert "Stream interrupted" in text and "[DONE]" in text and "14 characters" in text


async def test_stream_error_event(grok: GrokClient, upstream: respx.MockRouter) -> None:
    body = sse(chunk({"content": "a"}), json.dumps(error_body("api_error", "model overloaded")))
    upstream.post("/grok/chat/completions").respond(
        200, content=body, headers={"content-type": "text/event-stream"}
    )
    text = str(await failure(grok, {"messages": HELLO, "stream": True}))
    assert "in the stream" in text and "model overloaded" in text


async def test_stream_request_answered_with_json_error(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(401, json=error_body("invalid_token", "nope"))
    text = str(await failure(grok, {"messages": HELLO, "stream": True}))
    assert "Authentication failed" in text


async def test_stream_request_answered_with_plain_json(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(200, json=completion("whole"))
    result = await grok.complete(GrokRequest.of({"messages": HELLO, "stream": True}))
    assert result == completion("whole")


async def test_stream_non_json_event(grok: GrokClient, upstream: respx.MockRouter) -> None:
    upstream.post("/grok/chat/completions").respond(
        200, content=sse("not json"), headers={"content-type": "text/event-stream"}
    )
    assert "non-JSON event" in str(await failure(grok, {"messages": HELLO, "stream": True}))


async def test_stream_split_across_reads_with_crlf_and_keepalives(
    grok: GrokClient, upstream: respx.MockRouter
) -> None:
    raw = (
        (
            ": keep-alive\r\n\r\n" + f"data: {chunk({'role': 'assistant', 'content': 'Hé'})}\r\n\r\n"
            ": ping\r\n\r\n" + f"data: {chunk({'content': 'llo'}, 'stop')}\r\n\r\n" + "data: [DONE]\r\n\r\n"
        )
        .replace("\\u00e9", "é")
        .encode()
    )
    assert "é".encode() in raw

    upstream.post("/grok/chat/completions").respond(
        200, stream=Pieces(raw, 7), headers={"content-type": "text/event-stream"}
    )
    result = await grok.complete(GrokRequest.of({"messages": HELLO, "stream": True}))
    assert result["choices"][0]["message"]["content"] == "Héllo"
    assert result["choices"][0]["finish_reason"] == "stop"


async def test_transports_that_hand_over_a_read_response_work(settings: Settings) -> None:
    """``build_server(transport=...)`` takes any httpx transport; MockTransport returns read bodies."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=completion("mocked"))

    async with make_http_client(settings, httpx.MockTransport(answer)) as http:
        assert await GrokClient(http, settings).complete(GrokRequest.of({"messages": HELLO})) == completion(
            "mocked"
        )


def cookie_setting_upstream(seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion("ok"), headers={"Set-Cookie": "session=caller-a; Path=/"})

    return httpx.MockTransport(answer)


async def test_no_cookie_travels_to_the_next_request(settings: Settings) -> None:
    """Callers with their own tokens share the client over HTTP: no cookie may pass between them."""
    seen: list[httpx.Request] = []
    async with make_http_client(settings, cookie_setting_upstream(seen)) as http:
        grok = GrokClient(http, settings)
        await grok.complete(GrokRequest.of({"messages": HELLO}), token="caller-a")
        await grok.complete(GrokRequest.of({"messages": HELLO}), token="caller-b")
    assert len(seen) == 2
    assert "cookie" not in seen[1].headers
    assert seen[1].headers["authorization"] == "Bearer caller-b"


async def test_a_proxy_named_in_the_environment_is_used(
    stand_in: Upstream, proxied_settings: Settings
) -> None:
    """README: HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured (here the stand-in is the proxy)."""
    settings = proxied_settings
    async with make_http_client(settings) as http:
        result = await GrokClient(http, settings).complete(
            GrokRequest.of({"model": "grok-4", "messages": HELLO})
        )
    assert result["choices"][0]["message"]["content"] == "pong"
    assert stand_in.requests[0].path == "http://grok.invalid/ok/grok/chat/completions"
