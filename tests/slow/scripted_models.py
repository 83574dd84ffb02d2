"""Scripted model APIs on 127.0.0.1, standing in for the LLMs of real MCP hosts.

Each speaks just enough of one vendor's wire format for its CLI to run a two-turn conversation:
the first turn asks for a call of our tool, the second answers with the text of the completion the
tool returned (taken from the tool result the host sent back), so the host's final output proves
the whole round trip. Every request is recorded (path and JSON body).

- :class:`ResponsesAPI`: OpenAI's Responses API (``POST /v1/responses``, SSE), for the Codex CLI.
- :class:`GeminiAPI`: the Gemini API (``:generateContent``, ``:streamGenerateContent?alt=sse``,
  ``:countTokens``), for the Gemini CLI.
- :class:`MessagesAPI`: Anthropic's Messages API (``POST /v1/messages``, SSE), for Claude Code;
  it loads a deferred tool through ``ToolSearch`` first and can collect a ``running`` call.
"""

from __future__ import annotations

import json
import re
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
    #: Whether the model collects a ``running`` result by calling again with its conversation_id.
    collect: bool = False
    #: The arguments of each call of our tool the model asked for, in order.
    calls: list[dict[str, Any]] = field(default_factory=list)
    #: The model's final answers.
    answers: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
        """The content type and body of the reply to one request."""
        raise NotImplementedError

    def call(self, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ask for a call of our tool (with ``arguments``, else the scripted ones) and record it."""
        self.calls.append(self.arguments if arguments is None else arguments)
        return self.calls[-1]

    def after(self, output: str) -> dict[str, Any] | str:
        """The model's step after a tool result: the collecting call's arguments, or its answer."""
        self.tool_results.append(output)
        running = running_id(output)
        if self.collect and running is not None:
            return self.call({"conversation_id": running})
        self.answers.append(answer_from(output))
        return self.answers[-1]

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
        step = self.after(text_of(outputs[-1]["output"])) if outputs else self.call()
        number = len(self.requests)
        if isinstance(step, str):
            item: dict[str, Any] = {
                "type": "message", "id": f"msg_{number}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": step, "annotations": []}],
            }  # fmt: skip
        else:
            item = {
                "type": "function_call", "id": f"fc_{number}", "call_id": f"call_{number}",
                "status": "completed", "name": "grok_chat_completions", "namespace": self.namespace,
                "arguments": json.dumps(step),
            }  # fmt: skip
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
        if not responses and not self.offers_tool(body):  # a side request (the CLI's own helpers)
            part: dict[str, Any] = {"text": "{}"}
        else:
            step = self.after(response_text(responses[-1]["response"])) if responses else self.call()
            part = (
                {"text": step}
                if isinstance(step, str)
                else {"functionCall": {"name": self.tool, "args": step}}
            )
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


#: Claude Code's name for our tool (server ``grok``).
CLAUDE_TOOL = "mcp__grok__grok_chat_completions"


@dataclass
class MessagesAPI(ScriptedAPI):
    """Anthropic's Messages API as Claude Code uses it. The tool result comes back as a
    ``tool_result`` block. Claude Code 2.1.337 offers an MCP tool deferred (``defer_loading``)
    unless its server has ``alwaysLoad``: the model then calls ``ToolSearch`` with
    ``select:<tool>`` first. With ``collect``, a ``running`` result is collected by calling the
    tool again with its ``conversation_id``, as long as the model is told how (the instruction
    must reach it)."""

    tool: str = CLAUDE_TOOL

    def answer(self, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
        if "/count_tokens" in path:
            return "application/json", json.dumps({"input_tokens": 10}).encode()
        block = self.next_block(body) if self.offers(body) else {"type": "text", "text": "{}"}
        message = {
            "id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
            "model": str(body.get("model", "claude-scripted")), "content": [block],
            "stop_reason": "tool_use" if block["type"] == "tool_use" else "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5},
        }  # fmt: skip
        if not body.get("stream"):
            return "application/json", json.dumps(message).encode()
        return "text/event-stream", sse(message_events(message), named=True)

    def offers(self, body: dict[str, Any]) -> bool:
        """Whether this request is the conversation with the user (a side request offers no tool)."""
        return any(tool.get("name") in (self.tool, "ToolSearch") for tool in body.get("tools", ()))

    def next_block(self, body: dict[str, Any]) -> dict[str, Any]:
        """The model's next step: load the tool, call it, collect, or answer with the result."""
        messages = body.get("messages", [])
        names = {
            block["id"]: block["name"]
            for message in messages if message.get("role") == "assistant"
            for block in content_blocks(message) if block.get("type") == "tool_use"
        }  # fmt: skip
        last = content_blocks(messages[-1])
        # The tool result may be followed by a user message of its own: Claude Code adds one ("The
        # user hasn't heard from you in a while...") when a turn has taken long.
        results = [block for block in since_the_model(messages) if block.get("type") == "tool_result"]
        if results and names.get(results[-1].get("tool_use_id")) == "ToolSearch":
            return self.use(self.call())
        if results:
            step = self.after(tool_result_text(results[-1]))
        elif self.tool in names.values():  # a result that arrives later, as a message of its own
            step = self.after("".join(str(block.get("text", "")) for block in last))
        else:
            return self.use(self.call()) if self.loaded(body) else self.use(None)
        return {"type": "text", "text": step} if isinstance(step, str) else self.use(step)

    def loaded(self, body: dict[str, Any]) -> bool:
        """Whether our tool is offered without ``defer_loading``."""
        return any(
            tool.get("name") == self.tool and not tool.get("defer_loading") for tool in body.get("tools", ())
        )

    def use(self, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """A ``tool_use`` block: our tool with these arguments, or (None) ToolSearch loading it."""
        name, given = (self.tool, arguments) if arguments is not None else ("ToolSearch", None)
        search = {"query": f"select:{self.tool}", "max_results": 1}
        return {
            "type": "tool_use",
            "id": f"toolu_{len(self.requests)}",
            "name": name,
            "input": given or search,
        }

    @property
    def turns(self) -> int:
        """Model turns in the conversation with the user (side requests not counted)."""
        return sum(1 for request in self.requests if self.offers(request.body))


def since_the_model(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks of the user messages after the model's last turn, in order."""
    blocks: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") == "assistant":
            break
        blocks[:0] = content_blocks(message)
    return blocks


def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return content if isinstance(content, list) else [{"type": "text", "text": str(content)}]


def tool_result_text(block: dict[str, Any]) -> str:
    """A ``tool_result`` block's text: a string, or its text parts."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or () if isinstance(part, dict))


def running_id(output: str) -> str | None:
    """The ``conversation_id`` of a ``running`` result (as JSON, or as its sentence), if ``output`` is one."""
    if not re.search(r'"status":\s*"running"|Still running', output):
        return None
    found = re.search(r"conv_[A-Za-z0-9_-]+", output)
    return found.group() if found else None


def message_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message as the Messages API streams it."""
    (block,) = message["content"]
    if block["type"] == "tool_use":
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    else:
        start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
    return [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": start},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
         "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]  # fmt: skip
