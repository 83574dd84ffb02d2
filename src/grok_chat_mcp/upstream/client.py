"""The AceDataCloud Grok client: one pooled httpx client, safe retries, bounded reading, errors.

Everything upstream sends is bounded: the decoded body, each event-stream line, the assembled
completion, the error body that is read, and the whole call (``GROK_CALL_TIMEOUT``).
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar
from typing import Any

import anyio
import httpx
import pydantic_core

from grok_chat_mcp import __version__
from grok_chat_mcp.config import TOKEN_VAR, Settings
from grok_chat_mcp.errors import GrokError, missing_token
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.request import GrokRequest
from grok_chat_mcp.upstream.assembly import MAX_ASSEMBLED_CHARS, Assembly, BadEvent, UpstreamEvent
from grok_chat_mcp.upstream.body import MAX_RESPONSE_BYTES, Unreadable, decoded, read_body
from grok_chat_mcp.upstream.error_bodies import MAX_ERROR_BODY, excerpt, from_response
from grok_chat_mcp.upstream.json_values import loads, repaired, too_deep
from grok_chat_mcp.upstream.sse import EventStream, StreamError

logger = logging.getLogger(__name__)

#: Nothing was generated for these, so a retry cannot bill twice.
RETRY_STATUSES = frozenset({429, 500, 502, 503})
RETRY_AFTER_CAP = 30.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: Upstream connections: one per call in flight (a streamed call holds its connection for minutes).
LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=64, keepalive_expiry=60)

OnText = Callable[[str], Awaitable[None]]

#: The request bodies all calls in flight may hold together (process-wide). A call that would pass
#: it fails at once, before anything is sent.
MAX_BYTES_IN_FLIGHT = 256 * 1024 * 1024


class _InFlightBytes:
    """The bytes of request bodies held by calls in flight (one event loop: no lock needed)."""

    held = 0

    @classmethod
    @contextmanager
    def reserve(cls, size: int) -> Iterator[None]:
        limit = MAX_BYTES_IN_FLIGHT
        if cls.held + size > limit:
            raise GrokError(
                "Server busy",
                f"calls in flight already hold {_mib(cls.held)} of request bodies and this one needs "
                f"{_mib(size)}; the server holds at most {_mib(limit)} at once, so it was not sent.",
                "Try again in a moment (other calls are finishing), or send smaller or fewer images "
                "per call.",
            )
        cls.held += size
        try:
            yield
        finally:
            cls.held -= size


def bytes_in_flight() -> int:
    """The request-body bytes held by calls in flight now."""
    return _InFlightBytes.held


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


class NoCookies(CookieJar):
    """A cookie jar that keeps nothing: no cookie an upstream sets is ever sent back (callers with
    their own tokens share the client), and responses are not parsed for cookies at all."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def add_cookie_header(self, request: Any) -> None:
        return None


