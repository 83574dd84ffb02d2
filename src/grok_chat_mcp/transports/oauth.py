"""``--auth oauth``: an OAuth 2.1 authorization server in front of ``/mcp``, built on the SDK's
``mcp.server.auth`` (metadata, registration, authorize, token and revocation endpoints, bearer
checks), with what the SDK leaves to a server: the store behind it, client id metadata documents,
and the consent page where a user pastes the AceDataCloud token that their calls spend.

Every issued token is bound to a grant; the grant holds the user's AceDataCloud token encrypted
with ``GROK_OAUTH_KEY`` (Fernet). docs/http.md describes the flow and the deployment.
"""

from __future__ import annotations

import hashlib
import html
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlsplit

import httpx
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import build_metadata, cors_middleware, create_auth_routes
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from grok_chat_mcp import logs
from grok_chat_mcp.store.logins import Logins, LoginStoreError

logger = logging.getLogger(__name__)

KEY_VAR = "GROK_OAUTH_KEY"
MAKE_KEY = "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
CONSENT_PATH = "/oauth/consent"
#: Lifetimes, in seconds (docs/http.md says why).
ACCESS_TTL = 3600
REFRESH_TTL = 30 * 24 * 3600
CODE_TTL = 300
CONSENT_TTL = 600
CLIENT_TTL = 365 * 24 * 3600
DOCUMENT_TTL = 600
#: Refused consent submissions: per sign-in request (then it is void), per address and window.
FAILURES_PER_REQUEST = 5
FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW = 900
#: What a pasted AceDataCloud token may look like: printable ASCII without spaces.
TOKEN_LENGTHS = (8, 512)
MAX_FORM_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 16 * 1024


def startup_problem(key: str | None, public_url: str | None) -> str | None:
    """Why ``--auth oauth`` cannot start with this key and public URL, in one line; None if it can."""
    if not public_url:
        return "--auth oauth needs --public-url, the https:// address users reach this server at"
    try:
        validate_public_url(public_url)
    except ValueError as exc:
        return f"--public-url {public_url}: {exc}"
    if not key:
        return (
            f"--auth oauth needs {KEY_VAR}, the Fernet key that encrypts stored tokens; make one: {MAKE_KEY}"
        )
    try:
        from cryptography.fernet import MultiFernet  # noqa: F401
    except ImportError:
        return "--auth oauth needs the cryptography package: pip install 'grok-chat-mcp[oauth]'"
    try:
        cipher(key)
    except ValueError:
        return f"{KEY_VAR} is not a valid Fernet key (32 url-safe base64 bytes); make one: {MAKE_KEY}"
    return None


