"""Streamable HTTP transport: ``/mcp`` (stateless) and ``/health``, guarded against open-relay use.

Imported only with ``--transport http``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grok_chat_mcp import __version__, logs
from grok_chat_mcp.config import TOKEN_VAR, Settings
from grok_chat_mcp.server import InFlight, build_server

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
LOOPBACK_ORIGINS = ("http://127.0.0.1", "http://localhost", "http://[::1]")
LOOPBACK_ORIGIN_PATTERN = r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer(headers: Mapping[str, str] | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    value = (headers or {}).get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


@dataclass(frozen=True)
class Policy:
    """Who may use this server's upstream balance, and from which web pages."""

    host: str
    server_token: bool
    allow_shared_token: bool = False
    allowed_origins: tuple[str, ...] = ()

    @property
    def shares_server_token(self) -> bool:
        """Whether a request without its own token may spend the server's."""
        return self.server_token and (is_loopback(self.host) or self.allow_shared_token)

    def startup_problem(self) -> str | None:
        """Why the server must not start with this configuration, or None."""
        if self.server_token and not is_loopback(self.host) and not self.allow_shared_token:
            return (
                f"refusing to serve {TOKEN_VAR} to anyone who can reach {self.host}: on a non-loopback "
                "address each request must bring its own token (Authorization: Bearer ...). Unset "
                f"{TOKEN_VAR}, listen on 127.0.0.1, or pass --allow-shared-token if this network is trusted."
            )
        return None

    def origin_allowed(self, origin: str | None) -> bool:
        """Requests without Origin (non-browser clients) pass; browsers only from allowed origins."""
        if not origin:
            return True
        origin = origin.rstrip("/")
        if origin in self.allowed_origins or "*" in self.allowed_origins:
            return True
        return any(origin == base or origin.startswith(base + ":") for base in LOOPBACK_ORIGINS)


class Guard:
    """ASGI front: answers ``GET /health``; refuses foreign origins (403), token-less spending (401)
    and ``GET /mcp`` (405: a stateless server has no stream to offer); routes cancellations.
    """

    def __init__(self, app: ASGIApp, policy: Policy, in_flight: InFlight | None = None) -> None:
        self.app = app
        self.policy = policy
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            refusal = self._refusal(request)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            if self.in_flight is not None and request.method == "POST":
                receive = await self._route_cancellation(request, receive)
        await self.app(scope, receive, send)

    async def _route_cancellation(self, request: Request, receive: Receive) -> Receive:
        """Cancel the call a ``notifications/cancelled`` names, whichever request carries it.

        The stateless transport starts a fresh session per POST, so on its own it drops the
        notification (the TypeScript SDK sends it in a POST of its own on abort and on timeout)
        and the generation runs on, billed. Small bodies are read here and replayed to the app.
        """
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > _CANCEL_BODY_LIMIT:
            return receive
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if (
                message["type"] != "http.request"
                or not message.get("more_body")
                or len(body) > _CANCEL_BODY_LIMIT
            ):
                break
        if b"notifications/cancelled" in body:
            self._cancel(body, bearer(request.headers))

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        return replay

    def _cancel(self, body: bytes, token: str | None) -> None:
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return
        params = message.get("params") if isinstance(message, dict) else None
        if message.get("method") != "notifications/cancelled" or not isinstance(params, dict):
            return
        request_id = params.get("requestId")
        if not isinstance(request_id, str | int) or isinstance(request_id, bool) or self.in_flight is None:
            return
        if self.in_flight.cancel(InFlight.caller(token), str(request_id)):
            logger.info("cancelled call %s at the client's request", request_id)

    def _refusal(self, request: Request) -> Response | None:
        if request.url.path == "/health" and request.method == "GET":
            return JSONResponse({"status": "ok", "name": "grok-chat-mcp", "version": __version__})
        if request.url.path.startswith(MCP_PATH) and request.method == "GET":
            return _error(
                405,
                "method not allowed",
                "This server is stateless: POST each JSON-RPC message; there is no event stream to GET.",
                {"Allow": "POST, OPTIONS"},
            )
        if not self.policy.origin_allowed(request.headers.get("origin")):
            logger.warning("refused a request from origin %r", request.headers.get("origin"))
            return _error(
                403, "origin not allowed", "This origin may not use the server (see --allow-origin)."
            )
        needs_token = request.url.path.startswith(MCP_PATH) and request.method != "OPTIONS"
        if needs_token and bearer(request.headers) is None and not self.policy.shares_server_token:
            return _error(
                401,
                "token required",
                "Send your AceDataCloud token as 'Authorization: Bearer <token>'.",
                {"WWW-Authenticate": 'Bearer realm="grok-chat-mcp"'},
            )
        return None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": f"{code}: {message}"}}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def request_token(ctx: Context[Any, Any]) -> str | None:
    """The calling request's own token (None: the server's, where the policy allows it)."""
    token = bearer(ctx.headers)
    logs.remember(token)  # redacted from every log line from now on
    return token