def make_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The process-wide pooled client, on httpx's own transport (proxies and ``NO_PROXY`` from the
    environment, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` too). Settings it cannot use (a SOCKS proxy
    without the ``socksio`` package, a malformed or unsupported proxy URL, a certificate file that
    cannot be read) do not raise here: every call then fails with one line that says what to fix."""
    options: dict[str, Any] = {
        "timeout": httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        "limits": LIMITS,
        "headers": {"User-Agent": f"grok-chat-mcp/{__version__}", "Accept-Encoding": "gzip"},
        "cookies": NoCookies(),
    }
    try:
        return httpx.AsyncClient(transport=transport, trust_env=True, **options)
    except (ImportError, ValueError, TypeError, OSError, httpx.InvalidURL) as exc:
        problem = _setting_problem(exc)
        logger.error("%s", problem)
        return httpx.AsyncClient(transport=_Refusing(problem), trust_env=False, **options)


_USERINFO = re.compile(r"//[^/@\s]*@")


def _setting_problem(exc: Exception) -> str:
    if isinstance(exc, ImportError) and "socks" in str(exc).lower():
        return (
            "a SOCKS proxy is set (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) but the socksio package is not "
            "installed: install it next to grok-chat-mcp (pip install 'httpx[socks]') or unset the variable"
        )
    reason = _USERINFO.sub("//***@", " ".join(str(exc).split()))[:200] or type(exc).__name__
    if isinstance(exc, OSError):
        return (
            f"the trusted certificates cannot be loaded ({reason}): fix or unset SSL_CERT_FILE and "
            "SSL_CERT_DIR (a PEM file of CA certificates, or a directory of them)"
        )
    return (
        f"the proxy settings cannot be used ({reason}): fix or unset HTTPS_PROXY, HTTP_PROXY and "
        "ALL_PROXY (a proxy URL looks like http://host:port)"
    )


class _Refusing(httpx.AsyncBaseTransport):
    """A transport that sends nothing: the configuration cannot work, and says why."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.TransportError(self.problem, request=request)


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
        self._url = httpx.URL(settings.endpoint)

    @property
    def api_token(self) -> str | None:
        """The configured token (a call may bring its own)."""
        return self._settings.api_token

    async def complete(
        self, request: GrokRequest, token: str | None = None, on_text: OnText | None = None
    ) -> dict[str, Any]:
        """Run one completion (streamed if ``request.stream``); return the ``chat.completion``.

        ``token`` overrides the configured one; ``on_text`` receives streamed text as it arrives.
        Raises :class:`GrokError`.
        """
        if self._settings.problem:
            raise GrokError(
                "Configuration error",
                f"{self._settings.problem}.",
                "Set it in the MCP client's env block for this server, then restart the server.",
            )
        token = token or self._settings.api_token
        if not token:
            raise missing_token()
        if not token.isascii() or not token.isprintable():
            raise GrokError(
                "Configuration error",
                "the API token contains characters an HTTP header cannot carry (only printable ASCII "
                "can), so it was not sent.",
                f"Copy the token again into {TOKEN_VAR} (or the Authorization header), without quotes, "
                "spaces or other characters around it.",
            )
        body = pydantic_core.to_json(dict(request.payload), inf_nan_mode="null")
        headers = {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "accept": "text/event-stream" if request.stream else "application/json",
        }
        call = _Call(
            self._http.build_request("POST", self._url, content=body, headers=headers),
            Secrets((token, self._settings.api_token)),
            request.model,
            on_text,
        )
        started = time.perf_counter()
        result: dict[str, Any] | None = None
        try:
            with _InFlightBytes.reserve(len(body)), anyio.move_on_after(self._settings.call_timeout):
                result = await self._send_with_retries(call)
            if result is None:
                raise self._deadline_error(call.attempt)
        except GrokError as exc:
            logger.warning("grok call failed after %.2f s: %s", time.perf_counter() - started, exc.category)
            raise
        logger.info("grok call ok in %.2f s (model %s)", time.perf_counter() - started, result.get("model"))
        return result

    async def _send_with_retries(self, call: _Call) -> dict[str, Any]:
        retries = self._settings.max_retries
        for attempt in range(1, retries + 2):
            call.attempt = attempt
            try:
                response = await self._http.send(call.request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if attempt <= retries:
                    await self._backoff(attempt, None, f"connection failure ({type(exc).__name__})")
                    continue
                raise self._network_error(exc, attempt) from None
            except httpx.TimeoutException:
                raise self._timeout_error(attempt) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
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
                await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _backoff(self, attempt: int, retry_after: str | None, reason: str) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
        logger.info("retrying after %s in %.2f s (attempt %d)", reason, delay, attempt + 1)
        await self._sleep(delay)

    async def _read(self, response: httpx.Response, call: _Call) -> dict[str, Any]:
        status = response.status_code
        try:
            if status >= 400:
                body = await read_body(response, MAX_ERROR_BODY, truncate=True)
                raise from_response(status, body, call.attempt, call.secrets, call.model)
            if "text/event-stream" in response.headers.get("content-type", ""):
                return await self._read_stream(response, call)
            body = await read_body(response, MAX_RESPONSE_BYTES)
            return _completion(body, status, call)
        except Unreadable as exc:
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
        events = EventStream()
        assembly = Assembly(max_assembled_chars=MAX_ASSEMBLED_CHARS)
        try:
            async for piece in decoded(response):
                await _relay(assembly.take(events.feed(piece)), call)
                if assembly.done:
                    return assembly.result()
            await _relay(assembly.take(events.close()), call)
            if assembly.done:
                return assembly.result()
        except StreamError as exc:
            raise _stream_failure(exc, call) from None
        except httpx.TimeoutException:
            raise _truncated(assembly, "no data arrived within the read timeout", call.attempt) from None
        except httpx.HTTPError as exc:
            raise _truncated(assembly, f"the connection broke ({type(exc).__name__})", call.attempt) from None
        raise _truncated(assembly, "the stream ended without data: [DONE]", call.attempt)

    def _timeout_error(self, attempt: int) -> GrokError:
        return GrokError(
            "Timeout",
            f"no answer from upstream within {self._settings.timeout:g}s (GROK_REQUEST_TIMEOUT).",
            "The generation may still have been billed, so it was not retried. Raise GROK_REQUEST_TIMEOUT, "
            "lower max_completion_tokens, or use stream: true for long answers.",
            attempts=attempt,
        )

    def _deadline_error(self, attempt: int) -> GrokError:
        return GrokError(
            "Timeout",
            f"the call did not finish within {self._settings.call_timeout:g}s (GROK_CALL_TIMEOUT), "
            "counting every attempt and wait; the upstream request was aborted.",
            "The generation may still have been billed. Raise GROK_CALL_TIMEOUT, lower "
            "max_completion_tokens, or ask for less.",
            attempts=attempt,
        )

    def _network_error(self, exc: Exception, attempt: int) -> GrokError:
        host = httpx.URL(self._settings.base_url).host
        reason = " ".join((str(exc) or type(exc).__name__).split())
        where = (
            f"could not reach {host}"
            if isinstance(exc, httpx.ConnectError)
            else f"connection to {host} failed"
        )
        return GrokError(
            "Network error",
            f"{where}: {reason[:300]}.",
            "Check the network connection, proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) and "
            "ACEDATACLOUD_API_BASE_URL.",
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


async def _relay(text: str, call: _Call) -> None:
    if text and call.on_text is not None:
        await call.on_text(text)


def _completion(body: bytes, status: int, call: _Call) -> dict[str, Any]:
    try:
        data = loads(body)
    except ValueError:
        data = None
    data = None if too_deep(data) else repaired(data)  # deeper than any completion: refused
    if not isinstance(data, dict):
        raise GrokError(
            "Unexpected response",
            "upstream answered with a body that is not a JSON object: "
            + excerpt(call.secrets.redact(body[:8192].decode("utf-8", "replace"))),
            "This usually comes from a proxy in front of the API; check ACEDATACLOUD_API_BASE_URL.",
            status=status,
            attempts=call.attempt,
        )
    if "error" in data and "choices" not in data:
        error = from_response(status, body, call.attempt, call.secrets, call.model)
        error.category = "Upstream error"
        raise error
    return data


def _stream_failure(exc: StreamError, call: _Call) -> GrokError:
    if isinstance(exc, UpstreamEvent):
        error = from_response(500, exc.data[:MAX_ERROR_BODY].encode(), call.attempt, call.secrets, call.model)
        if error.detail.startswith("non-JSON body: "):  # event: error with a plain-text message
            error.detail = excerpt(call.secrets.redact(exc.data[:8192]))
        error.category, error.status = "Upstream error (in the stream)", None
        return error
    if isinstance(exc, BadEvent):
        shown = excerpt(call.secrets.redact(exc.excerpt)) if exc.excerpt else f"({exc.reason})"
        return GrokError(
            "Upstream error",
            "the event stream carried a non-JSON event: " + shown,
            "Try again, or call without stream.",
            status=200,
            attempts=call.attempt,
        )
    return GrokError(
        "Response too large",
        f"{exc}; the call was stopped.",
        "Ask for less (max_completion_tokens), or check ACEDATACLOUD_API_BASE_URL if this is not the "
        "real API.",
        attempts=call.attempt,
    )


def _truncated(stream: Assembly, why: str, attempt: int) -> GrokError:
    return GrokError(
        "Stream interrupted",
        f"{why}; {stream.chars} characters had arrived in {stream.chunks} chunks. "
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
