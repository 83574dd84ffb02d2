"""The async AceDataCloud Grok client: one pooled connection pool, safe retries, error mapping, SSE."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from grok_chat_mcp import __version__
from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError, excerpt, from_response, missing_token, redact
from grok_chat_mcp.stream import DONE, SSEDecoder, StreamAssembler

logger = logging.getLogger(__name__)

#: Nothing was generated for these, so a retry cannot bill twice.
RETRY_STATUSES = frozenset({429, 500, 502, 503})
RETRY_AFTER_CAP = 30.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: Connection limits: plenty for an agent's parallel calls, bounded against runaway loops.
LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=60)

OnText = Callable[[str], Awaitable[None]]


def make_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The process-wide pooled client."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        limits=LIMITS,
        headers={"User-Agent": f"grok-chat-mcp/{__version__}"},
        transport=transport,
        trust_env=True,
    )


class GrokClient:
    """Sends chat-completion requests to ``POST {base}/grok/chat/completions``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._http = http
        self._settings = settings
        self._sleep = sleep

    async def complete(
        self, payload: dict[str, Any], token: str | None = None, on_text: OnText | None = None
    ) -> dict[str, Any]:
        """Run one completion (streamed if ``payload["stream"]``); return the ``chat.completion``.

        ``token`` overrides the configured one. Raises :class:`GrokError`.
        """
        token = token or self._settings.api_token
        if not token:
            raise missing_token()
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if payload.get("stream") else "application/json",
        }
        request = self._http.build_request("POST", self._settings.endpoint, content=body, headers=headers)
        started = time.perf_counter()
        try:
            result = await self._send_with_retries(request, token, on_text)
        except GrokError as exc:
            logger.warning("grok call failed after %.2fs: %s", time.perf_counter() - started, exc.category)
            raise
        logger.info("grok call ok in %.2fs (model %s)", time.perf_counter() - started, result.get("model"))
        return result

    async def _send_with_retries(
        self, request: httpx.Request, token: str, on_text: OnText | None
    ) -> dict[str, Any]:
        retries = self._settings.max_retries
        for attempt in range(1, retries + 2):
            try:
                response = await self._http.send(request, stream=True)
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
                return await self._read(response, token, attempt, on_text)
            finally:
                await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _backoff(self, attempt: int, retry_after: str | None, reason: str) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
        logger.info("retrying after %s in %.2fs (attempt %d)", reason, delay, attempt + 1)
        await self._sleep(delay)

    async def _read(
        self, response: httpx.Response, token: str, attempt: int, on_text: OnText | None
    ) -> dict[str, Any]:
        try:
            if response.status_code >= 400:
                raise from_response(response.status_code, await response.aread(), attempt, token)
            if "text/event-stream" in response.headers.get("content-type", ""):
                return await self._read_stream(response, token, attempt, on_text)
            return _completion(await response.aread(), response.status_code, attempt, token)
        except httpx.TimeoutException:
            raise self._timeout_error(attempt) from None
        except httpx.HTTPError as exc:
            raise self._network_error(exc, attempt) from None

    async def _read_stream(
        self, response: httpx.Response, token: str, attempt: int, on_text: OnText | None
    ) -> dict[str, Any]:
        decoder, assembler = SSEDecoder(), StreamAssembler()
        try:
            async for line in response.aiter_lines():
                data = decoder.feed(line)
                if data is None:
                    continue
                text = _take_event(data, assembler, token, attempt)
                if text is None:
                    return assembler.result()
                if text and on_text is not None:
                    await on_text(text)
        except httpx.TimeoutException:
            raise _truncated(assembler, "no data arrived within the read timeout", attempt) from None
        except httpx.HTTPError as exc:
            raise _truncated(assembler, f"the connection broke ({type(exc).__name__})", attempt) from None
        data = decoder.flush()
        if data is not None and _take_event(data, assembler, token, attempt) is None:
            return assembler.result()
        raise _truncated(assembler, "the stream ended without data: [DONE]", attempt)

    def _timeout_error(self, attempt: int) -> GrokError:
        return GrokError(
            "Timeout",
            f"no answer from upstream within {self._settings.timeout:g}s (GROK_REQUEST_TIMEOUT).",
            "The generation may still have been billed, so it was not retried. Raise GROK_REQUEST_TIMEOUT, "
            "lower max_tokens, or use stream: true for long answers.",
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
            f"{where}: {reason}.",
            "Check the network connection, proxy settings and ACEDATACLOUD_API_BASE_URL.",
            attempts=attempt,
        )


def _completion(body: bytes, status: int, attempt: int, token: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise GrokError(
            "Unexpected response",
            "upstream answered with a body that is not a JSON object: "
            + excerpt(redact(body.decode("utf-8", "replace"), token)),
            "This usually comes from a proxy in front of the API; check ACEDATACLOUD_API_BASE_URL.",
            status=status,
            attempts=attempt,
        )
    if "error" in data and "choices" not in data:
        error = from_response(status, body, attempt, token)
        error.category = "Upstream error"
        raise error
    return data


def _take_event(data: str, assembler: StreamAssembler, token: str, attempt: int) -> str | None:
    """Merge one event; return its new text, or None for ``[DONE]``."""
    if data.strip() == DONE:
        return None
    try:
        chunk = json.loads(data)
    except ValueError:
        raise GrokError(
            "Upstream error",
            "the event stream carried a non-JSON event: " + excerpt(redact(data, token)),
            "Try again, or call without stream.",
            status=200,
            attempts=attempt,
        ) from None
    if not isinstance(chunk, dict):
        return ""
    if "error" in chunk and "choices" not in chunk:
        error = from_response(500, data.encode(), attempt, token)
        error.category, error.status = "Upstream error (in the stream)", None
        raise error
    return assembler.add(chunk)


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
        except (TypeError, ValueError):
            return None
    return max(0.0, min(RETRY_AFTER_CAP, seconds))
