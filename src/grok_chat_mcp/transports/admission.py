"""Which HTTP requests the server takes, for how long, and how it stops taking them.

:class:`Admission` is the outermost ASGI app of ``--transport http`` (docs/http.md#limits): request
slots counted from a complete body, body deadlines, an optional per-address cap, ``GET /ready``,
the refusal of ambiguous framing, and the drain on shutdown.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
from mcp.server import ServerRequestContext
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grok_chat_mcp.structure import MAX_MARKS, TOO_MANY_VALUES, too_many_values

logger = logging.getLogger(__name__)

READY_PATH = "/ready"
#: Seconds an idle connection is kept open: after a response, before its first request, from the
#: first byte of a request to the end of its head, and before and between the chunks of its body.
IDLE_TIMEOUT = 5
#: Requests served at once (from a complete body to the answer); more get HTTP 503.
DEFAULT_MAX_REQUESTS = 1024
#: Seconds a request body may take in all, from the end of its head.
BODY_TIMEOUT = 60
#: Seconds the requests in flight get to finish after SIGTERM (Kubernetes kills at 30 s by default).
SHUTDOWN_GRACE = 25
#: Seconds the requests still in flight after the grace get to receive the stopping answer.
STOP_WAIT = 5


@dataclass(frozen=True)
class Limits:
    """How many requests the server takes, and for how long (docs/http.md#limits)."""

    #: Requests served at once, from a complete body to the answer.
    max_requests: int = DEFAULT_MAX_REQUESTS
    #: Requests in flight (head to answer) from one client address; 0: no cap.
    per_address: int = 0
    #: Idle connections, request heads, and the wait for each chunk of a body.
    idle: int = IDLE_TIMEOUT
    #: A whole request body, from the end of its head.
    body: float = BODY_TIMEOUT
    #: After SIGTERM or SIGINT, for the requests in flight.
    grace: float = SHUTDOWN_GRACE


@dataclass(frozen=True)
class Refusal:
    """An answer the server gives instead of the app's."""

    status: int
    code: str
    message: str

    def body(self, request_id: str | int | None = None) -> bytes:
        error = {"code": -32001, "message": f"{self.code}: {self.message}"}
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode()


SLOW = Refusal(408, "request timeout", "The request body did not arrive in time; send the request again.")
BUSY = Refusal(503, "busy", "Too many requests in flight; try again shortly.")
STOPPING = Refusal(
    503, "stopping", "The server is shutting down and could not finish this request; send it again."
)
CROWDED = Refusal(
    429, "too many requests", "Too many requests in flight from your address; try again shortly."
)
AMBIGUOUS = Refusal(
    400, "bad request", "A request may not carry both Content-Length and Transfer-Encoding; send one of them."
)
TOO_COMPLEX = Refusal(
    413, "too many values", f"The message holds too much structure: {TOO_MANY_VALUES}; send a smaller call."
)
#: The key under which a request's :class:`Pending` sits in its ASGI scope.
PENDING_KEY = "grok_chat_mcp.pending"


class Admission:
    """ASGI front of the HTTP app (the guard is behind it): which requests are taken, for how long,
    and the shutdown drain.

    A request takes one of ``max_requests`` slots only once its body is complete, so an upload
    that trickles holds none; its body must arrive within the idle timeout of the head and of
    each chunk, and within ``body`` seconds in all (else 408). ``GET /ready`` answers 503 while
    the slots are full or the server is stopping; ``GET /health`` always passes through.
    """

    def __init__(self, app: ASGIApp, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limits = limits
        self.clock = clock  # for the shutdown grace
        self.serving = 0
        self.pending: set[Pending] = set()
        self.by_address: dict[str, int] = {}
        self.stopping = False
        self._emptied: anyio.Event | None = None  # made by the drain, set when nothing is in flight
        self._stop_by: float | None = None  # when the drain's grace ends, on ``clock``

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
        elif _unlimited(scope):
            await self.app(scope, receive, send)
        else:
            await self._serve(Pending(self, scope, receive, send), scope)

    def _refusal(self, scope: Scope) -> Response | None:
        framing = {name for name, _ in scope["headers"] if name in (b"content-length", b"transfer-encoding")}
        if len(framing) == 2:  # read differently by a proxy in front, this smuggles a request
            return _refuse(AMBIGUOUS, close=True)
        if scope["path"] == READY_PATH:
            return self._readiness()
        if _unlimited(scope):
            return None
        if self.stopping:
            return _refuse(STOPPING, close=True)
        if self.limits.per_address and self.by_address.get(_address(scope), 0) >= self.limits.per_address:
            return _refuse(CROWDED)
        if self.full:
            return _refuse(BUSY)
        return None

    def _readiness(self) -> Response:
        status = "stopping" if self.stopping else "busy" if self.full else "ok"
        body = {"status": status, "requests": self.serving, "max_requests": self.limits.max_requests}
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @property
    def full(self) -> bool:
        return self.serving >= self.limits.max_requests

    async def _serve(self, pending: Pending, scope: Scope) -> None:
        self.pending.add(pending)
        if self.limits.per_address:
            self.by_address[pending.address] = self.by_address.get(pending.address, 0) + 1
        try:
            await pending.run(self.app, scope)
        finally:
            del scope[PENDING_KEY]  # no reference cycle through uvicorn's request cycle
            self.pending.discard(pending)
            if self._emptied is not None and not self.pending:
                self._emptied.set()
            if pending.has_slot:
                self.serving -= 1
            if self.limits.per_address:
                left = self.by_address.pop(pending.address) - 1
                if left:
                    self.by_address[pending.address] = left

    def take_slot(self) -> bool:
        if self.full:
            return False
        self.serving += 1
        return True

    def stop_all(self) -> None:
        """Answer every request in flight that the server is stopping; running calls are not
        waited for any longer either (:meth:`time_left`)."""
        self._stop_by = self.clock()
        for pending in list(self.pending):
            pending.stop(STOPPING)

    def time_left(self) -> float:
        """Seconds left of the drain's grace (0 before a drain): how long the calls still running
        when the server stops may take to finish and store their answers."""
        return 0.0 if self._stop_by is None else max(0.0, self._stop_by - self.clock())

    async def drain(self) -> None:
        """Refuse new requests, give those in flight the grace period, then answer them. Calls
        that already answered ``running`` have the rest of the grace (:meth:`time_left`)."""
        self.stopping = True
        self._stop_by = self.clock() + self.limits.grace
        logger.info("stopping: %d requests in flight, %g s to finish", len(self.pending), self.limits.grace)
        self._emptied = anyio.Event()
        if not self.pending:
            self._emptied.set()
        with anyio.move_on_after(self.limits.grace):
            await self._emptied.wait()
        if self.pending:
            logger.warning("stopping: the grace is over; telling %d callers in flight", len(self.pending))
            self.stop_all()
            with anyio.move_on_after(STOP_WAIT):
                await self._emptied.wait()


def _refuse(refusal: Refusal, *, close: bool = False, request_id: str | int | None = None) -> Response:
    headers = {"Retry-After": "1"} if refusal.status in (429, 503) else {}
    if close:  # the rest of the request (its body, its framing) is not read
        headers["Connection"] = "close"
    return Response(refusal.body(request_id), refusal.status, headers, media_type="application/json")


def _unlimited(scope: Scope) -> bool:
    """Liveness checks and CORS preflights: never counted, nor refused for load or shutdown."""
    return bool(scope["path"] == "/health" or scope["method"] == "OPTIONS")


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


class Pending:
    """One request through :class:`Admission`: its body deadlines, its slot, what it was sent, and
    the answer it gets when the server refuses to finish it."""

    __slots__ = (
        "_receive", "_send", "address", "admission", "body_done", "cancel", "chunks", "complete",
        "deadline", "has_slot", "marks", "refusal", "request_id", "started", "streaming",
    )  # fmt: skip

    def __init__(self, admission: Admission, scope: Scope, receive: Receive, send: Send) -> None:
        self.admission = admission
        self.address = _address(scope)
        self._receive, self._send = receive, send
        self.cancel = anyio.CancelScope()  # the request's one scope; it also times the body's chunks
        self.deadline = math.inf  # the whole body's, from the first read
        self.refusal: Refusal | None = None
        self.request_id: str | int | None = None
        self.body_done = self.has_slot = False
        self.started = self.streaming = self.complete = False
        self.chunks: list[bytes] = []  # the body so far (the app keeps the same objects)
        self.marks = 0  # brackets and commas in it, strings included
        scope[PENDING_KEY] = self  # for note_request_id

    @staticmethod
    def note_request_id(ctx: ServerRequestContext[Any, Any]) -> None:
        """Remember the JSON-RPC id of a call on its request, for the answer if the server stops."""
        scope = getattr(ctx.request, "scope", None)
        pending = scope.get(PENDING_KEY) if isinstance(scope, dict) else None
        if isinstance(pending, Pending):
            pending.request_id = ctx.request_id

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        with self.cancel:
            await app(scope, self.receive, self.send)
        if self.refusal is None and self.cancel.cancel_called:  # the body's deadline passed
            self.refusal = SLOW
            logger.info("refused a request from %s: %s", self.address, SLOW.code)
        if self.refusal is not None:
            await self._answer(self.refusal, scope)

    def stop(self, refusal: Refusal) -> None:
        """End the request: the app is cancelled, and the refusal is its answer."""
        if self.refusal is None:
            self.refusal = refusal
        self.cancel.cancel()

    async def receive(self) -> Message:
        if self.body_done:
            return await self._receive()
        # The wait for this chunk is timed by the request's own scope: past the deadline, the
        # app is cancelled in this wait and :meth:`run` answers 408.
        now = anyio.current_time()
        if self.deadline == math.inf:
            self.deadline = now + self.admission.limits.body
        self.cancel.deadline = min(now + self.admission.limits.idle, self.deadline)
        message = await self._receive()
        self.cancel.deadline = math.inf
        if self.cancel.cancel_called:  # the deadline passed as the chunk arrived
            await anyio.lowlevel.checkpoint()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            self.chunks.append(chunk)
            self.marks += chunk.count(b",") + chunk.count(b"[") + chunk.count(b"{")
            if message.get("more_body", False):
                return message
        self.body_done = True
        chunks, self.chunks = self.chunks, []
        if self.marks > MAX_MARKS and too_many_values(b"".join(chunks)):  # before the SDK parses it
            return await self._refused(TOO_COMPLEX)
        if message["type"] == "http.request":
            if not self.admission.take_slot():
                return await self._refused(BUSY)
            self.has_slot = True
        return message

    async def _refused(self, refusal: Refusal) -> Message:
        logger.info("refused a request from %s: %s", self.address, refusal.code)
        self.stop(refusal)
        await anyio.lowlevel.checkpoint()  # the cancellation lands here
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.cancel.cancel_called:  # refused or stopped: the refusal is the answer
            return
        if message["type"] == "http.response.start":
            if self.admission.stopping:
                message = {**message, "headers": _closing(message.get("headers", ()))}
            await self._send(message)
            self.started = True
            self.streaming = any(
                name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                for name, value in message.get("headers", ())
            )
            return
        await self._send(message)
        if not message.get("more_body", False):
            self.complete = True

    async def _answer(self, refusal: Refusal, scope: Scope) -> None:
        """The refusal as the answer: a response of its own, or the last event of a started stream."""
        if self.complete:
            return
        if not self.started:
            answer = _refuse(refusal, close=True, request_id=self.request_id)
            await answer(scope, self._receive, self._send)
        elif self.streaming:
            event = b"event: message\r\ndata: " + refusal.body(self.request_id) + b"\r\n\r\n"
            await self._send({"type": "http.response.body", "body": event, "more_body": False})
        # A JSON answer cut short cannot be mended; uvicorn closes its connection.


def _closing(headers: Any) -> list[tuple[bytes, bytes]]:
    """Response headers with ``Connection: close`` (while the server stops)."""
    kept = [(name, value) for name, value in headers if name.lower() != b"connection"]
    return [*kept, (b"connection", b"close")]
