"""``--auth oauth`` as users meet it, in-process: the Python SDK's OAuth client from the first 401
to a tool call that spends the signed-in user's own token, and every hostile case refused."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
import respx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from standin.upstream import Upstream
from starlette.types import ASGIApp

from grok_chat_mcp.store.logins import SQLiteLogins, open_logins
from grok_chat_mcp.transports import oauth
from tests.conftest import HELLO
from tests.server.oauth_flow import (
    KEY,
    PUBLIC,
    REDIRECT,
    Clock,
    Memory,
    Person,
    browser,
    code_of,
    form_values,
    oauth_app,
    sdk_client,
    sign_in,
)

pytestmark = pytest.mark.anyio
ALICE = "alice-acedata-token-0001"
BOB = "bob-acedata-token-000002"


async def call(app: ASGIApp, person: Person, storage: Memory) -> Any:
    async with (
        sdk_client(person, storage) as http,
        Client(streamable_http_client(f"{PUBLIC}/mcp", http_client=http)) as client,
    ):
        return await client.call_tool("grok_chat_completions", {"messages": HELLO})


async def register(tab: httpx2.AsyncClient, redirect: str = REDIRECT) -> str:
    response = await tab.post(
        "/register",
        json={"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": "Raw"},
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_url(client_id: str, challenge: str, redirect: str = REDIRECT) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
        "resource": f"{PUBLIC}/mcp",
    }
    return f"{PUBLIC}/authorize?{urlencode(query)}"


async def exchange(tab: httpx2.AsyncClient, client_id: str, code: str, verifier: str) -> httpx2.Response:
    return await tab.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
        },
    )


async def tokens_for(app: ASGIApp, token: str = ALICE) -> tuple[str, dict[str, Any]]:
    """A raw client's sign-in: (client_id, token response)."""
    async with browser(app) as tab:
        client_id = await register(tab)
        verifier, challenge = pkce()
        code = code_of(await sign_in(app, authorize_url(client_id, challenge), token)).code
        response = await exchange(tab, client_id, code, verifier)
        assert response.status_code == 200, response.text
        return client_id, response.json()


async def tools_list(app: ASGIApp, access_token: str) -> httpx2.Response:
    async with browser(app) as tab:
        return await tab.post(
            "/mcp",
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": "application/json, text/event-stream",
                "Mcp-Protocol-Version": "2025-11-25",
            },
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )


# The flow.


