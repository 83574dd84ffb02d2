"""The async AceDataCloud Grok client: one pooled connection pool, safe retries, error mapping, SSE.

Everything upstream sends is bounded: the decoded body, each event-stream line, the assembled
completion, the error body that is read, and the whole call (``GROK_CALL_TIMEOUT``).
"""

from __future__ import annotations

import codecs
import json
import logging
import math
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
import pydantic_core

from grok_chat_mcp import __version__
from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import MAX_ERROR_BODY, GrokError, excerpt, from_response, missing_token, redact
from grok_chat_mcp.stream import DONE, LineSplitter, LineTooLong, SSEDecoder, StreamAssembler

logger = logging.getLogger(__name__)

#: Nothing was generated for these, so a retry cannot bill twice.
RETRY_STATUSES = frozenset({429, 500, 502, 503})
RETRY_AFTER_CAP = 30.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: Connection limits: plenty for an agent's parallel calls, bounded against runaway loops.
LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=60)
#: The largest (decoded) non-streamed response body accepted.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: The longest event-stream line accepted (one chunk; a whole tool call can arrive in one).
MAX_LINE_CHARS = 4 * 1024 * 1024
#: The most characters a streamed completion may assemble (text, reasoning, tool arguments).
MAX_ASSEMBLED_CHARS = 16 * 1024 * 1024
#: Deepest JSON nesting accepted from upstream (a completion is a few levels deep).
MAX_UPSTREAM_DEPTH = 64
_STEP = 64 * 1024

OnText = Callable[[str], Awaitable[None]]
Secrets = tuple[str | None, ...]


class _Unreadable(Exception):
    """The body cannot be read within its bounds (too large, bad encoding)."""


Send = Callable[[httpx.Request], Awaitable[httpx.Response]]
#: httpx's (private) lookup of the transport a client uses for a URL; see :func:`direct_sender`.
TRANSPORT_LOOKUP = "_transport_for_url"


def make_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The process-wide pooled client."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        limits=LIMITS,
        headers={"User-Agent": f"grok-chat-mcp/{__version__}", "Accept-Encoding": "gzip"},
        transport=transport,
        trust_env=True,
    )


def direct_sender(client: httpx.AsyncClient, url: httpx.URL) -> Send:
    """How requests to ``url`` are sent: straight to the transport the client picks for it (its
    pool, or the proxy the environment names), skipping the per-request layers of ``send()`` that
    this client does not use: auth flow, redirect loop, event hooks, cookie extraction (7 % of a
    call's instructions). The URL is fixed, so the pick is made once. If httpx no longer has the
    (private) lookup, requests go through ``client.send()``, which behaves the same here.
    """
    pick = getattr(client, TRANSPORT_LOOKUP, None)
    transport = pick(url) if callable(pick) else None
    if not isinstance(transport, httpx.AsyncBaseTransport):
        logger.debug("httpx has no transport lookup; sending through the client")
        return lambda request: client.send(request, stream=True)

    async def send(request: httpx.Request) -> httpx.Response:
        response = await transport.handle_async_request(request)
        response.request = request
        return response

    return send


