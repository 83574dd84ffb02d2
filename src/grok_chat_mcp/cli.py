"""Command line: ``grok-chat-mcp`` starts the stdio server."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import re
import sys
import time
from collections.abc import Iterator

from grok_chat_mcp import __version__
from grok_chat_mcp.config import BASE_URL_VAR, ENV_VARS, TOKEN_VAR, Settings, load_settings

logger = logging.getLogger("grok_chat_mcp")


def _parser() -> argparse.ArgumentParser:
    rows = "\n".join(f"  {name:<27} {meaning} (default: {default})" for name, default, meaning in ENV_VARS)
    return argparse.ArgumentParser(
        prog="grok-chat-mcp",
        description="MCP server (stdio) exposing the grok_chat_completions tool via AceDataCloud.",
        epilog=f"environment variables (also read from ./.env; the real environment wins):\n{rows}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script and of ``python -m grok_chat_mcp``."""
    parser = _parser()
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--check", action="store_true", help="print the effective configuration and exit (no request is made)"
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="with --check: also make one tiny real request (max_completion_tokens 1)",
    )
    parser.add_argument(
        "--model", default=None, help="with --check --live: the model to try (default: the default model)"
    )
    parser.add_argument(
        "--models", action="store_true", help="print the model capability table and exit (no request is made)"
    )
    parser.add_argument("--json", action="store_true", help="with --models: print JSON")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio", help="default: stdio")
    web = parser.add_argument_group("HTTP transport (--transport http): MCP at /mcp, GET /health")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    web.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: 8000; 0 picks a free one)"
    )
    web.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed besides loopback ones, e.g. https://app.example.com (repeatable)",
    )
    web.add_argument(
        "--max-requests",
        type=int,
        default=1024,
        metavar="N",
        help="requests served at once, counted from a complete body; more get HTTP 503 (default: 1024)",
    )
    web.add_argument(
        "--max-requests-per-address",
        type=int,
        default=0,
        metavar="N",
        help="requests in flight from one client address; more get HTTP 429 (default: 0, no cap)",
    )
    web.add_argument(
        "--idle-timeout",
        type=int,
        default=5,
        metavar="SECONDS",
        help="close a connection idle this long, also before its first request and within a "
        "request body (default: 5)",
    )
    web.add_argument(
        "--body-timeout",
        type=float,
        default=60,
        metavar="SECONDS",
        help="a request body must arrive in full within this time, or HTTP 408 (default: 60)",
    )
    web.add_argument(
        "--shutdown-grace",
        type=float,
        default=25,
        metavar="SECONDS",
        help="on SIGTERM, requests in flight get this long to finish (default: 25)",
    )
    web.add_argument(
        "--allow-shared-token",
        action="store_true",
        help=f"on a non-loopback address, let requests without their own token use {TOKEN_VAR}",
    )
    args = parser.parse_args(argv)

    if args.live and not args.check:
        parser.error("--live goes with --check")
    if args.json and not args.models:
        parser.error("--json goes with --models")
    if args.models:
        from grok_chat_mcp import capabilities

        sys.stdout.write(capabilities.render(capabilities.rows(), as_json=args.json))
        sys.exit(0)
    settings = load_settings()
    if args.check:
        code = check(settings, live=args.live)
        if args.live and code == 0:
            code = live_check(settings, args.model)
        sys.exit(code)
    from grok_chat_mcp import logs
    from grok_chat_mcp.redaction import Secrets

    logs.configure(settings.log_level, Secrets([settings.api_token]))
    for warning in settings.warnings:
        logger.warning("config: %s", warning)
    if settings.problem:
        logger.error("config: %s; calls will fail until it is fixed", settings.problem)
    if not settings.api_token and args.transport == "stdio":
        logger.warning(
            "ACEDATACLOUD_API_TOKEN is not set: the tool is listed, but calls will fail until it is"
        )

    status = 0
    with contextlib.suppress(KeyboardInterrupt):
        if args.transport == "http":
            serve_http(settings, args)
        else:
            with collecting_later():
                import anyio

                from grok_chat_mcp import eventloop
                from grok_chat_mcp.server import build_server  # keeps --help and --version instant
                from grok_chat_mcp.tool import CallPolicy
                from grok_chat_mcp.transports import stdio

                loop = eventloop.choose(settings.event_loop)
                logger.debug("event loop: %s", loop)
                server = build_server(settings, policy=CallPolicy(progress_needs_token=True))
            status = anyio.run(stdio.serve, server, backend_options={"use_uvloop": loop == "uvloop"})
    sys.exit(status)


