"""Helpers for the ``--auth oauth`` tests: the app in-process with its lifespan, a fake clock, a
person who signs in on the consent page, and the Python SDK's OAuth client."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from cryptography.fernet import Fernet
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl
from starlette.types import ASGIApp, Message

from grok_chat_mcp.config import Settings
from grok_chat_mcp.store.logins import Logins, MemoryLogins
from grok_chat_mcp.transports.http import Policy, create_app
from grok_chat_mcp.transports.oauth import OAuthOptions

PUBLIC = "http://127.0.0.1:8931"
KEY = Fernet.generate_key().decode()
REDIRECT = "http://127.0.0.1:3999/callback"


@dataclass
class Clock:
    """A fake clock that starts now (the SDK compares expiry times with the real one)."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan around the block (what a server does at start and stop)."""
    to_app, app_receives = anyio.create_memory_object_stream[Message](4)
    app_sends, from_app = anyio.create_memory_object_stream[Message](4)
    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def run() -> None:
        await app(scope, app_receives.receive, app_sends.send)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            await from_app.receive()


@asynccontextmanager
async def oauth_app(base_url: str, clock: Clock, logins: Logins | None = None) -> AsyncIterator[ASGIApp]:
    """The HTTP app in ``--auth oauth`` mode, upstream at ``base_url``, started."""
    settings = Settings(base_url=base_url, max_retries=0)
    policy = Policy(host="0.0.0.0", server_token=False, oauth=OAuthOptions(PUBLIC, KEY))
    app = create_app(settings, policy, heartbeat=0.2, logins=logins or MemoryLogins(clock), clock=clock)
    async with lifespan(app):
        yield app


def browser(app: ASGIApp) -> httpx2.AsyncClient:
    """A client that keeps cookies and does not follow redirects, like a person's browser tab."""
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=PUBLIC, timeout=30)


def form_values(page: str) -> dict[str, str]:
    """The hidden fields of the consent form."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))


async def sign_in(app: ASGIApp, authorization_url: str, token: str, **override: str) -> httpx2.Response:
    """Open the authorization URL, and on the consent page paste ``token`` and allow; the answer
    to the form (a redirect back to the app on success). ``override`` replaces form fields."""
    async with browser(app) as tab:
        to_consent = await tab.get(authorization_url)
        assert to_consent.status_code == 302, to_consent.text
        page = await tab.get(to_consent.headers["location"])
        assert page.status_code == 200, page.text
        fields = {**form_values(page.text), "token": token, "decision": "allow", **override}
        return await tab.post("/oauth/consent", data={k: v for k, v in fields.items() if v != "<omit>"})


def code_of(response: httpx2.Response) -> AuthorizationCodeResult:
    """The code and state of the redirect back to the app."""
    assert response.status_code == 303, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return AuthorizationCodeResult(code=query["code"][0], state=query.get("state", [None])[0])


class Memory:
    """The SDK client's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class Person:
    """Who the SDK client sends to the authorization URL: signs in with their token."""

    app: ASGIApp | None
    token: str
    urls: list[str] = field(default_factory=list)

    async def open(self, url: str) -> None:
        self.urls.append(url)

    async def come_back(self) -> AuthorizationCodeResult:
        assert self.app is not None
        return code_of(await sign_in(self.app, self.urls[-1], self.token))


def sdk_client(
    person: Person, storage: Memory, server_url: str = f"{PUBLIC}/mcp", **extra: Any
) -> httpx2.AsyncClient:
    """An HTTP client for ``/mcp`` with the Python SDK's OAuth client as its auth (in-process if
    the person has the app, else over the network)."""
    auth = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="Test client", redirect_uris=[AnyUrl(REDIRECT)], token_endpoint_auth_method="none"
        ),
        storage=storage,
        redirect_handler=person.open,
        callback_handler=person.come_back,
        **extra,
    )
    transport = httpx2.ASGITransport(app=person.app) if person.app is not None else None
    return httpx2.AsyncClient(transport=transport, auth=auth, timeout=30)