def validate_public_url(url: str) -> str:
    """``url`` without a trailing slash; https, or http on a loopback host; no path, query or fragment."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("must start with https:// (http:// only on localhost)")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be a scheme and host (and port) only, like https://grok.example.com")
    return url.rstrip("/")


def cipher(key: str) -> Any:
    """A ``MultiFernet`` for ``key``: comma-separated keys, the first encrypts, all decrypt (rotation)."""
    from cryptography.fernet import Fernet, MultiFernet

    keys = [part.strip() for part in key.split(",") if part.strip()]
    if not keys:
        raise ValueError("no key")
    return MultiFernet([Fernet(part) for part in keys])


def digest(token: str) -> str:
    """The store key of a token: the store never holds a usable one."""
    return hashlib.sha256(token.encode()).hexdigest()


class SignedIn(AccessToken):
    """An access token of ours, with the AceDataCloud token of the user who signed in."""

    upstream: SecretStr


def upstream_token(request: object) -> str | None:
    """The AceDataCloud token of the signed-in user of an HTTP request (None if not signed in)."""
    user = getattr(request, "scope", {}).get("user")
    if isinstance(user, AuthenticatedUser) and isinstance(user.access_token, SignedIn):
        token = user.access_token.upstream.get_secret_value()
        logs.remember(token)  # redacted from every log line from now on
        return token
    return None


@dataclass(frozen=True)
class OAuthOptions:
    """What ``--auth oauth`` is started with."""

    public_url: str
    key: str = ""
    #: Documentation linked from the metadata and the consent page.
    docs_url: str = "https://github.com/grok-chat-mcp/grok-chat-mcp/blob/main/docs/http.md"

    @property
    def resource(self) -> str:
        return f"{self.public_url}/mcp"


class Provider(OAuthAuthorizationServerProvider[AuthorizationCode, RefreshToken, SignedIn]):
    """The SDK's ``OAuthAuthorizationServerProvider`` and ``TokenVerifier`` on a :class:`Logins` store."""

    def __init__(
        self,
        options: OAuthOptions,
        logins: Logins,
        clock: Callable[[], float] = time.time,
        fetch: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = options
        self.logins = logins
        self.clock = clock
        self._fernet = cipher(options.key)
        self._fetch = fetch

    # Clients: registered ones, and client id metadata documents.

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        stored = await self.logins.get("client", digest(client_id))
        if stored is not None:
            stored.pop("expires_at", None)
            return OAuthClientInformationFull.model_validate(stored)
        if client_id.startswith("https://"):
            return await self._client_document(client_id)
        return None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None  # the SDK's registration handler sets it
        record = client_info.model_dump(mode="json", exclude_none=True)
        await self.logins.put("client", digest(client_info.client_id), record, CLIENT_TTL)
        logger.info("registered OAuth client %r", client_info.client_name or client_info.client_id)

    async def _client_document(self, url: str) -> OAuthClientInformationFull | None:
        """A client whose id is the https URL of its metadata document (fetched, checked, cached)."""
        if not _public_https(url):
            return None
        try:
            async with httpx.AsyncClient(transport=self._fetch, timeout=5.0, follow_redirects=False) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
            if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"HTTP {response.status_code}, {len(response.content)} bytes")
            document = response.json()
            if not isinstance(document, dict) or document.get("client_id") != url:
                raise ValueError("its client_id is not its own URL")
            document.pop("client_secret", None)
            client = OAuthClientInformationFull.model_validate(
                {**document, "token_endpoint_auth_method": "none", "client_secret": None}
            )
        except (httpx.HTTPError, ValueError, ValidationError) as exc:
            logger.warning("client metadata document %s refused: %s", url, str(exc).splitlines()[0])
            return None
        record = client.model_dump(mode="json", exclude_none=True)
        await self.logins.put("client", digest(url), record, DOCUMENT_TTL)
        return client

    # Authorization: the SDK checked the client, redirect URI and PKCE challenge; the user decides.

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and params.resource.rstrip("/") != self.options.resource:
            raise AuthorizeError(
                "invalid_target", f"this server issues tokens for {self.options.resource} only"
            )
        request_id = secrets.token_urlsafe(24)
        record = {
            "client_id": client.client_id,
            "client_name": client.client_name or "",
            "params": params.model_dump(mode="json"),
            "csrf": secrets.token_urlsafe(32),
            "failures": 0,
        }
        await self.logins.put("consent", request_id, record, CONSENT_TTL)
        return f"{self.options.public_url}{CONSENT_PATH}?request={request_id}"

    async def grant(self, consent: dict[str, Any], token: str) -> str:
        """Bind ``token`` to a new grant and return the redirect that carries its authorization code."""
        params = AuthorizationParams.model_validate(consent["params"])
        grant_id = secrets.token_urlsafe(16)
        encrypted = self._fernet.encrypt(token.encode()).decode()
        await self.logins.put(
            "grant", grant_id, {"client_id": consent["client_id"], "token": encrypted}, REFRESH_TTL
        )
        code = secrets.token_urlsafe(32)
        record = {
            "client_id": consent["client_id"],
            "scopes": params.scopes or [],
            "code_challenge": params.code_challenge,
            "redirect_uri": str(params.redirect_uri),
            "explicit": params.redirect_uri_provided_explicitly,
            "resource": params.resource,
            "grant": grant_id,
        }
        await self.logins.put("code", digest(code), record, CODE_TTL)
        logger.info("signed in a user for OAuth client %r", consent["client_name"] or consent["client_id"])
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        key = digest(authorization_code)
        record = await self.logins.get("code", key)
        if record is None:
            spent = await self.logins.take("spent", key)
            if spent is not None:  # a code used twice: revoke what the first use issued (RFC 9700)
                await self.logins.delete("grant", spent["grant"])
                logger.warning("an authorization code was used twice; revoked the tokens issued for it")
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=record["scopes"],
            expires_at=record["expires_at"],
            client_id=record["client_id"],
            code_challenge=record["code_challenge"],
            redirect_uri=record["redirect_uri"],
            redirect_uri_provided_explicitly=record["explicit"],
            resource=record["resource"],
            subject=record["grant"],
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        key = digest(authorization_code.code)
        record = await self.logins.take("code", key)
        if record is None:
            raise TokenError("invalid_grant", "authorization code was already used")
        await self.logins.put("spent", key, {"grant": record["grant"]}, CODE_TTL)
        return await self._issue(record["client_id"], record["scopes"], record["grant"], record["resource"])

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        record = await self.logins.get("refresh", digest(refresh_token))
        if record is None or await self.logins.get("grant", record["grant"]) is None:
            return None
        return RefreshToken(
            token=refresh_token,
            client_id=record["client_id"],
            scopes=record["scopes"],
            expires_at=int(record["expires_at"]),
            resource=record["resource"],
            subject=record["grant"],
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        record = await self.logins.take("refresh", digest(refresh_token.token))  # rotation: used once
        grant = await self.logins.get("grant", record["grant"]) if record is not None else None
        if record is None or grant is None:
            raise TokenError("invalid_grant", "refresh token was already used or revoked; sign in again")
        grant.pop("expires_at", None)
        await self.logins.put("grant", record["grant"], grant, REFRESH_TTL)  # in use: kept longer
        return await self._issue(record["client_id"], scopes, record["grant"], record["resource"])

    async def _issue(self, client_id: str, scopes: list[str], grant: str, resource: str | None) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        record = {"client_id": client_id, "scopes": scopes, "grant": grant, "resource": resource}
        await self.logins.put("access", digest(access), record, ACCESS_TTL)
        await self.logins.put("refresh", digest(refresh), record, REFRESH_TTL)
        return OAuthToken(
            access_token=access,
            token_type="Bearer",  # noqa: S106 - the scheme's name
            expires_in=ACCESS_TTL,
            scope=" ".join(scopes) or None,
            refresh_token=refresh,
        )

    # Bearer checks (the SDK's ``TokenVerifier``) and revocation.

    async def load_access_token(self, token: str) -> SignedIn | None:
        try:
            record = await self.logins.get("access", digest(token))
            grant = await self.logins.get("grant", record["grant"]) if record is not None else None
        except LoginStoreError as exc:
            logger.error("%s; refusing the request", exc)
            return None
        if record is None or grant is None:
            return None
        from cryptography.fernet import InvalidToken

        try:
            upstream = self._fernet.decrypt(grant["token"].encode()).decode()
        except InvalidToken:
            logger.error("a stored sign-in cannot be decrypted with %s (was the key changed?)", KEY_VAR)
            return None
        return SignedIn(
            token=token,
            client_id=record["client_id"],
            scopes=record["scopes"],
            expires_at=int(record["expires_at"]),
            resource=record["resource"],
            subject=record["grant"],
            upstream=SecretStr(upstream),
        )

    async def verify_token(self, token: str) -> SignedIn | None:
        return await self.load_access_token(token)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        if token.subject is not None:
            await self.logins.delete("grant", token.subject)  # every token of that sign-in
        kind = "refresh" if isinstance(token, RefreshToken) else "access"
        await self.logins.delete(kind, digest(token.token))
        logger.info("revoked a sign-in of OAuth client %r", token.client_id)


def _public_https(url: str) -> bool:
    """A client id URL worth fetching: https, a path, no credentials, not an IP literal of a
    private network (a crafted client id must not make the server probe its own network)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path in ("", "/") or parts.username:
        return False
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return parts.hostname != "localhost"
    return address.is_global


def close_at_shutdown(app: Starlette, logins: Logins) -> None:
    """Close the login store when ``app``'s lifespan ends (after the SDK's session manager)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        try:
            async with inner(app) as state:
                yield state
        finally:
            await logins.aclose()

    app.router.lifespan_context = lifespan