class GrokClient:
    """Sends chat-completion requests to ``POST {base}/grok/chat/completions``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        # Built once: the client's own build_request re-merges URL, headers and cookies per call
        # (so no cookie an upstream sets is ever sent back, whichever way requests are sent).
        self._url = httpx.URL(settings.endpoint)
        self._send = direct_sender(http, self._url)
        self._headers = {key.lower(): value for key, value in http.headers.items()}
        self._extensions = {"timeout": http.timeout.as_dict()}

    @property
    def api_token(self) -> str | None:
        """The configured token (a call may bring its own)."""
        return self._settings.api_token

    async def complete(
        self, payload: dict[str, Any], token: str | None = None, on_text: OnText | None = None
    ) -> dict[str, Any]:
        """Run one completion (streamed if ``payload["stream"]``); return the ``chat.completion``.

        ``token`` overrides the configured one. Raises :class:`GrokError`.
        """
        token = token or self._settings.api_token
        if not token:
            raise missing_token()
        body = pydantic_core.to_json(payload, inf_nan_mode="null")  # compact UTF-8, no NaN (refused earlier)
        headers = {
            **self._headers,
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "accept": "text/event-stream" if payload.get("stream") else "application/json",
        }
        request = httpx.Request("POST", self._url, content=body, headers=headers, extensions=self._extensions)
        call = _Call(request, (token, self._settings.api_token), str(payload.get("model", "")), on_text)
        started = time.perf_counter()
        result: dict[str, Any] | None = None
        try:
            with anyio.move_on_after(self._settings.call_timeout):
                result = await self._send_with_retries(call)
            if result is None:
                raise self._deadline_error(call.attempt)
        except GrokError as exc:
            logger.warning("grok call failed after %.2fs: %s", time.perf_counter() - started, exc.category)
            raise
        logger.info("grok call ok in %.2fs (model %s)", time.perf_counter() - started, result.get("model"))
        return result

    async def _send_with_retries(self, call: _Call) -> dict[str, Any]:
        retries = self._settings.max_retries
        for attempt in range(1, retries + 2):
            call.attempt = attempt
            try:
                response = await self._send(call.request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if attempt <= retries:
                    await self._backoff(attempt, None, f"connection failure ({type(exc).__name__})")
                    continue
                raise self._network_error(exc, attempt) from None
            except httpx.TimeoutException:
                raise self._timeout_error(attempt) from None
            except httpx.HTTPError as exc:
                raise self._network_error(exc, attempt) from None
            try:
                if response.status_code in RETRY_STATUSES and attempt <= retries:
                    await response.aclose()
                    await self._backoff(
                        attempt, response.headers.get("retry-after"), f"HTTP {response.status_code}"
                    )
                    continue
                return await self._read(response, call)
            finally:
                if not response.is_closed:
                    await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _backoff(self, attempt: int, retry_after: str | None, reason: str) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
        logger.info("retrying after %s in %.2fs (attempt %d)", reason, delay, attempt + 1)
        await self._sleep(delay)

    async def _read(self, response: httpx.Response, call: _Call) -> dict[str, Any]:
        status = response.status_code
        try:
            if status >= 400:
                body = await _read_body(response, MAX_ERROR_BODY, truncate=True)
                raise from_response(status, body, call.attempt, call.secrets, call.model)
            if "text/event-stream" in response.headers.get("content-type", ""):
                return await self._read_stream(response, call)
            body = await _read_body(response, MAX_RESPONSE_BYTES)
            return _completion(body, status, call)
        except _Unreadable as exc:
            raise GrokError(
                "Unexpected response",
                f"{exc}.",
                "This usually comes from a proxy in front of the API; check ACEDATACLOUD_API_BASE_URL.",
                status=status,
                attempts=call.attempt,
            ) from None
        except httpx.TimeoutException:
            raise self._timeout_error(call.attempt) from None
        except httpx.HTTPError as exc:
            raise self._network_error(exc, call.attempt) from None

    async def _read_stream(self, response: httpx.Response, call: _Call) -> dict[str, Any]:
        decoder, assembler = SSEDecoder(), StreamAssembler()
        try:
            async for line in _lines(response):
                data = decoder.feed(line)
                if data is None:
                    continue
                text = _take_event(data, decoder.event, assembler, call)
                if text is None:
                    return assembler.result()
                if assembler.size > MAX_ASSEMBLED_CHARS:
                    raise _too_large(f"the streamed answer passed {MAX_ASSEMBLED_CHARS:,} characters", call)
                if text and call.on_text is not None:
                    await call.on_text(text)
        except LineTooLong as exc:
            raise _too_large(str(exc), call) from None
        except httpx.TimeoutException:
            raise _truncated(assembler, "no data arrived within the read timeout", call.attempt) from None
        except httpx.HTTPError as exc:
            raise _truncated(
                assembler, f"the connection broke ({type(exc).__name__})", call.attempt
            ) from None
        data = decoder.flush()
        if data is not None and _take_event(data, decoder.event, assembler, call) is None:
            return assembler.result()
        raise _truncated(assembler, "the stream ended without data: [DONE]", call.attempt)

    def _timeout_error(self, attempt: int) -> GrokError:
        return GrokError(
            "Timeout",
            f"no answer from upstream within {self._settings.timeout:g}s (GROK_REQUEST_TIMEOUT).",
            "The generation may still have been billed, so it was not retried. Raise GROK_REQUEST_TIMEOUT, "
            "lower max_tokens, or use stream: true for long answers.",
            attempts=attempt,
        )

    def _deadline_error(self, attempt: int) -> GrokError:
        return GrokError(
            "Timeout",
            f"the call did not finish within {self._settings.call_timeout:g}s (GROK_CALL_TIMEOUT), "
            "counting every attempt and wait; the upstream request was aborted.",
            "The generation may still have been billed. Raise GROK_CALL_TIMEOUT, lower max_tokens, or ask "
            "for less.",
            attempts=attempt,
        )

    def _network_error(self, exc: httpx.HTTPError, attempt: int) -> GrokError:
        host = httpx.URL(self._settings.base_url).host
        reason = str(exc) or type(exc).__name__
        where = (
            f"could not reach {host}"
            if isinstance(exc, httpx.ConnectError)
            else f"connection to {host} failed"
        )
        return GrokError(
            "Network error",
            f"{where}: {reason[:300]}.",
            "Check the network connection, proxy settings and ACEDATACLOUD_API_BASE_URL.",
            attempts=attempt,
        )


class _Call:
    """One call's request and what its error messages need."""

    __slots__ = ("attempt", "model", "on_text", "request", "secrets")

    def __init__(self, request: httpx.Request, secrets: Secrets, model: str, on_text: OnText | None) -> None:
        self.request = request
        self.secrets = secrets
        self.model = model
        self.on_text = on_text
        self.attempt = 1


