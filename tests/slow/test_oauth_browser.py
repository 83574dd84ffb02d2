"""The consent page in a real browser (Debian's chromium, driven by Playwright, JavaScript off):
a person pastes their AceDataCloud token, allows, and the app's code spends that token."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from standin.upstream import Upstream

from tests.conftest import HELLO
from tests.slow.test_oauth_clients import ALICE, oauth_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REDIRECT = "http://127.0.0.1:3999/callback"
#: ``GROK_SCREENSHOT=1`` writes the screenshot shown in docs/http.md.
DOCS_SCREENSHOT = ROOT / "docs" / "oauth-consent.png"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)


def test_a_person_signs_in_on_the_consent_page(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    with Upstream() as upstream, oauth_server(upstream, tmp_path) as public:
        registered = httpx.post(
            f"{public}/register",
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "client_name": "ChatGPT",
            },
        ).json()
        query = {
            "response_type": "code", "client_id": registered["client_id"], "redirect_uri": REDIRECT,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": "s1",
        }  # fmt: skip
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_context(
                java_script_enabled=False, viewport={"width": 720, "height": 1000}
            ).new_page()
            page.route(f"{REDIRECT}**", lambda route: route.fulfill(body="back in the app"))
            page.goto(f"{public}/authorize?{urlencode(query)}")
            assert page.title().startswith("Sign in to Grok Chat")
            assert page.get_by_text("ChatGPT wants to use Grok through this server").is_visible()
            assert page.get_by_text("What the token is used for").is_visible()
            assert page.get_by_text("Where it is kept").is_visible()
            page.screenshot(path=str(tmp_path / "consent.png"), full_page=True)
            if os.environ.get("GROK_SCREENSHOT") == "1":
                shutil.copy(tmp_path / "consent.png", DOCS_SCREENSHOT)
            page.get_by_label("AceDataCloud API token").fill(ALICE)
            with page.expect_request(lambda request: request.url.startswith(REDIRECT)) as back:
                page.get_by_role("button", name="Allow and sign in").click()
            returned = back.value.url
            browser.close()
        code = parse_qs(urlsplit(returned).query)["code"][0]
        tokens = httpx.post(
            f"{public}/token",
            data={
                "grant_type": "authorization_code", "client_id": registered["client_id"], "code": code,
                "code_verifier": verifier, "redirect_uri": REDIRECT,
            },
        ).json()  # fmt: skip
        call = httpx.post(
            f"{public}/mcp",
            headers={
                "Authorization": f"Bearer {tokens['access_token']}",
                "Accept": "application/json, text/event-stream",
                "Mcp-Protocol-Version": "2025-11-25",
            },
            json={
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "grok_chat_completions", "arguments": {"messages": HELLO}},
            },
            timeout=30,
        )  # fmt: skip
        received = [request.headers.get("Authorization") for request in upstream.requests]
    assert call.status_code == 200, call.text
    assert '"isError":false' in call.text.replace(" ", "")
    assert received == [f"Bearer {ALICE}"]
    assert (tmp_path / "consent.png").stat().st_size > 10_000