def auth_settings(options: OAuthOptions) -> AuthSettings:
    """What the SDK's ``streamable_http_app`` needs: this server as issuer and as resource."""
    return AuthSettings.model_validate(  # from strings: the issuer keeps its form, no trailing slash
        {
            "issuer_url": options.public_url,
            "resource_server_url": options.resource,
            "service_documentation_url": options.docs_url,
            "client_registration_options": ClientRegistrationOptions(enabled=True),
            "revocation_options": RevocationOptions(enabled=True),
            # Tokens are ours and name one resource; authorize() refuses a request for another.
            "validate_token_resource": False,
        }
    )


def routes(provider: Provider) -> list[Route]:
    """The SDK's authorization-server routes (metadata advertising client id metadata documents),
    and the consent page."""
    auth = auth_settings(provider.options)
    sdk_routes = create_auth_routes(
        provider,
        auth.issuer_url,
        auth.service_documentation_url,
        auth.client_registration_options,
        auth.revocation_options,
    )
    metadata = build_metadata(
        auth.issuer_url,
        auth.service_documentation_url,
        auth.client_registration_options or ClientRegistrationOptions(),
        auth.revocation_options or RevocationOptions(),
    )
    metadata.client_id_metadata_document_supported = True
    well_known = Route(
        "/.well-known/oauth-authorization-server",
        endpoint=cors_middleware(MetadataHandler(metadata).handle, ["GET", "OPTIONS"]),
        methods=["GET", "OPTIONS"],
    )
    consent = Consent(provider)
    page = RequestBodyLimitMiddleware(consent, MAX_FORM_BYTES)
    kept = [route for route in sdk_routes if getattr(route, "path", "") != well_known.path]
    return [well_known, *kept, Route(CONSENT_PATH, endpoint=page, methods=["GET", "POST"])]


