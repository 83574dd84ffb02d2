"""A stand-in for AceDataCloud on 127.0.0.1, for end-to-end tests and benchmarks.

It answers like the real API (the facts and their sources are in ``standin/README.md``): every request
is checked as upstream checks it (token, model, the arguments each model rejects, ``name`` on
non-user messages) and refused with the real error bodies; ``grok-4`` and ``grok-3`` are answered by
grok-4.3 (the response's ``model`` says so); usage carries ``completion_tokens_details.reasoning_tokens``
and ``cost_in_usd_ticks`` as xAI reports them; streams use AceDataCloud's documented
format (spaced JSON, ``foaicmpl-`` ids, empty ``data:`` lines, zero usage on the finish chunk, then
the real usage, with ``input_tokens``/``output_tokens``, on a last chunk with ``choices: []``).

The scenario is the first path segment of the base URL, so each server process picks its
behaviour through ``ACEDATACLOUD_API_BASE_URL``:

- ``/ok``: an instant JSON completion; ``/slow<ms>``: the same after a delay;
- ``/tool-call``: a completion that calls the function ``get_weather``;
- ``/big<kib>``: a completion whose content is that many KiB;
- ``/sse``: an event stream of a short sentence, a chunk every ``/sse<ms>`` milliseconds (default 50);
- ``/long<ms>``: an event stream of 400 chunks, one every ``<ms>`` milliseconds (for cancelling);
- ``/truncated``: an event stream that stops without ``[DONE]``;
- ``/hang``: accepts and never answers; ``/status<code>``: an AceDataCloud error body;
- ``/html``: a 502 HTML proxy page; ``/echo-token``: a 401 whose message echoes the bearer token.

Tokens that pick an upstream verdict: ``used-up-token`` (403 ``used_up``), ``disabled-token``
(403 ``disabled``), ``expired-token`` (401 ``token_expired``), ``bad-token`` (401 ``invalid_token``),
``other-service-token`` (400 ``token_mismatched``); no Authorization header gives 400 ``no_token``.

A request whose ``user`` is ``scenario:<name>`` gets that scenario instead, whatever the URL.
It also serves as a forward proxy for ``http://`` URLs (a request naming the whole URL), so a
test can check that a proxy from the environment is used.

Every request is recorded (path, headers, body) and every dropped connection is noted, so tests
can assert what reached upstream and that a cancelled call closed its connection.

``Upstream.rejects`` adds arguments a model refuses (``{"grok-4.7": {"reasoning_effort"}}``), for a
test of the self-correcting path: upstream rejecting what the capability table believes accepted.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SSE_WORDS = ["Hello", " from", " a", " streamed", " Grok", " answer", "."]
#: What AceDataCloud serves (its chat-model enum, late 2026).
MODELS = ("grok-4.7", "grok-4.5", "grok-4", "grok-3")
#: Retired names xAI answers with another model (migration guide of 2026-05-15).
SERVED_AS = {"grok-4": "grok-4.3", "grok-3": "grok-4.3"}
#: Every served model is a reasoning model: these are refused.
REASONING_REJECTS = ("presence_penalty", "frequency_penalty", "stop")
EFFORTS = {
    "grok-4.7": ("low", "medium", "high", "xhigh"),
    "grok-4.5": ("low", "medium", "high", "xhigh"),  # xhigh is served as high (xAI reasoning guide)
    "grok-4.3": ("none", "low", "medium", "high"),
}
#: Models whose 400 uses the newer wording "Model X does not support parameter Y.".
NEW_WORDING = ("grok-4.7", "grok-4.5")
TOKEN_VERDICTS = {
    "used-up-token": (403, "used_up", "Your balance is used up, please recharge."),
    "disabled-token": (403, "disabled", "The token has been disabled."),
    "expired-token": (401, "token_expired", "The token has expired."),
    "bad-token": (401, "invalid_token", "The token is invalid."),
    "other-service-token": (400, "token_mismatched", "The token does not match this API."),
}
#: xAI's usage: reasoning tokens apart, and the cost in ticks (10^10 ticks = 1 USD; this is $0.0038).
XAI_USAGE: dict[str, Any] = {
    "prompt_tokens": 5,
    "completion_tokens": 7,
    "total_tokens": 12,
    "completion_tokens_details": {"reasoning_tokens": 20},
    "cost_in_usd_ticks": 37756000,
}
#: xAI's tiers (docs.x.ai priority-processing): ``default``, and ``priority`` billed at twice the
#: price; the response says which tier served it. ``auto`` is not in xAI's list: served as default.
SERVICE_TIERS = {"default": "default", "priority": "priority", "auto": "default"}
#: AceDataCloud's stream usage adds ``input_tokens`` / ``output_tokens``.
USAGE: dict[str, Any] = {**XAI_USAGE, "input_tokens": 5, "output_tokens": 7}


def completion(model: str, content: str, service_tier: str | None = None) -> dict[str, Any]:
    """A ``chat.completion`` as upstream returns it; ``model`` is the one that answered.

    With ``service_tier``, the response names the tier that served it, and priority costs twice.
    """
    data: dict[str, Any] = {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": 1764000000,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": XAI_USAGE,
    }
    tier = SERVICE_TIERS.get(service_tier or "")
    if tier is not None:
        data["service_tier"] = tier
    if tier == "priority":
        data["usage"] = {**XAI_USAGE, "cost_in_usd_ticks": 2 * XAI_USAGE["cost_in_usd_ticks"]}
    return data


def served_by(model: str) -> str:
    """The model that answers ``model``."""
    return SERVED_AS.get(model, model)


def tool_call_completion(model: str) -> dict[str, Any]:
    """A completion whose answer is a call of the first tool (xAI sends the call whole)."""
    data = completion(model, "")
    data["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ],
    }
    data["choices"][0]["finish_reason"] = "tool_calls"
    return data


def chunk(
    model: str, delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, Any] | None = None
) -> bytes:
    """One event as AceDataCloud sends it: spaced JSON, ``foaicmpl-`` id; ``delta=None``: no choices."""
    data: dict[str, Any] = {
        "id": "foaicmpl-local",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": model,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def refusal(
    headers: Any, body: dict[str, Any], rejects: dict[str, set[str]] | None = None
) -> tuple[int, dict[str, Any]] | None:
    """The error the real API gives this request, or None if it would be served.

    ``rejects``: more arguments each model refuses (see ``Upstream.rejects``).
    """
    authorization = str(headers.get("Authorization", ""))
    if not authorization.startswith("Bearer ") or not authorization[7:].strip():
        return 400, acedata_error("no_token", "The token is missing.")
    verdict = TOKEN_VERDICTS.get(authorization[7:].strip())
    if verdict is not None:
        return verdict[0], acedata_error(verdict[1], verdict[2])
    model = str(body.get("model", ""))
    if model not in MODELS:
        return 400, acedata_error("bad_request", f"The model `{model}` is not supported.")
    tier = body.get("service_tier")
    if tier is not None and tier not in SERVICE_TIERS:
        return 400, acedata_error("bad_request", f"Invalid service_tier `{tier}`.")
    for key in (*REASONING_REJECTS, *sorted((rejects or {}).get(model, ()))):
        if key in body:
            return 400, xai_rejection(model, camel(key))
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS.get(served_by(model), ()):
        return 400, xai_rejection(model, "reasoningEffort")
    for message in body.get("messages") or ():
        if isinstance(message, dict) and "name" in message and message.get("role") != "user":
            return 400, {
                "code": "Client specified an invalid argument",
                "error": "Only messages of role 'user' can have a name.",
            }
    return None


def acedata_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "trace_id": "trace-local-1"}


def camel(name: str) -> str:
    """``presence_penalty`` -> ``presencePenalty``, as xAI names arguments in its errors."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def xai_rejection(model: str, argument: str) -> dict[str, Any]:
    """xAI's body, passed through: the older wording, and the newer one of grok-4.5 and later."""
    if argument == "serviceTier":  # as reported by NousResearch/hermes-agent#28490
        message = "Argument not supported: service_tier"
    elif model in NEW_WORDING:
        message = f"Model {model} does not support parameter {argument}."
    else:
        message = f"Argument not supported on this model: {argument}"
    return {"code": "Client specified an invalid argument", "error": message}


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Upstream:
    """Runs the stand-in in a background thread; use as a context manager."""

    host: str = "127.0.0.1"
    #: The port to listen on; 0 picks a free one.
    port: int = 0
    #: Whether to keep every request in ``requests`` (tests); off for ``python -m standin``.
    record: bool = True
    requests: list[Recorded] = field(default_factory=list)
    #: More arguments each model refuses, e.g. ``{"grok-4.7": {"reasoning_effort"}}``.
    rejects: dict[str, set[str]] = field(default_factory=dict)
    disconnects: list[float] = field(default_factory=list)
    first_chunk_sent: list[float] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def url(self, scenario: str) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}/{scenario}"

    def __enter__(self) -> Upstream:
        upstream = self

        class Handler(_Handler):
            owner = upstream

        self._server = _Server((self.host, self.port), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


#: Scenarios that answer like a served request, so the real API's checks come first.
_SERVED = frozenset({"ok", "slow", "big", "sse", "long", "truncated", "tool-call"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connections under a burst of concurrent calls


class _Handler(BaseHTTPRequestHandler):
    owner: Upstream
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        headers = {name.title(): value for name, value in self.headers.items()}  # case as most tests spell it
        if self.owner.record:
            self.owner.requests.append(Recorded(self.path, headers, body))
        path = urlsplit(self.path).path  # also as a forward proxy, which is sent the whole URL
        scenario = path.strip("/").split("/")[0]
        user = str(body.get("user", ""))
        if user.startswith("scenario:"):  # lets one server process meet several scenarios
            scenario = user.removeprefix("scenario:")
        name, number = re.fullmatch(r"([a-z-]+)(\d*)", scenario).groups()  # type: ignore[union-attr]
        model = served_by(str(body.get("model", "grok-4")))
        refused = refusal(self.headers, body, self.owner.rejects) if name in _SERVED else None
        if refused is not None:
            self._json(*refused)
        elif name == "ok":
            self._json(200, completion(model, "pong", body.get("service_tier")))
        elif name == "tool-call":
            self._json(200, tool_call_completion(model))
        elif name == "slow":
            time.sleep(int(number or 300) / 1000)
            self._json(200, completion(model, "pong"))
        elif name == "big":
            self._json(200, completion(model, "x" * 1024 * int(number or 1024)))
        elif name == "sse":
            self._sse(model, int(number or 50) / 1000, done=True)
        elif name == "long":
            self._sse(model, int(number or 50) / 1000, done=True, words=SSE_WORDS * 57)
        elif name == "truncated":
            self._sse(model, 0.01, done=False)
        elif name == "hang":
            self._wait_for_disconnect(60)
        elif name == "status":
            code = int(number or 500)
            self._json(code, {"error": {"code": "api_error", "message": f"status {code}"}, "trace_id": "t-1"})
        elif name == "html":
            self._raw(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        elif name == "echo-token":
            token = self.headers.get("Authorization", "")
            self._json(401, {"error": {"code": "invalid_token", "message": f"bad token {token}"}})
        else:
            self._json(404, {"error": {"code": "no_api", "message": "unknown scenario"}})

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._raw(status, json.dumps(data).encode(), "application/json")

    def _raw(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _sse(self, model: str, delay: float, *, done: bool, words: list[str] = SSE_WORDS) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(b"data:\n\n")  # AceDataCloud's documented stream shows empty data lines
            self.wfile.write(chunk(model, {"role": "assistant", "content": ""}))
            for index, word in enumerate(words):
                if index == 0:
                    self.owner.first_chunk_sent.append(time.monotonic())
                self.wfile.write(chunk(model, {"content": word}))
                self.wfile.flush()
                time.sleep(delay)
            if done:
                zero = {key: 0 for key in USAGE if key != "completion_tokens_details"}
                self.wfile.write(chunk(model, {}, "stop", usage=zero))
                self.wfile.write(b"data:\n\n" + chunk(model, None, usage=USAGE))
                self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except OSError:
            self.owner.disconnects.append(time.monotonic())

    def _wait_for_disconnect(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        self.connection.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self.owner.disconnects.append(time.monotonic())
        self.close_connection = True
