"""Streamable HTTP transport: ``/mcp`` (stateless) and ``/health``, guarded against open-relay use.

Imported only with ``--transport http``. Everything HTTP-specific lives here: who may spend which
token, browser origins, per-request tokens, cancellations that arrive in their own request, idle
connections, and the server that drains on a signal; which requests are taken and for how long is
``admission.py``'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import uvicorn
from mcp.server import ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from grok_chat_mcp import __version__, logs
from grok_chat_mcp.config import TOKEN_VAR, Settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.store.logins import Logins, open_logins
from grok_chat_mcp.structure import MAX_MESSAGE_BYTES
from grok_chat_mcp.tool import CallPolicy
from grok_chat_mcp.transports import oauth, server_card
from grok_chat_mcp.transports.admission import STOP_WAIT, Admission, Limits, Pending
from grok_chat_mcp.transports.oauth import OAuthOptions

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
LOOPBACK_ORIGINS = ("http://127.0.0.1", "http://localhost", "http://[::1]")
LOOPBACK_ORIGIN_PATTERN = r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?"
#: Connections the kernel queues before the server accepts them.
BACKLOG = 4096


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer(headers: Mapping[str, str] | None) -> str | None:
    """The caller's token: ``Authorization: Bearer <token>``, else ``x-api-key: <token>`` (the two
    static headers claude.ai custom connectors can send)."""
    headers = headers or {}
    return bearer_token(headers.get("authorization", "")) or headers.get("x-api-key", "").strip() or None


def bearer_token(value: str) -> str | None:
    """The token of an ``Authorization`` header's value ``Bearer <token>``, if it is one."""
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
    #: ``--auth oauth``: callers sign in, and spend the AceDataCloud token they signed in with.
    oauth: OAuthOptions | None = None

    @property
    def shares_server_token(self) -> bool:
        """Whether a request without its own token may spend the server's."""
        if self.oauth is not None:
            return False
        return self.server_token and (is_loopback(self.host) or self.allow_shared_token)

    def startup_problem(self) -> str | None:
        """Why the server must not start with this configuration, or None."""
        if self.oauth is not None:
            return oauth.startup_problem(self.oauth.key, self.oauth.public_url)
        if self.server_token and not is_loopback(self.host) and not self.allow_shared_token:
            return (
                f"refusing to serve {TOKEN_VAR} to anyone who can reach {self.host}: on a non-loopback "
                "address each request must bring its own token in an Authorization header. Unset "
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


#: The key under which :class:`Guard` leaves a request's :func:`bearer` token in its ASGI scope.
BEARER_KEY = "grok_chat_mcp.token"


def caller_token(request: Any) -> str | None:
    """A request's :func:`bearer` token, as :class:`Guard` read it from its headers."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and BEARER_KEY in scope:
        token: str | None = scope[BEARER_KEY]
        return token
    return bearer(getattr(request, "headers", None))


def request_token(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The calling request's own token (None: the server's, where the policy allows it)."""
    token = caller_token(ctx.request)
    logs.remember(token)  # redacted from every log line from now on
    return token


def signed_in_token(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """``--auth oauth``: the AceDataCloud token the caller signed in with (never a header's value)."""
    return oauth.upstream_token(ctx.request)


class InFlight:
    """Calls in progress, so that a ``notifications/cancelled`` sent in its own POST (the stateless
    transport has no session to route it) finds its call.

    A call is known by its caller (a hash of the bearer token and the client's address) and its
    request id. A cancel that matches more than one call (two clients behind one address sharing a
    token and an id) cancels none: it cannot say which one it means.
    """

    def __init__(self) -> None:
        self._scopes: dict[str, list[anyio.CancelScope]] = {}

    @staticmethod
    def key(ctx: ServerRequestContext[Any, Any], request_id: str | int | None) -> str:
        """Who is calling (a hash of the bearer token and the client's address) and which request."""
        request = ctx.request
        token = caller_token(request) or ""
        client = getattr(request, "client", None)
        host = getattr(client, "host", "") or ""
        caller = hashlib.sha256(f"{token}\x00{host}".encode()).hexdigest()[:32]
        # The id's type is part of it: 1 and "1" are different ids.
        kind = "s" if isinstance(request_id, str) else "n"
        return f"call:{caller}:{kind}:{request_id if request_id is not None else ''}"

    def track(self, ctx: ServerRequestContext[Any, Any]) -> _Tracked:
        """While inside, a cancel from the same caller for the call's request id cancels it."""
        Pending.note_request_id(ctx)
        return _Tracked(self._scopes, self.key(ctx, ctx.request_id))

    def cancel(self, key: str) -> bool:
        """Cancel the call known by ``key`` here; False if none is (it may run on another replica)."""
        scopes = self._scopes.get(key, [])
        if len(scopes) == 1:
            scopes[0].cancel()
            logger.info("cancelled a call at the client's request")
        elif scopes:
            logger.warning("a cancel matches %d calls; cancelled none", len(scopes))
        return bool(scopes)

    def __len__(self) -> int:
        return sum(len(scopes) for scopes in self._scopes.values())


class _Tracked:
    """One call in :class:`InFlight`'s table while inside; its cancel scope is the one entered."""

    __slots__ = ("_key", "_scope", "_scopes")

    def __init__(
        self,
        scopes: dict[str, list[anyio.CancelScope]],
        key: str,
    ) -> None:
        self._scopes, self._key, self._scope = scopes, key, anyio.CancelScope()

    def __enter__(self) -> anyio.CancelScope:
        self._scopes.setdefault(self._key, []).append(self._scope)
        return self._scope.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            return self._scope.__exit__(kind, exc, tb)
        finally:
            scopes = self._scopes[self._key]
            scopes.remove(self._scope)
            if not scopes:
                del self._scopes[self._key]


class Guard:
    """ASGI front: answers ``GET /health``; refuses foreign origins (403), token-less spending (401)
    and ``GET /mcp`` (405: a stateless server has no stream to offer).

    It reads the path, method and the headers it needs straight from the ASGI scope (no request
    object per call), leaves the caller's token there for the call (:func:`caller_token`), and
    sends only requests with an ``Origin`` header through the CORS
    middleware: for the others that middleware adds ``Vary: Origin`` and nothing else, which
    :func:`_vary_origin` does without it.
    """

    def __init__(self, app: ASGIApp, policy: Policy, cors: ASGIApp | None = None) -> None:
        self.app = app
        self.cors = cors
        self.policy = policy
        self._shares_server_token = policy.shares_server_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = authorization = api_key = None
        for name, value in scope["headers"]:  # the first of each, as starlette's Headers.get reads them
            if name == b"origin":
                origin = value.decode("latin-1") if origin is None else origin
            elif name == b"authorization":
                authorization = value.decode("latin-1") if authorization is None else authorization
            elif name == b"x-api-key":
                api_key = value.decode("latin-1") if api_key is None else api_key
        token = bearer_token(authorization or "") or (api_key or "").strip() or None  # as bearer() reads
        scope[BEARER_KEY] = token  # for the call (caller_token): the headers are read once
        refusal = self._refusal(scope["path"], scope["method"], origin, token)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if origin is None or self.cors is None:
            await self.app(scope, receive, _vary_origin(send) if self.cors is not None else send)
        else:
            await self.cors(scope, receive, send)

    def _refusal(self, path: str, method: str, origin: str | None, token: str | None) -> Response | None:
        if path == "/health" and method == "GET":
            return JSONResponse({"status": "ok", "name": "grok-chat-mcp", "version": __version__})
        mcp = path.startswith(MCP_PATH) and path != server_card.PATH
        if mcp and method == "GET":
            return _error(
                405,
                "method not allowed",
                "This server is stateless: POST each JSON-RPC message; there is no event stream to GET.",
                {"Allow": "POST, OPTIONS"},
            )
        if origin is not None and not self.policy.origin_allowed(origin):
            logger.warning("refused a request from origin %r", origin)
            return _error(
                403, "origin not allowed", "This origin may not use the server (see --allow-origin)."
            )
        needs_token = mcp and method != "OPTIONS"
        signs_in = self.policy.oauth is not None  # the SDK's bearer check answers, with its metadata
        if needs_token and not signs_in and not self._shares_server_token and token is None:
            return _error(
                401,
                "token required",
                "Send your AceDataCloud token as 'Authorization: Bearer <token>' or 'x-api-key: <token>'.",
                {"WWW-Authenticate": 'Bearer realm="grok-chat-mcp"'},
            )
        return None


def _vary_origin(send: Send) -> Send:
    """``send`` with ``Origin`` added to the response's ``Vary`` header, as starlette's CORS
    middleware adds it to every response (the answer depends on the request's origin)."""

    async def varied(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            vary = [value for name, value in headers if name.lower() == b"vary"]
            if vary:
                headers = [(name, value) for name, value in headers if name.lower() != b"vary"]
            headers.append((b"vary", b", ".join([*vary, b"Origin"])))
            message = {**message, "headers": headers}
        await send(message)

    return varied


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": f"{code}: {message}"}}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def create_app(
    settings: Settings,
    policy: Policy,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    heartbeat: float = 5.0,
    logins: Logins | None = None,
    clock: Callable[[], float] = time.time,
    drain: Callable[[], float] = lambda: 0.0,
) -> ASGIApp:
    """The ASGI app: stateless streamable HTTP at ``/mcp``, ``GET /health``, the server card, and
    with ``--auth oauth`` the sign-in endpoints, behind :class:`Guard`. ``logins`` and ``clock``
    replace the sign-in store (``GROK_STORE``) and the time (tests); ``drain`` says, as the server
    stops, how long its running calls may still take (:meth:`Admission.time_left`)."""
    if not policy.shares_server_token:
        settings = replace(settings, api_token=None)
    routes: list[Route] = [
        server_card.route(policy.oauth.public_url if policy.oauth else None, oauth=bool(policy.oauth))
    ]
    auth: dict[str, Any] = {}
    if policy.oauth is not None:
        provider = oauth.Provider(policy.oauth, logins or open_logins(settings.store, clock), clock)
        routes += oauth.routes(provider)
        auth = {"auth": oauth.auth_settings(policy.oauth), "token_verifier": provider}
        public = urlsplit(policy.oauth.public_url)
        policy = replace(
            policy, allowed_origins=(*policy.allowed_origins, f"{public.scheme}://{public.netloc}")
        )
    call_policy = CallPolicy(
        token=signed_in_token if policy.oauth is not None else request_token,
        local_images=False,
        tracker=InFlight(),
        heartbeat=heartbeat,
        progress_needs_token=True,
    )
    server = build_server(settings, transport=transport, policy=call_policy, drain=drain)
    loopback = is_loopback(policy.host)
    names = dict.fromkeys(["127.0.0.1", "localhost", "[::1]", _host_header(policy.host)])
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=loopback,  # Host checks: only where the valid names are known
        allowed_hosts=[*names, *(f"{name}:*" for name in names)],
        allowed_origins=[f"{base}:*" for base in LOOPBACK_ORIGINS]
        + [*LOOPBACK_ORIGINS, *policy.allowed_origins],
    )
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=security,
        host=policy.host,
        max_request_body_size=MAX_MESSAGE_BYTES,
        custom_starlette_routes=routes,
        **auth,
    )
    if "token_verifier" in auth:
        oauth.close_at_shutdown(app, auth["token_verifier"].logins)
    cors = CORSMiddleware(  # lets pages from allowed origins read the answers
        app,
        allow_origins=[origin for origin in policy.allowed_origins if origin != "*"],
        allow_origin_regex=LOOPBACK_ORIGIN_PATTERN if "*" not in policy.allowed_origins else ".*",
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept", "Mcp-Session-Id", "Mcp-Protocol-Version"],
        expose_headers=["Mcp-Session-Id"],
        max_age=600,
    )
    return Guard(app, policy, cors)


