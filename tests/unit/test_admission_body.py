"""The body deadlines of :class:`Admission`, timed by the request's own cancel scope: a body that
does not arrive gets 408 and nothing of the app's; once the body is complete, the app has all the
time it needs."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from grok_chat_mcp.transports.admission import Admission, Limits

pytestmark = pytest.mark.anyio

BODY = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}'
#: A short body deadline (seconds): the tests wait it out once at most. (The idle timeout is whole
#: seconds; the slow tests in test_hostile_http.py time it.)
SHORT = 0.05


def scope() -> Scope:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers, "client": ("127.0.0.1", 1)}


async def echo_after(pause: float, scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, waits ``pause`` seconds, then answers with the body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await anyio.sleep(pause)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


async def serve(app: Any, messages: list[Message], limits: Limits) -> list[Message]:
    """One request through :class:`Admission`: ``messages`` then silence; what went to the client."""
    sent: list[Message] = []
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    front = Admission(app, limits)
    with anyio.fail_after(5):
        await front(scope(), receive, send)
    assert front.serving == 0 and not front.pending  # the slot is given back
    return sent


async def test_a_body_that_stops_arriving_gets_408_and_nothing_of_the_app() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await echo_after(0, scope, receive, send)
        finally:  # an app that answers as it is cancelled: muted
            await send({"type": "http.response.start", "status": 500, "headers": []})

    half = {"type": "http.request", "body": BODY[:10], "more_body": True}
    sent = await serve(app, [half], Limits(body=SHORT))
    assert [message.get("status") for message in sent if message["type"] == "http.response.start"] == [408]
    assert b'"request timeout' in b"".join(message.get("body", b"") for message in sent)


async def test_a_body_past_its_total_deadline_gets_408_though_each_chunk_was_in_time() -> None:
    chunks: list[Message] = [
        {"type": "http.request", "body": BODY[i : i + 1], "more_body": True} for i in range(len(BODY))
    ]

    async def trickle(scope: Scope, receive: Receive, send: Send) -> None:
        async def slow() -> Message:
            await anyio.sleep(SHORT / 5)
            return await receive()

        await echo_after(0, scope, slow, send)

    sent = await serve(trickle, chunks, Limits(body=SHORT))
    assert sent[0]["status"] == 408


async def test_once_the_body_is_complete_the_app_is_not_timed() -> None:
    messages: list[Message] = [{"type": "http.request", "body": BODY, "more_body": False}]
    sent = await serve(lambda *args: echo_after(SHORT * 4, *args), messages, Limits(body=SHORT))
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200 and sent[1]["body"] == BODY
