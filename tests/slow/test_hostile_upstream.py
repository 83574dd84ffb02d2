"""Hostile upstream networks (issue 27), on both event loops, through the client the server builds
(``make_http_client``, httpx's own transport): bytes sent before the TLS handshake, and a host
whose first address is dead."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from standin.upstream import completion

from grok_chat_mcp.config import Settings
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.request import GrokRequest
from grok_chat_mcp.upstream.client import GrokClient, make_http_client
from tests.conftest import HELLO, TOKEN

ROOT = Path(__file__).resolve().parents[2]
LOOPS = [
    pytest.param({"use_uvloop": False}, id="asyncio"),
    pytest.param(
        {"use_uvloop": True},
        id="uvloop",
        marks=pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not on Windows"),
    ),
]
pytestmark = pytest.mark.anyio


@pytest.fixture(params=LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return ("asyncio", request.param)


def http_json(data: dict[str, Any]) -> bytes:
    body = json.dumps(data).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def read_request(connection: socket.socket) -> bool:
    """Reads one request (Content-Length framing, as the client sends); False at the end."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = connection.recv(65536)
        if not more:
            return False
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        more = connection.recv(65536)
        if not more:
            return False
        body += more
    return True


# --- bytes before the TLS handshake are never the answer ------------------------------------------

INJECTED = http_json(completion("grok-4.3", "INJECTED"))


class TlsUpstream:
    """An HTTPS upstream on 127.0.0.1 that may write ``first`` on each connection before its TLS
    handshake (an on-path attacker, or a broken middlebox), then answers over TLS."""

    def __init__(self, tls: ssl.SSLContext, first: bytes) -> None:
        self.tls = tls
        self.first = first
        self.listener = socket.create_server(("127.0.0.1", 0))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.listener.getsockname()[1]}"

    def __enter__(self) -> TlsUpstream:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                if self.first:
                    connection.sendall(self.first)
                with self.tls.wrap_socket(connection, server_side=True) as secure:
                    while read_request(secure):
                        secure.sendall(http_json(completion("grok-4.3", "real answer")))
            except OSError:
                return  # the client refused the handshake


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def trusted(authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client trusts the test authority the way a user's does: ``SSL_CERT_FILE``."""
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


async def outcomes(url: str, calls: int, rounds: int) -> list[str]:
    """The content of each call's answer, or its error's category; ``calls`` at once, ``rounds`` times."""
    settings = Settings(api_token=TOKEN, base_url=url, max_retries=0, timeout=10.0, connect_timeout=10.0)
    seen: list[str] = []

    async def one(grok: GrokClient) -> None:
        try:
            answer = await grok.complete(GrokRequest.of({"messages": HELLO}))
            seen.append(answer["choices"][0]["message"]["content"])
        except GrokError as exc:
            seen.append(exc.category)

    async with make_http_client(settings) as http:
        grok = GrokClient(http, settings)
        for _ in range(rounds):
            async with anyio.create_task_group() as group:
                for _ in range(calls):
                    group.start_soon(one, grok)
    return seen


@pytest.mark.usefixtures("trusted")
async def test_a_tls_upstream_answers_on_both_loops(server_tls: ssl.SSLContext) -> None:
    """The control: the same upstream without the injection answers every call over TLS."""
    with TlsUpstream(server_tls, b"") as upstream:
        assert await outcomes(upstream.url, calls=8, rounds=2) == ["real answer"] * 16


@pytest.mark.usefixtures("trusted")
async def test_bytes_before_the_tls_handshake_are_never_the_answer(server_tls: ssl.SSLContext) -> None:
    """The old network backend on uvloop returned the injected response for 71 of 80 such calls
    (8 at once); a plaintext response before the handshake must fail the call, every time."""
    with TlsUpstream(server_tls, INJECTED) as upstream:
        seen = await outcomes(upstream.url, calls=8, rounds=10)
    assert "INJECTED" not in seen
    assert seen == ["Network error"] * 80


# --- happy eyeballs: a dead first address costs a quarter of a second, not the connect timeout ---

UNSHARE = shutil.which("unshare")


def in_private_hosts(hosts: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Runs ``command`` in a mount namespace of its own where /etc/hosts reads ``hosts`` (nothing
    outside it changes): the only offline way to give a name two addresses that every resolver,
    libuv's included, returns."""
    assert UNSHARE is not None
    script = 'printf "%s" "$1" > "$2" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'
    hosts_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"grok-hosts-{os.getpid()}"
    namespace = [UNSHARE, "--mount"] if os.geteuid() == 0 else [UNSHARE, "--map-root-user", "--mount"]
    try:
        return subprocess.run(
            [*namespace, "sh", "-c", script, "sh", hosts, str(hosts_file), *command],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        )  # fmt: skip
    finally:
        hosts_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def private_hosts() -> None:
    if sys.platform != "linux" or UNSHARE is None:
        pytest.skip("needs Linux and unshare (a mount namespace for a private /etc/hosts)")
    probe = in_private_hosts("127.0.0.1 probe.test\n", "getent", "hosts", "probe.test")
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here (unshare: {probe.stderr.strip()[:200]})")


@pytest.mark.usefixtures("private_hosts")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_dead_first_address_falls_through_to_the_next_promptly(loop: str) -> None:
    """``upstream.test`` resolves to two loopback addresses; the first drops every SYN (its
    listener's queue is full), the second answers. The old backend on uvloop waited 31 s."""
    if loop == "uvloop" and sys.platform == "win32":
        pytest.skip("uvloop is not on Windows")
    hosts = "127.0.0.1 upstream.test\n127.0.0.2 upstream.test\n"
    done = in_private_hosts(hosts, sys.executable, "-m", "tests.slow.happy_eyeballs", loop, "upstream.test")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["dead_first"], report  # the set-up held: the first address dropped the SYN
    assert report["answer"] == "live", report
    assert report["seconds"] < 5.0, report  # the connect timeout is 20 s


# --- a certificate setting that cannot work is one error that says what to fix ----------------------


async def test_an_unreadable_ssl_cert_file_fails_each_call_with_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
    settings = Settings(api_token=TOKEN, max_retries=0)
    async with make_http_client(settings) as http:  # built without raising
        with pytest.raises(GrokError) as caught:
            await GrokClient(http, settings).complete(GrokRequest.of({"messages": HELLO}))
    assert "SSL_CERT_FILE" in str(caught.value) and TOKEN not in str(caught.value)