_TEMPLATE = Template(
    resources.files("grok_chat_mcp.transports").joinpath("consent.html").read_text(encoding="utf-8")
)


class Consent:
    """The sign-in page: GET shows it, POST takes the pasted AceDataCloud token (or a refusal)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.logins = provider.logins
        self._secure = provider.options.public_url.startswith("https://")

    def _cookie(self, request_id: str) -> str:
        """The cookie that carries a sign-in request's CSRF value (one per request: two tabs work)."""
        name = f"grok-consent-{digest(request_id)[:12]}"
        return f"__Host-{name}" if self._secure else name

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        try:
            if request.method == "POST":
                response = await self._post(request)
            else:
                response = await self._get(request)
        except LoginStoreError as exc:
            logger.error("%s", exc)
            response = self._message(
                503, "Sign-in is unavailable", "The server cannot reach its store. Try again shortly."
            )
        await response(scope, receive, send)

    async def _get(self, request: Request) -> Response:
        request_id = request.query_params.get("request", "")
        consent = await self.logins.get("consent", request_id) if request_id else None
        if consent is None:
            return self._expired()
        return self._page(request_id, consent, error="")

    async def _post(self, request: Request) -> Response:
        address = request.client.host if request.client else "unknown"
        if await self.logins.count("failures", address, FAILURE_WINDOW, step=0) >= FAILURES_PER_ADDRESS:
            return self._message(
                429,
                "Too many attempts",
                "Too many failed sign-ins from your address. Wait 15 minutes, then connect again "
                "from your app.",
            )
        form = await request.form()
        request_id = str(form.get("request", ""))
        consent = await self.logins.get("consent", request_id) if request_id else None
        if consent is None:
            await self._failed(address)
            return self._expired()
        sent = str(form.get("csrf", ""))
        cookie = request.cookies.get(self._cookie(request_id), "")
        if not (
            sent
            and secrets.compare_digest(sent, consent["csrf"])
            and secrets.compare_digest(cookie, consent["csrf"])
        ):
            await self._failed(address)
            return self._message(
                403,
                "This form could not be verified",
                "The sign-in form was not sent from this page in this browser (its security value is missing "
                "or wrong). Nothing was saved. Go back to your app and connect again.",
            )
        if form.get("decision") == "deny":
            await self.logins.delete("consent", request_id)
            params = AuthorizationParams.model_validate(consent["params"])
            target = construct_redirect_uri(
                str(params.redirect_uri),
                error="access_denied",
                error_description="the user declined",
                state=params.state,
            )
            return RedirectResponse(target, status_code=303)
        token = str(form.get("token", "")).strip()
        logs.remember(token)
        if not _plausible(token):
            await self._failed(address)
            consent["failures"] += 1
            if consent["failures"] >= FAILURES_PER_REQUEST:
                await self.logins.delete("consent", request_id)
                return self._message(
                    429,
                    "Too many attempts",
                    "This sign-in was cancelled after several invalid tokens. Connect again from your app.",
                )
            expires_at = consent.pop("expires_at")
            await self.logins.put("consent", request_id, consent, expires_at - self.provider.clock())
            return self._page(
                request_id,
                consent,
                error="That is not an AceDataCloud token: paste the whole token, without spaces "
                "(it is shown on platform.acedata.cloud under Credentials).",
                status=400,
            )
        taken = await self.logins.take("consent", request_id)  # one sign-in per request, even if sent twice
        if taken is None:
            return self._expired()
        return RedirectResponse(await self.provider.grant(taken, token), status_code=303)

    async def _failed(self, address: str) -> None:
        await self.logins.count("failures", address, FAILURE_WINDOW)

    def _page(self, request_id: str, consent: dict[str, Any], *, error: str, status: int = 200) -> Response:
        params = consent["params"]
        redirect = urlsplit(str(params["redirect_uri"]))
        options = self.provider.options
        values = {
            "server": html.escape(urlsplit(options.public_url).netloc),
            "client": html.escape(consent["client_name"] or "An MCP client"),
            "client_id": html.escape(consent["client_id"]),
            "redirect": html.escape(
                f"{redirect.scheme}://{redirect.netloc}" if redirect.netloc else redirect.scheme + ":"
            ),
            "request": html.escape(request_id),
            "csrf": html.escape(consent["csrf"]),
            "error": f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
            "docs": html.escape(options.docs_url),
        }
        response = self._html(status, _TEMPLATE.substitute(values))
        response.set_cookie(
            self._cookie(request_id),
            consent["csrf"],
            max_age=CONSENT_TTL,
            path="/",
            secure=self._secure,
            httponly=True,
            samesite="strict",
        )
        return response

    def _expired(self) -> Response:
        return self._message(
            400,
            "This sign-in link has expired",
            "The link was already used, or is older than 10 minutes. Go back to your app and connect again.",
        )

    def _message(self, status: int, title: str, text: str) -> Response:
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width'>"
            f"<title>{html.escape(title)}</title><style>body{{font:16px/1.5 system-ui,sans-serif;"
            "max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2328}</style>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></html>"
        )
        return self._html(status, body)

    @staticmethod
    def _html(status: int, body: str) -> Response:
        return Response(
            body,
            status_code=status,
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": _CSP,
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin",  # "no-referrer" makes Chrome send "Origin: null"
                "X-Content-Type-Options": "nosniff",
            },
        )


#: No script, no framing (clickjacking), inline styles only.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"


def _plausible(token: str) -> bool:
    low, high = TOKEN_LENGTHS
    return low <= len(token) <= high and all("!" <= ch <= "~" for ch in token)
