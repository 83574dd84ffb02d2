"""Command line: ``grok-chat-mcp`` starts the stdio server."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Iterator

from grok_chat_mcp import __version__
from grok_chat_mcp.config import ENV_VARS, TOKEN_VAR, Settings, load_settings

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
        help="with --check: also make one tiny real request (max_tokens 1) to test the token and model",
    )
    parser.add_argument(
        "--model", default="grok-4", help="with --check --live: the model to try (default: grok-4)"
    )
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
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="connections served at once; more get HTTP 503 (default: 256)",
    )
    web.add_argument(
        "--allow-shared-token",
        action="store_true",
        help=f"on a non-loopback address, let requests without their own token use {TOKEN_VAR}",
    )
    args = parser.parse_args(argv)

    if args.live and not args.check:
        parser.error("--live goes with --check")
    settings = load_settings()
    if args.check:
        code = check(settings, live=args.live)
        if args.live and code == 0:
            code = live_check(settings, args.model)
        sys.exit(code)
    from grok_chat_mcp import logs

    logs.configure(settings.log_level, [settings.api_token] if settings.api_token else [])
    for warning in settings.warnings:
        logger.warning("config: %s", warning)
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

                from grok_chat_mcp import eventloop, stdio
                from grok_chat_mcp.server import build_server  # keeps --help and --version instant

                loop = eventloop.choose(settings.event_loop)
                logger.debug("event loop: %s", loop)
                server = build_server(settings, progress_needs_token=True)
            status = anyio.run(stdio.serve, server, backend_options={"use_uvloop": loop == "uvloop"})
    sys.exit(status)


@contextlib.contextmanager
def collecting_later() -> Iterator[None]:
    """No garbage collection while the SDK is imported and the server built.

    Start-up creates some half a million objects that live as long as the process (modules,
    classes, pydantic schemas); the collector kept walking them as they piled up, which cost
    10 to 20 % of the time to the ``initialize`` reply. Collection resumes right after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def serve_http(settings: Settings, args: argparse.Namespace) -> None:
    """Start the streamable HTTP transport, unless its policy forbids this configuration."""
    from grok_chat_mcp import web  # stdio mode never imports the HTTP transport

    policy = web.Policy(
        host=args.host,
        server_token=settings.api_token is not None,
        allow_shared_token=args.allow_shared_token,
        allowed_origins=tuple(args.allow_origin),
    )
    problem = policy.startup_problem()
    if problem is not None:
        logger.error("%s", problem)
        sys.exit(2)
    web.serve(settings, policy, args.port, max_connections=max(1, args.max_connections))


def mask(token: str) -> str:
    """Enough of a token to recognise it, never enough to use it."""
    return (
        f"{token[:3]}...{token[-4:]} ({len(token)} characters)"
        if len(token) >= 16
        else f"set ({len(token)} characters)"
    )


def check(settings: Settings, *, live: bool = False) -> int:
    """Print the effective configuration; 0 if the server can make calls, 1 if not."""
    token = f"{mask(settings.api_token)} from {settings.token_source}" if settings.api_token else "NOT SET"
    rows = [
        (TOKEN_VAR, token),
        ("ACEDATACLOUD_API_BASE_URL", settings.base_url),
        ("endpoint", f"POST {settings.endpoint}"),
        ("GROK_REQUEST_TIMEOUT", f"{settings.timeout:g} s read, {settings.connect_timeout:g} s connect"),
        ("GROK_MAX_RETRIES", str(settings.max_retries)),
        ("LOG_LEVEL", settings.log_level),
    ]
    lines = [f"grok-chat-mcp {__version__}: effective configuration"]
    lines += [f"  {name:<27} {value}" for name, value in rows]
    lines += [f"warning: {warning}" for warning in settings.warnings]
    ok = settings.api_token is not None
    if ok:
        lines.append("ok: configuration is complete" + ("." if live else " (no request was made)."))
    else:
        lines.append(
            f"error: {TOKEN_VAR} is not set; calls will fail. Set it in the MCP client's env or in .env."
        )
    sys.stdout.write("\n".join(lines) + "\n")  # --check is not MCP mode: stdout is the terminal
    return 0 if ok else 1


def live_check(settings: Settings, model: str) -> int:
    """Make one tiny real request and say, in plain words, what it showed; 0 if the model answered."""
    import anyio

    from grok_chat_mcp.client import GrokClient, make_http_client
    from grok_chat_mcp.errors import GrokError

    payload = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}

    async def run() -> tuple[float, GrokError | None]:
        async with make_http_client(settings) as http:
            started = time.perf_counter()
            try:
                await GrokClient(http, settings).complete(payload)
            except GrokError as exc:
                return time.perf_counter() - started, exc
            return time.perf_counter() - started, None

    sys.stdout.write(f"live check: POST {settings.endpoint} (model {model}, max_tokens 1)\n")
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
