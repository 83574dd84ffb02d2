"""Command line: ``grok-chat-mcp`` serves over stdio or HTTP; ``--check`` and ``--models`` inform."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import re
import sys
import textwrap
import time
from collections.abc import Iterator

from grok_chat_mcp import __version__
from grok_chat_mcp.capabilities import EFFORTS, Capabilities, effort_aliases_phrase, models, redirects_phrase
from grok_chat_mcp.config import BASE_URL_VAR, ENV_VARS, TOKEN_VAR, Settings, load_settings

logger = logging.getLogger("grok_chat_mcp")


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="grok-chat-mcp",
        description=textwrap.fill(
            "An MCP server with one tool, grok_chat_completions, which relays chat completions to "
            "Grok through AceDataCloud. It serves over stdio (the default: an MCP client starts it) "
            "or over streamable HTTP (--transport http).",
            width=100,
        ),
        epilog="environment variables (also read from ./.env; the real environment wins):\n"
        + "\n".join(_variable_help(*row) for row in ENV_VARS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _variable_help(name: str, default: str, meaning: str) -> str:
    """One variable for ``--help``, wrapped to fit 100 columns."""
    text = meaning if default in ("", "(none)") else f"{meaning} (default: {default})"
    return textwrap.fill(
        text, width=100, initial_indent=f"  {name:<27} ", subsequent_indent=" " * 30, break_on_hyphens=False
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
        "--models", action="store_true", help="print what each model accepts and exit (no request is made)"
    )
    parser.add_argument("--json", action="store_true", help="with --models: print JSON, for scripts")
    parser.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default): for a client that starts the server; http: streamable HTTP at /mcp",
    )
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
        help="on SIGTERM, requests in flight and running calls get this long to finish (default: 25)",
    )
    web.add_argument(
        "--allow-shared-token",
        action="store_true",
        help=f"on a non-loopback address, let requests without their own token use {TOKEN_VAR}",
    )
    web.add_argument(
        "--auth",
        choices=["token", "oauth"],
        default="token",
        help="token: each request brings its AceDataCloud token (default); oauth: users sign in "
        "(OAuth 2.1) and spend their own token; needs --public-url and GROK_OAUTH_KEY",
    )
    web.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the https:// address users reach this server at (behind TLS), e.g. https://grok.example.com",
    )
    args = parser.parse_args(argv)

    if args.live and not args.check:
        parser.error("--live goes with --check")
    if args.json and not args.models:
        parser.error("--json goes with --models")
    if args.auth == "oauth" and args.transport != "http":
        parser.error("--auth oauth goes with --transport http")
    if args.models:
        sys.stdout.write(models_json() if args.json else models_text())
        sys.exit(0)
    settings = load_settings()
    if args.check:
        code = check(settings, live=args.live)
        if args.live and code == 0:
            code = live_check(settings, args.model)
        sys.exit(code)
    from grok_chat_mcp import logs
    from grok_chat_mcp.redaction import Secrets

    logs.configure(settings.log_level, Secrets([settings.api_token, settings.oauth_key]))
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
                # A client that closes stdin leaves the calls still running to finish and be stored
                # (a signal stops them at once): docs/tool.md, "Long calls".
                server = build_server(
                    settings, policy=CallPolicy(progress_needs_token=True), drain=settings.call_timeout
                )
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

    oauth = None
    if args.auth == "oauth":
        from grok_chat_mcp.transports.oauth import OAuthOptions

        oauth = OAuthOptions(public_url=(args.public_url or "").rstrip("/"), key=settings.oauth_key or "")
    policy = http.Policy(
        host=args.host,
        server_token=settings.api_token is not None,
        allow_shared_token=args.allow_shared_token,
        allowed_origins=tuple(args.allow_origin),
        oauth=oauth,
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
        "GROK_BUDGET": budget_status(settings),
        "GROK_CONFIRM_CALLS": "1 (hosts ask the user before each call)" if settings.confirm_calls else "0",
        "LOG_LEVEL": settings.log_level,
        "GROK_EVENT_LOOP": settings.event_loop,
        "GROK_OAUTH_KEY": "set" if settings.oauth_key else "not set",
    }
    lines = [f"grok-chat-mcp {__version__}: effective configuration"]
    for name, _, _ in ENV_VARS:
        source = "replaced" if name in settings.replaced else settings.sources.get(name, "default")
        lines.append(f"  {name:<27} {values[name]}  ({source})")
    lines.append(f"  {'endpoint':<27} POST {_without_password(settings.endpoint)}")
    lines += [f"replaced: {why}" for why in settings.replaced.values()]
    store_problem = _store_problem(settings.store)
    if store_problem:
        lines.append(f"warning: {store_problem}.")
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


def _store_problem(url: str) -> str | None:
    """Why the store cannot be used, as a call would find it; None if it can (memory and off
    always can). SQLite is opened; Redis is asked for a conversation that does not exist."""
    if url.lower() in ("memory", "off"):
        return None
    import anyio

    from grok_chat_mcp.store import MEMORY_FALLBACK, StoreError, UnknownConversation, open_store

    try:
        store = open_store(url)
    except ValueError as exc:
        return f"{exc}; {MEMORY_FALLBACK}"
    if store is None:
        return None

    async def probe() -> str | None:
        try:
            with anyio.fail_after(5):
                await store.get("--check", "conv_probe--check")
        except UnknownConversation:
            return None  # it answered
        except (StoreError, TimeoutError) as exc:
            why = str(exc.__cause__ or exc) or "no answer in 5 s"
            return (
                f"the conversation store {_without_password(url)} is unreachable ({why}); calls are "
                "still answered, but conversations are not remembered"
            )
        finally:
            await store.aclose()
        return None

    return anyio.run(probe)


def budget_status(settings: Settings) -> str:
    """The budget and what is left of it for the configured token, read from the store."""
    if settings.budget is None:
        return "none"
    import anyio

    from grok_chat_mcp.budget import Budgets
    from grok_chat_mcp.store import StoreError, open_store, owner_of

    if settings.store in ("memory", "off"):
        budgets = Budgets.from_setting(settings.budget, None)
        if budgets.budget is not None:
            return (
                f"{budgets.budget}; the spend is counted in the server's memory (GROK_STORE={settings.store})"
            )

    async def read() -> str:
        try:
            store = open_store(settings.store)
        except ValueError as exc:
            return f"{settings.budget}; the spend could not be read ({exc})"
        try:
            with anyio.fail_after(5):
                return await Budgets.from_setting(settings.budget, store).status(owner_of(settings.api_token))
        except (TimeoutError, StoreError) as exc:
            return f"{settings.budget}; the spend could not be read ({exc or 'no answer in 5 s'})"
        finally:
            if store is not None:
                await store.aclose()

    return anyio.run(read)


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


def models_text() -> str:
    """``--models``: one aligned line per model (at most 100 columns), then what the marks mean."""
    headers = ("model", "status", "reasoning_effort", "default", "images", "penalties")
    lines = [headers, *(_model_cells(caps) for caps in models())]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    table = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    notes = [
        "penalties: presence_penalty, frequency_penalty and stop. unsure: sent, and upstream decides.",
        f"* {redirects_phrase()}",
        *([aliases] if (aliases := effort_aliases_phrase()) else []),
        *(caps.remark for caps in models() if caps.remark),
        *(
            f"{caps.name}: effort picks the {caps.effort_meaning}."
            for caps in models()
            if caps.effort_meaning
        ),
    ]
    wrapped = [textwrap.fill(note, width=100, subsequent_indent="  ") for note in notes]
    return "\n".join([*table, "", *wrapped]) + "\n"


def _model_cells(caps: Capabilities) -> tuple[str, ...]:
    def yes_no(value: bool | None) -> str:
        return "-" if caps.retired else {None: "unsure", True: "yes", False: "no"}[value]

    if caps.retired:
        status = f"retired {caps.retired}"
    elif caps.served_by:
        status = f"served ({caps.served_by}) *"
    else:
        status = "served" if caps.status == "current" else "xAI only"
    if caps.retired:
        efforts = "-"
    elif caps.efforts is None:
        efforts = "unsure"
    else:
        ordered = [effort for effort in EFFORTS if effort in caps.efforts]
        efforts = f"{ordered[0]}..{ordered[-1]}" if len(ordered) > 2 else "/".join(ordered) or "not accepted"
    penalties = caps.penalties if caps.penalties == caps.stop else None
    return (caps.name, status, efforts, caps.default_effort or "-", yes_no(caps.images), yes_no(penalties))


def models_json() -> str:
    """``--models --json``: one object per model; lists, booleans, and null where the table is unsure."""
    return json.dumps([_model_object(caps) for caps in models()], indent=2) + "\n"


def _model_object(caps: Capabilities) -> dict[str, object]:
    efforts = None if caps.efforts is None else [e for e in EFFORTS if e in caps.efforts]
    return {
        "model": caps.name,
        "status": caps.status,
        "served_by": caps.served_by,
        "served_effort": caps.served_effort,
        "retired": caps.retired,
        "reasoning_effort": efforts,
        "default_effort": caps.default_effort,
        "effort_meaning": caps.effort_meaning or None,
        "effort_as": dict(caps.effort_as) or None,
        "remark": caps.remark or None,
        "images": caps.images,
        "presence_penalty": caps.penalties,
        "frequency_penalty": caps.penalties,
        "stop": caps.stop,
    }