def _host_header(host: str) -> str:
    """How ``host`` appears in a Host header (IPv6 in brackets)."""
    return f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host


class IdleLimitedH11(H11Protocol):
    """uvicorn's h11 protocol, with the idle timeout also before a new connection's first request
    and on a request whose head does not arrive: its request line and headers must be complete
    within the idle timeout of its first byte (uvicorn stops timing at the first byte, so a client
    sending part of a head, or a byte now and then, held the connection for ever)."""

    head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.head_deadline is None and self._awaiting_head():
            self.head_deadline = self.loop.call_later(self.timeout_keep_alive, self._head_timeout, self.cycle)
        elif self.head_deadline is not None and not self._awaiting_head():
            self.head_deadline.cancel()
            self.head_deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None
        super().connection_lost(exc)

    def _awaiting_head(self) -> bool:
        """Bytes arrived, but no request is in progress: its head is still incomplete (a complete
        head starts a new cycle)."""
        between = self.cycle is None or self.cycle.response_complete
        return between and not self.transport.is_closing()

    def _head_timeout(self, cycle: object) -> None:
        self.head_deadline = None
        if self.cycle is cycle and self._awaiting_head():  # no request began since the first byte
            logger.info("closed a connection whose request head did not arrive in time")
            self.timeout_keep_alive_handler()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose first SIGINT or SIGTERM drains before it stops (:meth:`Admission.drain`);
    a second one answers the requests in flight at once, and running calls are not waited for.

    uvicorn's own handling would end every event stream on the signal (sse-starlette watches for
    it), so callers in flight got an empty 200; here uvicorn learns of the signal once the drain is
    over, and its shutdown then finds nothing in flight.
    """

    def __init__(self, config: uvicorn.Config, admission: Admission) -> None:
        super().__init__(config)
        self.admission = admission
        self.draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and self.draining is not None:  # a second signal: nothing waits any longer
            loop.call_soon_threadsafe(self.admission.stop_all)
        if loop is None or self.should_exit:
            super().handle_exit(sig, frame)
        elif self.draining is None:  # a signal handler: the drain starts from the loop
            loop.call_soon_threadsafe(self._start_drain, sig, frame)

    def _start_drain(self, sig: int, frame: FrameType | None) -> None:
        if self.draining is None:
            self.draining = asyncio.get_running_loop().create_task(self._drain(sig, frame))

    async def _drain(self, sig: int, frame: FrameType | None) -> None:
        await self.admission.drain()
        super().handle_exit(sig, frame)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``, made as ``IPPROTO_TCP`` so that asyncio sets
    ``TCP_NODELAY`` on every connection it accepts (it checks the socket's protocol)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(BACKLOG)  # connections wait in the backlog until the server accepts them
    return sock


def make_server(settings: Settings, policy: Policy, limits: Limits) -> DrainingServer:
    """The uvicorn server for the app, with the limits; :meth:`uvicorn.Server.run` starts it."""
    from grok_chat_mcp import eventloop

    admission: Admission  # made below: as the server stops, the app asks it how long calls may take
    admission = Admission(create_app(settings, policy, drain=lambda: admission.time_left()), limits)
    config = uvicorn.Config(
        admission,
        loop=eventloop.choose(settings.event_loop),
        http=IdleLimitedH11,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=limits.idle,
        timeout_graceful_shutdown=STOP_WAIT,  # after the drain, only a stuck connection waits
        backlog=BACKLOG,
    )
    return DrainingServer(config, admission)


def serve(settings: Settings, policy: Policy, port: int, limits: Limits) -> None:
    """Run the HTTP server until interrupted; logs the address it really bound (``--port 0``)."""
    _raise_file_limit()
    sock = listening_socket(policy.host, port)
    bound = sock.getsockname()[1]
    logger.info("serving MCP at http://%s:%d%s", _host_header(policy.host), bound, MCP_PATH)
    make_server(settings, policy, limits).run(sockets=[sock])


def _raise_file_limit() -> None:
    """Let the process hold as many connections as the system allows it (the soft limit is often 1024)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            logger.debug("could not raise the open-file limit from %d", soft)