async def test_sdk_client_signs_in_and_spends_the_pasted_token(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app:
        person, storage = Person(app, ALICE), Memory()
        result = await call(app, person, storage)
    assert not result.is_error, result
    assert stand_in.requests[-1].headers["Authorization"] == f"Bearer {ALICE}"
    assert storage.client is not None and storage.client.client_id  # registered dynamically
    assert len(person.urls) == 1 and "code_challenge_method=S256" in person.urls[0]


async def test_discovery_answers_as_the_rfcs_say(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        first = await tab.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        resource = await tab.get("/.well-known/oauth-protected-resource/mcp")
        server = await tab.get("/.well-known/oauth-authorization-server")
    assert first.status_code == 401
    assert (
        f'resource_metadata="{PUBLIC}/.well-known/oauth-protected-resource/mcp"'
        in first.headers["WWW-Authenticate"]
    )
    assert resource.json()["resource"] == f"{PUBLIC}/mcp"
    assert [url.rstrip("/") for url in resource.json()["authorization_servers"]] == [PUBLIC]
    metadata = server.json()
    assert metadata["issuer"] == PUBLIC
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["client_id_metadata_document_supported"] is True
    assert metadata["registration_endpoint"] == f"{PUBLIC}/register"
    assert metadata["revocation_endpoint"] == f"{PUBLIC}/revoke"
    assert set(metadata["grant_types_supported"]) == {"authorization_code", "refresh_token"}


async def test_client_id_metadata_document(stand_in: Upstream) -> None:
    url = "https://client.example/oauth/client.json"
    document = {
        "client_id": url,
        "client_name": "Document client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    with respx.mock(assert_all_called=True) as mock:
        mock.route(host="127.0.0.1").pass_through()
        fetched = mock.get(url).respond(200, json=document)
        async with oauth_app(stand_in.url("ok"), Clock()) as app:
            person, storage = Person(app, ALICE), Memory()
            async with (
                sdk_client(person, storage, client_metadata_url=url) as http,
                Client(streamable_http_client(f"{PUBLIC}/mcp", http_client=http)) as client,
            ):
                result = await client.call_tool("grok_chat_completions", {"messages": HELLO})
    assert not result.is_error, result
    assert storage.client is not None and storage.client.client_id == url  # no registration
    assert fetched.called
    assert stand_in.requests[-1].headers["Authorization"] == f"Bearer {ALICE}"


async def test_a_document_that_names_another_client_is_refused(stand_in: Upstream) -> None:
    url = "https://client.example/oauth/client.json"
    with respx.mock() as mock:
        mock.get(url).respond(200, json={"client_id": "https://evil.example/x", "redirect_uris": [REDIRECT]})
        async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
            _, challenge = pkce()
            response = await tab.get(authorize_url(url, challenge))
    assert response.status_code == 400
    assert "client" in response.text.lower()


# Hostile cases.


async def test_wrong_pkce_verifier_is_refused(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        client_id = await register(tab)
        verifier, challenge = pkce()
        code = code_of(await sign_in(app, authorize_url(client_id, challenge), ALICE)).code
        wrong = await exchange(tab, client_id, code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "invalid_grant", "error_description": "incorrect code_verifier"}
    assert ALICE not in wrong.text


async def test_a_reused_code_is_refused_and_revokes_what_it_issued(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        client_id = await register(tab)
        verifier, challenge = pkce()
        code = code_of(await sign_in(app, authorize_url(client_id, challenge), ALICE)).code
        first = await exchange(tab, client_id, code, verifier)
        second = await exchange(tab, client_id, code, verifier)
        after = await tools_list(app, first.json()["access_token"])
    assert first.status_code == 200
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert after.status_code == 401  # the tokens of the first use are revoked (RFC 9700 4.5)


async def test_redirect_uri_differing_by_one_character_is_refused(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        client_id = await register(tab)
        _, challenge = pkce()
        near = REDIRECT[:-1] + "x"  # .../callbacx
        response = await tab.get(authorize_url(client_id, challenge, near))
    assert response.status_code == 400
    assert "location" not in response.headers  # never sent to an unregistered address
    assert response.json()["error"] == "invalid_request"
    assert "not registered" in response.json()["error_description"]


async def test_expired_access_token_is_refused_and_refresh_rotates(stand_in: Upstream) -> None:
    clock = Clock()
    async with oauth_app(stand_in.url("ok"), clock) as app, browser(app) as tab:
        client_id, tokens = await tokens_for(app)
        assert (await tools_list(app, tokens["access_token"])).status_code == 200
        clock.now += oauth.ACCESS_TTL + 1
        expired = await tools_list(app, tokens["access_token"])
        refresh = {"grant_type": "refresh_token", "client_id": client_id}
        renewed = await tab.post("/token", data={**refresh, "refresh_token": tokens["refresh_token"]})
        again = await tab.post("/token", data={**refresh, "refresh_token": tokens["refresh_token"]})
        fresh = await tools_list(app, renewed.json()["access_token"])
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    assert renewed.status_code == 200 and renewed.json()["refresh_token"] != tokens["refresh_token"]
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # rotated: used once
    assert fresh.status_code == 200


async def test_revoked_token_is_refused_with_its_refresh_token(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        client_id, tokens = await tokens_for(app)
        # The SDK's revocation handler needs the client_secret field, empty for a public client.
        form = {"client_id": client_id, "client_secret": "", "token": tokens["access_token"]}
        revoked = await tab.post("/revoke", data=form)
        after = await tools_list(app, tokens["access_token"])
        refresh = await tab.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "client_id": client_id,
                "refresh_token": tokens["refresh_token"],
            },
        )
    assert revoked.status_code == 200
    assert after.status_code == 401
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_each_user_spends_only_their_own_token(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app:
        alice, bob = Person(app, ALICE), Person(app, BOB)
        alice_storage, bob_storage = Memory(), Memory()
        for person, storage in ((alice, alice_storage), (bob, bob_storage), (alice, alice_storage)):
            result = await call(app, person, storage)
            assert not result.is_error
        seen = [request.headers["Authorization"] for request in stand_in.requests]
        assert bob_storage.tokens is not None
        bob_access = bob_storage.tokens.access_token
        bob_again = await call(app, Person(app, "never-used-token-00000"), bob_storage)
    assert seen == [f"Bearer {ALICE}", f"Bearer {BOB}", f"Bearer {ALICE}"]
    assert not bob_again.is_error  # Bob's stored sign-in, not whoever is at the keyboard
    assert stand_in.requests[-1].headers["Authorization"] == f"Bearer {BOB}"
    assert bob_access not in {ALICE, BOB}


async def test_consent_post_without_csrf_is_refused_and_saves_nothing(stand_in: Upstream) -> None:
    clock = Clock()
    async with oauth_app(stand_in.url("ok"), clock) as app, browser(app) as tab:
        client_id = await register(tab)
        _, challenge = pkce()
        without = await sign_in(app, authorize_url(client_id, challenge), ALICE, csrf="<omit>")
        forged = await sign_in(app, authorize_url(client_id, challenge), ALICE, csrf="forged-value")
        # The right value, from a browser without the page's cookie (a cross-site form post).
        page = await tab.get((await tab.get(authorize_url(client_id, challenge))).headers["location"])
        tab.cookies.clear()
        no_cookie = await tab.post("/oauth/consent", data={**form_values(page.text), "token": ALICE})
    for refused in (without, forged, no_cookie):
        assert refused.status_code == 403
        assert "could not be verified" in refused.text
        assert ALICE not in refused.text and "location" not in refused.headers


async def test_failed_attempts_are_limited(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        client_id = await register(tab)
        _, challenge = pkce()
        to_consent = await tab.get(authorize_url(client_id, challenge))
        fields = form_values((await tab.get(to_consent.headers["location"])).text)
        answers = [
            await tab.post("/oauth/consent", data={**fields, "token": "not a token"})
            for _ in range(oauth.FAILURES_PER_REQUEST)
        ]
        late = await tab.post("/oauth/consent", data={**fields, "token": ALICE})
        for _ in range(oauth.FAILURES_PER_ADDRESS):
            await tab.post("/oauth/consent", data={"request": "made-up", "csrf": "x", "token": ALICE})
        locked = await sign_in(app, authorize_url(client_id, challenge), ALICE)
    assert [a.status_code for a in answers] == [400] * (oauth.FAILURES_PER_REQUEST - 1) + [429]
    assert "not an AceDataCloud token" in answers[0].text
    assert all("not a token" not in answer.text for answer in answers)  # what was pasted is not echoed
    assert late.status_code == 400 and "expired" in late.text  # that sign-in request is void
    assert locked.status_code == 429 and "Too many" in locked.text


async def test_declining_returns_access_denied(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        client_id = await register(tab)
        _, challenge = pkce()
        declined = await sign_in(app, authorize_url(client_id, challenge), "", decision="deny")
    assert declined.status_code == 303
    assert declined.headers["location"].startswith(REDIRECT + "?error=access_denied")
    assert "state=st-1" in declined.headers["location"]


async def test_a_token_for_another_resource_is_not_issued(stand_in: Upstream) -> None:
    async with oauth_app(stand_in.url("ok"), Clock()) as app, browser(app) as tab:
        client_id = await register(tab)
        _, challenge = pkce()
        url = authorize_url(client_id, challenge).replace("%2Fmcp", "%2Fother")
        response = await tab.get(url)
    assert response.status_code == 302
    assert "error=invalid_target" in response.headers["location"]


async def test_the_pasted_token_never_leaks(
    stand_in: Upstream, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    logins = SQLiteLogins(tmp_path / "store.db", clock)
    seen: list[str] = []
    pasted = "used-up-token"  # the stand-in answers 403 used_up for it
    async with oauth_app(stand_in.url("ok"), clock, logins) as app, browser(app) as tab:
        client_id = await register(tab)
        verifier, challenge = pkce()
        answer = await sign_in(app, authorize_url(client_id, challenge), pasted)
        token = await exchange(tab, client_id, code_of(answer).code, verifier)
        seen += [answer.text, json.dumps(dict(answer.headers)), token.text]
        person, storage = Person(app, pasted), Memory()
        result = await call(app, person, storage)  # upstream refuses the token: an error result
        seen.append(result.model_dump_json())
    await logins.aclose()
    assert stand_in.requests[-1].headers["Authorization"] == f"Bearer {pasted}"
    assert result.is_error
    assert "balance" in result.content[0].text.lower()
    for text in [*seen, caplog.text]:
        assert pasted not in text
    for path in tmp_path.glob("store.db*"):  # the file and its WAL
        assert pasted.encode() not in path.read_bytes()


async def test_startup_problems_are_one_line() -> None:
    key = oauth.startup_problem(None, "https://grok.example.com")
    bad = oauth.startup_problem("not-a-key", "https://grok.example.com")
    assert key is not None and "GROK_OAUTH_KEY" in key and "Fernet.generate_key()" in key
    assert bad is not None and "not a valid Fernet key" in bad
    assert "--public-url" in (oauth.startup_problem("k", None) or "")
    assert "https://" in (oauth.startup_problem("k", "http://grok.example.com") or "")
    assert oauth.startup_problem(KEY, "https://grok.example.com") is None


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_replicas_share_sign_ins(
    stand_in: Upstream, tmp_path: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    """Signed in through one replica, served by another: they share GROK_STORE."""
    clock = Clock()
    store = request.getfixturevalue("redis_url") if backend == "redis" else f"sqlite:///{tmp_path}/shared.db"
    async with (
        oauth_app(stand_in.url("ok"), clock, open_logins(store, clock)) as first,
        oauth_app(stand_in.url("ok"), clock, open_logins(store, clock)) as second,
    ):
        person, storage = Person(first, ALICE), Memory()
        assert not (await call(first, person, storage)).is_error
        on_second = await call(second, Person(second, "never-used-token-00000"), storage)
    assert not on_second.is_error
    assert [r.headers["Authorization"] for r in stand_in.requests] == [f"Bearer {ALICE}"] * 2