def create_app(
    settings: Settings,
    policy: Policy,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    heartbeat: float = 5.0,
) -> ASGIApp:
    """The ASGI app: stateless streamable HTTP at ``/mcp``, ``GET /health``, behind :class:`Guard`."""
    if not policy.shares_server_token:
        settings = replace(settings, api_token=None, token_source="per request")  # noqa: S106
    in_flight = InFlight()
    server = build_server(
        settings,
        transport=transport,
        heartbeat=heartbeat,
        token_for=request_token,
        local_images=False,
        in_flight=in_flight,
        progress_needs_token=True,
    )

    loopback = is_loopback(policy.host)
    names = dict.fromkeys(["127.0.0.1", "localhost", "[::1]", _host_header(policy.host)])
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=loopback,  # Host checks: only where the valid names are known
        allowed_hosts=[*names, *(f"{name}:*" for name in names)],
        allowed_origins=[f"{base}:*" for base in LOOPBACK_ORIGINS]
        + [*LOOPBACK_ORIGINS, *policy.allowed_origins],
    )
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, transport_security=security, host=policy.host
    )
    cors = CORSMiddleware(  # lets pages from allowed origins read the answers
        app,
        allow_origins=[origin for origin in policy.allowed_origins if origin != "*"],
        allow_origin_regex=LOOPBACK_ORIGIN_PATTERN if "*" not in policy.allowed_origins else ".*",
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept", "Mcp-Session-Id", "Mcp-Protocol-Version"],
        expose_headers=["Mcp-Session-Id"],
        max_age=600,
    )
    return Guard(cors, policy, in_flight)


def _host_header(host: str) -> str:
    """How ``host`` appears in a Host header (IPv6 in brackets)."""
    return f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host


#: Cancellation notifications are tiny; larger bodies are not looked into.
_CANCEL_BODY_LIMIT = 64 * 1024
#: Seconds an idle keep-alive connection is kept open.
KEEP_ALIVE = 5


def serve(settings: Settings, policy: Policy, port: int, *, max_connections: int = 256) -> None:
    """Run the HTTP server until interrupted; logs the address it really bound (``--port 0``)."""
    import uvicorn  # only the HTTP transport needs it

    class _Server(uvicorn.Server):
        def __init__(self, config: uvicorn.Config, host: str) -> None:
            super().__init__(config)
            self.host = host

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for server in self.servers if self.started else ():
                for bound in server.sockets:
                    port = bound.getsockname()[1]
                    logger.info("serving MCP at http://%s:%d%s", _host_header(self.host), port, MCP_PATH)

    from grok_chat_mcp import eventloop

    config = uvicorn.Config(
        create_app(settings, policy),
        loop=eventloop.choose(settings.event_loop),
        host=policy.host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        limit_concurrency=max_connections,  # beyond: HTTP 503, not exhausted file descriptors
        timeout_keep_alive=KEEP_ALIVE,
    )
    _Server(config, policy.host).run()
