"""Scripted model APIs on 127.0.0.1, standing in for the LLMs of real MCP hosts.

Each speaks just enough of one vendor's wire format for its CLI to run a two-turn conversation:
the first turn asks for a call of our tool, the second answers with the text of the completion the
tool returned (taken from the tool result the host sent back), so the host's final output proves
the whole round trip. Every request is recorded (path and JSON body).

- :class:`ResponsesAPI`: OpenAI's Responses API (``POST /v1/responses``, SSE), for the Codex CLI.
- :class:`GeminiAPI`: the Gemini API (``:generateContent``, ``:streamGenerateContent?alt=sse``,
  ``:countTokens``), for the Gemini CLI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

#: What the scripted model asks our tool.
ARGUMENTS: dict[str, Any] = {"model": "grok-4", "messages": [{"role": "user", "content": "Say pong."}]}
#: The prefix of the scripted model's final answer; the completion's text follows it.
SAYS = "Grok says: "


def answer_from(output: str) -> str:
    """The final answer for a tool result: the completion's text if the result's JSON parses, else
    its start. Hosts wrap the JSON: Codex after ``Wall time: ...\nOutput:\n``, Gemini in
    ``<untrusted_context>``."""
    try:
        result = json.loads(output[output.index("{") : output.rindex("}") + 1])
        content = result["result"]["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return SAYS + output[:500]  # short: a long repeated text trips Gemini's loop detection
    return SAYS + str(content)


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]


@dataclass
class ScriptedAPI:
    """A scripted model API in a background thread; use as a context manager."""

    #: What the model asks the tool.
    arguments: dict[str, Any] = field(default_factory=lambda: ARGUMENTS)
    requests: list[Recorded] = field(default_factory=list)
    #: The text of each tool result the host sent back, as the model saw it.
    tool_results: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
        """The content type and body of the reply to one request."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                api.requests.append(Recorded(self.path, body))
                content_type, data = api.answer(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def sse(events: list[dict[str, Any]], *, named: bool) -> bytes:
    """Server-sent events; ``named`` adds an ``event:`` line with each event's type (OpenAI's form)."""
    lines = (
        (f"event: {event['type']}\n" if named else "") + f"data: {json.dumps(event)}\n\n" for event in events
    )
    return "".join(lines).encode()


@dataclass
class ResponsesAPI(ScriptedAPI):
    """OpenAI's Responses API as Codex uses it: the tool is ``grok_chat_completions`` in the
    namespace ``mcp__grok``; the tool result comes back as a ``function_call_output`` item."""

    namespace: str = "mcp__grok"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
        outputs = [item for item in body.get("input", ()) if item.get("type") == "function_call_output"]
        if outputs:
            self.tool_results.append(text_of(outputs[-1]["output"]))
            item: dict[str, Any] = {
                "type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": answer_from(self.tool_results[-1]),
                             "annotations": []}],
            }  # fmt: skip
        else:
            item = {
                "type": "function_call", "id": "fc_1", "call_id": "call_1", "status": "completed",
                "name": "grok_chat_completions", "namespace": self.namespace,
                "arguments": json.dumps(self.arguments),
            }  # fmt: skip
        number = len(self.requests)
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": {"id": f"resp_{number}"}},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": {"id": f"resp_{number}", "usage": {
                "input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}}},
        ]  # fmt: skip
        return "text/event-stream", sse(events, named=True)

    def offered_tools(self, index: int = 0) -> Iterator[str]:
        """The names of the tools in one request (namespaced ones as ``namespace/name``)."""
        for tool in self.requests[index].body.get("tools", ()):
            if tool.get("type") == "namespace":
                yield from (f"{tool['name']}/{inner['name']}" for inner in tool.get("tools", ()))
            elif "name" in tool:
                yield tool["name"]


def text_of(output: Any) -> str:
    """A ``function_call_output``'s text: a string, or a list of ``input_text`` items."""
    if isinstance(output, str):
        return output
    return "".join(part.get("text", "") for part in output if isinstance(part, dict))


@dataclass
class GeminiAPI(ScriptedAPI):
    """The Gemini API as the Gemini CLI uses it: the tool is ``mcp_grok_grok_chat_completions``;
    the tool result comes back as a ``functionResponse`` part."""

    tool: str = "mcp_grok_grok_chat_completions"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
        if ":countTokens" in path:
            return "application/json", json.dumps({"totalTokens": 10}).encode()
        responses = [
            part["functionResponse"]
            for content in body.get("contents", ())
            for part in content.get("parts", ())
            if "functionResponse" in part
        ]
        if responses:
            self.tool_results.append(response_text(responses[-1]["response"]))
            part: dict[str, Any] = {"text": answer_from(self.tool_results[-1])}
        elif self.offers_tool(body):
            part = {"functionCall": {"name": self.tool, "args": self.arguments}}
        else:  # a side request (the CLI's own helpers): answer it plainly
            part = {"text": "{}"}
        reply = {
            "candidates": [
                {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
            "modelVersion": "gemini-scripted",
        }
        if ":streamGenerateContent" in path:
            return "text/event-stream", sse([reply], named=False)
        return "application/json", json.dumps(reply).encode()

    def offers_tool(self, body: dict[str, Any]) -> bool:
        return self.tool in self.offered_tools(body)

    @staticmethod
    def offered_tools(body: dict[str, Any]) -> list[str]:
        return [
            declaration.get("name", "")
            for tool in body.get("tools", ())
            for declaration in tool.get("functionDeclarations", ())
        ]


def response_text(response: Any) -> str:
    """The text of a Gemini ``functionResponse.response``: its ``output``, or its ``content`` parts."""
    if isinstance(response, dict):
        if isinstance(response.get("output"), str):
            return str(response["output"])
        content = response.get("content")
        if isinstance(content, list):
            return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return json.dumps(response)