async def _decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body, decompressed at most :data:`_STEP` bytes at a time (a gzip bomb cannot balloon)."""
    if response.is_stream_consumed:  # read already (a mock transport): httpx has decoded it
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise _Unreadable("the response is larger than any completion needs")
        yield response.content
        return
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        async for raw in response.aiter_raw():
            yield raw
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise _Unreadable(f"upstream sent an unsupported Content-Encoding: {encoding[:40]!r}")
    inflater = zlib.decompressobj(47)  # gzip or zlib header, detected
    async for raw in response.aiter_raw():
        data = raw
        while data:
            try:
                out = inflater.decompress(data, _STEP)
            except zlib.error:
                raise _Unreadable("upstream sent a corrupt compressed body") from None
            if out:
                yield out
            data = inflater.unconsumed_tail


async def _read_body(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """Up to ``limit`` decoded bytes; more is an error, or cut off where ``truncate``."""
    pieces: list[bytes] = []
    size = 0
    async for piece in _decoded(response):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            if truncate:
                break
            raise _Unreadable(f"the response passed {limit // 2**20} MiB, more than any completion needs")
    return b"".join(pieces)[:limit]


async def _lines(response: httpx.Response) -> AsyncIterator[str]:
    """The event stream's lines, decoded as UTF-8, each at most :data:`MAX_LINE_CHARS`."""
    splitter = LineSplitter(MAX_LINE_CHARS)
    text = codecs.getincrementaldecoder("utf-8")("replace")
    async for piece in _decoded(response):
        for line in splitter.feed(text.decode(piece)):
            yield line
    for line in splitter.feed(text.decode(b"", final=True)) + splitter.flush():
        yield line


def _loads(text: str | bytes) -> Any:
    """JSON from upstream: NaN and Infinity become null (so both result forms agree), depth bounded."""
    data = json.loads(text, parse_constant=lambda _: None)
    if _too_deep(data):
        raise ValueError("nested too deep")
    return data


def _too_deep(value: Any) -> bool:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_UPSTREAM_DEPTH:
            return True
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values() if isinstance(item, dict | list))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node if isinstance(item, dict | list))
    return False


def _completion(body: bytes, status: int, call: _Call) -> dict[str, Any]:
    try:
        data = _loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise GrokError(
            "Unexpected response",
            "upstream answered with a body that is not a JSON object: "
            + excerpt(redact(body[:8192].decode("utf-8", "replace"), call.secrets)),
            "This usually comes from a proxy in front of the API; check ACEDATACLOUD_API_BASE_URL.",
            status=status,
            attempts=call.attempt,
        )
    if "error" in data and "choices" not in data:
        error = from_response(status, body, call.attempt, call.secrets, call.model)
        error.category = "Upstream error"
        raise error
    return data


def _take_event(data: str, event: str, assembler: StreamAssembler, call: _Call) -> str | None:
    """Merge one event; return its new text, or None for ``[DONE]``."""
    if data.strip() == DONE:
        return None
    if event == "error":
        raise _stream_error(data, call)
    try:
        chunk = _loads(data)
    except (ValueError, RecursionError):
        raise GrokError(
            "Upstream error",
            "the event stream carried a non-JSON event: " + excerpt(redact(data[:8192], call.secrets)),
            "Try again, or call without stream.",
            status=200,
            attempts=call.attempt,
        ) from None
    if not isinstance(chunk, dict):
        return ""
    if "error" in chunk and "choices" not in chunk:
        raise _stream_error(data, call)
    return assembler.add(chunk)


def _stream_error(data: str, call: _Call) -> GrokError:
    body = data[:MAX_ERROR_BODY].encode()
    error = from_response(500, body, call.attempt, call.secrets, call.model)
    if error.detail.startswith("non-JSON body: "):  # event: error with a plain-text message
        error.detail = excerpt(redact(data[:8192], call.secrets))
    error.category, error.status = "Upstream error (in the stream)", None
    return error


def _too_large(why: str, call: _Call) -> GrokError:
    return GrokError(
        "Response too large",
        f"{why}; the call was stopped.",
        "Ask for less (max_tokens), or check ACEDATACLOUD_API_BASE_URL if this is not the real API.",
        attempts=call.attempt,
    )


def _truncated(assembler: StreamAssembler, why: str, attempt: int) -> GrokError:
    return GrokError(
        "Stream interrupted",
        f"{why}; {assembler.chars} characters had arrived in {assembler.chunks} chunks. "
        "The partial answer was discarded.",
        "Call again; the generation may have been billed.",
        attempts=attempt,
    )


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, min(RETRY_AFTER_CAP, seconds))
