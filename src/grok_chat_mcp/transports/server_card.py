"""The MCP server card (experimental server-card extension), served at ``GET /mcp/server-card``:
who this server is and how to connect, before connecting. Its identity matches ``server.json``."""

from __future__ import annotations

import json
from typing import Any

from mcp_types.version import SUPPORTED_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grok_chat_mcp import __version__

PATH = "/mcp/server-card"
MEDIA_TYPE = "application/mcp-server-card+json"
SCHEMA = "https://static.modelcontextprotocol.io/schemas/v2/server-card.schema.json"
NAME = "io.github.grok-chat-mcp/grok-chat-mcp"
TITLE = "Grok Chat"
DESCRIPTION = "Grok chat completions (AceDataCloud) as one validated, streaming MCP tool."
WEBSITE = "https://pypi.org/project/grok-chat-mcp/"


def card(base_url: str, *, oauth: bool) -> dict[str, Any]:
    """The card for a server whose MCP endpoint is ``{base_url}/mcp``."""
    remote: dict[str, Any] = {
        "type": "streamable-http",
        "url": f"{base_url}/mcp",
        "supportedProtocolVersions": list(SUPPORTED_PROTOCOL_VERSIONS),
    }
    if not oauth:  # with OAuth the client discovers sign-in from the 401 (RFC 9728)
        remote["headers"] = [
            {
                "name": "Authorization",
                "description": "Your AceDataCloud API token; each call is billed to it",
                "isRequired": True,
                "isSecret": True,
                "value": "Bearer {token}",
                "variables": {
                    "token": {"description": "AceDataCloud API token", "isRequired": True, "isSecret": True}
                },
            }
        ]
    return {
        "$schema": SCHEMA,
        "name": NAME,
        "version": __version__,
        "title": TITLE,
        "description": DESCRIPTION,
        "websiteUrl": WEBSITE,
        "remotes": [remote],
    }


def route(public_url: str | None, *, oauth: bool) -> Route:
    """``GET /mcp/server-card``; the URL is the public one if known, else the request's own."""

    async def serve(request: Request) -> Response:
        base = public_url or str(request.base_url).rstrip("/")
        return Response(
            json.dumps(card(base, oauth=oauth), indent=2),
            media_type=MEDIA_TYPE,
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET",
                "Access-Control-Allow-Headers": "Content-Type",
                "Cache-Control": "public, max-age=3600",
            },
        )

    return Route(PATH, endpoint=serve, methods=["GET"])
