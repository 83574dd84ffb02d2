"""Command line: ``grok-chat-mcp`` starts the stdio server."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from grok_chat_mcp import __version__
from grok_chat_mcp.config import ENV_VARS, load_settings

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
    parser.parse_args(argv)

    settings = load_settings()
    from grok_chat_mcp import logs

    logs.configure(settings.log_level, [settings.api_token] if settings.api_token else [])
    for warning in settings.warnings:
        logger.warning("config: %s", warning)
    if not settings.api_token:
        logger.warning(
            "ACEDATACLOUD_API_TOKEN is not set: the tool is listed, but calls will fail until it is"
        )

    from grok_chat_mcp.server import build_server

    with contextlib.suppress(KeyboardInterrupt):
        build_server(settings).run("stdio")
    sys.exit(0)