@contextlib.contextmanager
def collecting_later() -> Iterator[None]:
    """No garbage collection while the SDK is imported and the server built, nor of what that built.

    Start-up creates objects that live as long as the process (modules, classes, pydantic
    schemas); the collector kept walking them as they piled up, and walked them again in the
    collections that follow and at exit. Once start-up succeeds they are frozen (``gc.freeze()``:
    never examined again), and collection resumes as it was for everything created later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def serve_http(settings: Settings, args: argparse.Namespace) -> None:
    """Start the streamable HTTP transport, unless its policy forbids this configuration."""
    from grok_chat_mcp.transports import http  # stdio mode never imports the HTTP transport
    from grok_chat_mcp.transports.admission import Limits

    policy = http.Policy(
        host=args.host,
        server_token=settings.api_token is not None,
        allow_shared_token=args.allow_shared_token,
        allowed_origins=tuple(args.allow_origin),
    )
    problem = policy.startup_problem()
    if problem is not None:
        logger.error("%s", problem)
        sys.exit(2)
    limits = Limits(
        max_requests=max(1, args.max_requests),
        per_address=max(0, args.max_requests_per_address),
        idle=max(1, args.idle_timeout),
        body=max(1.0, args.body_timeout),
        grace=max(0.0, args.shutdown_grace),
    )
    http.serve(settings, policy, args.port, limits)


def mask(token: str) -> str:
    """Enough of a token to recognise it, never enough to use it."""
    return (
        f"{token[:3]}...{token[-4:]} ({len(token)} characters)"
        if len(token) >= 16
        else f"set ({len(token)} characters)"
    )


def check(settings: Settings, *, live: bool = False) -> int:
    """Print every setting with its value and source; 0 if the server can make calls, 1 if not."""
    values = {
        TOKEN_VAR: mask(settings.api_token) if settings.api_token else "NOT SET",
        BASE_URL_VAR: _without_password(settings.base_url),
        "GROK_REQUEST_TIMEOUT": f"{settings.timeout:g} s read, {settings.connect_timeout:g} s connect",
        "GROK_CALL_TIMEOUT": f"{settings.call_timeout:g} s",
        "GROK_MAX_RETRIES": str(settings.max_retries),
        "GROK_RETURN_AFTER": f"{settings.return_after:g} s" if settings.return_after else "0 (never)",
        "GROK_STORE": _without_password(settings.store),
        "LOG_LEVEL": settings.log_level,
        "GROK_EVENT_LOOP": settings.event_loop,
    }
    lines = [f"grok-chat-mcp {__version__}: effective configuration"]
    for name, _, _ in ENV_VARS:
        source = "replaced" if name in settings.replaced else settings.sources.get(name, "default")
        lines.append(f"  {name:<27} {values[name]}  ({source})")
    lines.append(f"  {'endpoint':<27} POST {_without_password(settings.endpoint)}")
    lines += [f"replaced: {why}" for why in settings.replaced.values()]
    problems = []
    if settings.problem:
        problems.append(settings.problem)
    if not settings.api_token:
        problems.append(f"{TOKEN_VAR} is not set; calls will fail. Set it in the MCP client's env or in .env")
    lines += [f"error: {problem}." for problem in problems]
    if not problems:
        verdict = "ok" if not settings.replaced else "ok, with replaced values"
        lines.append(f"{verdict}: the server can make calls" + ("." if live else " (no request was made)."))
    sys.stdout.write("\n".join(lines) + "\n")  # --check is not MCP mode: stdout is the terminal
    return 1 if problems else 0


def _without_password(url: str) -> str:
    """A URL as shown: the password in its user info, and any ``password`` query value, masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:***@{host}"
    tail = _SECRET_QUERY.sub(r"\1***", tail)
    return f"{scheme}://{authority}{tail}"


_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|pass|pwd)=)[^&#]*")


def live_check(settings: Settings, model: str | None) -> int:
    """Make one tiny real request and say, in plain words, what it showed; 0 if the model answered."""
    import anyio

    from grok_chat_mcp.capabilities import DEFAULT_MODEL
    from grok_chat_mcp.errors import GrokError
    from grok_chat_mcp.request import GrokRequest
    from grok_chat_mcp.upstream.client import GrokClient, make_http_client

    logging.getLogger("grok_chat_mcp").setLevel(logging.CRITICAL)  # the verdict below says it all, once
    model = model or DEFAULT_MODEL
    payload = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_completion_tokens": 1}

    async def run() -> tuple[float, GrokError | None]:
        async with make_http_client(settings) as http:
            started = time.perf_counter()
            try:
                await GrokClient(http, settings).complete(GrokRequest.of(payload))
            except GrokError as exc:
                return time.perf_counter() - started, exc
            return time.perf_counter() - started, None

    sys.stdout.write(f"live check: POST {settings.endpoint} (model {model}, max_completion_tokens 1)\n")
    seconds, error = anyio.run(run)
    if error is None:
        sys.stdout.write(f"ok: the token works and {model} answered in {seconds:.2f} s.\n")
        return 0
    verdict = _LIVE_VERDICTS.get(error.category, "the request failed")
    sys.stdout.write(f"error: {verdict.format(model=model)} ({seconds:.2f} s).\n{error}\n")
    return 1


_LIVE_VERDICTS = {
    "Authentication failed": "the token does not work",
    "Access disabled": "the token or account is disabled",
    "Insufficient balance": "the token works, but the balance is used up",
    "Model not available": "the token works, but {model} is not available",
    "Request rejected": "the token works, but the request was rejected",
    "Network error": "the API could not be reached",
    "Timeout": "the API did not answer in time",
}
