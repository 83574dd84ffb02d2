"""Streamed ``chat.completion.chunk`` events in, the one ``chat.completion`` they add up to out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from grok_chat_mcp.upstream.json_values import MAX_DEPTH, loads, repaired, too_deep
from grok_chat_mcp.upstream.sse import Event, StreamError

__all__ = ["MAX_ASSEMBLED_CHARS", "Assembly", "BadEvent", "TooLarge", "UpstreamEvent"]

#: The most characters a completion may assemble (text, reasoning, refusal, tool arguments).
MAX_ASSEMBLED_CHARS = 16 * 1024 * 1024
#: How much of an event a :class:`BadEvent` keeps.
EXCERPT_CHARS = 8 * 1024
#: What a new choice or tool call counts towards :attr:`Assembly.size`.
ENTRY_COST = 256

DONE = "[DONE]"
_TEXT_FIELDS = ("content", "reasoning_content", "refusal")
_CHOICE_PARTS = frozenset(("index", "delta", "message"))


class TooLarge(StreamError):
    """The assembled completion passed ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the streamed answer passed {limit:,} characters")
        self.limit = limit


class BadEvent(StreamError):
    """An event whose data is not JSON, or is nested deeper than allowed; ``excerpt`` is its start."""

    def __init__(self, excerpt: str, reason: str = "not JSON") -> None:
        super().__init__(f"the event stream carried a non-JSON event ({reason})")
        self.excerpt = excerpt
        self.reason = reason


class UpstreamEvent(StreamError):
    """Upstream reported an error in the stream (``event: error``, or an ``error`` chunk without
    ``choices``); ``data`` is the event's data as sent (JSON or plain text)."""

    def __init__(self, data: str) -> None:
        super().__init__("upstream reported an error in the event stream")
        self.data = data


class _Choice:
    __slots__ = ("extra", "finish_reason", "message_extra", "parts", "role", "tool_calls")

    def __init__(self) -> None:
        self.role: Any = None
        self.parts: defaultdict[str, list[str]] = defaultdict(list)
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: Any = None
        self.extra: dict[str, Any] = {}
        self.message_extra: dict[str, Any] = {}


class Assembly:
    """Merges the chunks of one streamed completion, within bounds.

    :meth:`take` adds events (until ``data: [DONE]``, see :attr:`done`) and returns their visible
    text; :meth:`result` is what the same call without ``stream`` returns. A :class:`StreamError`
    says why the stream cannot be one completion; after one, the object is spent.
    """

    def __init__(self, *, max_assembled_chars: int = MAX_ASSEMBLED_CHARS, max_depth: int = MAX_DEPTH) -> None:
        self._max_size = max_assembled_chars
        self._max_depth = max_depth
        self._top: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._held = ""  # a high surrogate whose low half may come in the next text
        #: ``data: [DONE]`` was seen; later events are ignored.
        self.done = False
        #: Visible characters received (content and reasoning).
        self.chars = 0
        #: Chunks merged.
        self.chunks = 0
        #: Characters held (text fields and tool-call arguments, plus a fixed cost per entry).
        self.size = 0

    def take(self, events: Iterable[Event]) -> str:
        """Add ``events`` up to ``[DONE]``; return their visible text (content and reasoning), with
        surrogates repaired across calls."""
        text, self._held = self._held, ""
        for name, data in events:
            text += self.add(name, data)
            if self.done:
                break
        if text and not self.done and "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        visible: str = repaired(text)
        return visible

    def add(self, name: str, data: str) -> str:
        """Merge one event; return its visible text (surrogates as sent)."""
        if self.done:
            return ""
        if data.strip() == DONE:
            self.done = True
            return ""
        if name == "error":
            raise UpstreamEvent(data)
        try:
            chunk = loads(data)
        except ValueError:
            raise BadEvent(data[:EXCERPT_CHARS]) from None
        if not isinstance(chunk, dict):
            return ""
        if "error" in chunk and "choices" not in chunk:
            raise UpstreamEvent(data)
        choices = chunk.pop("choices", None)
        self.chunks += 1
        top = self._top
        for key, value in chunk.items():
            if value is not None:  # a later null does not erase a value
                top[key] = value
        if "usage" in chunk:
            self._take_usage(chunk["usage"])
        if not isinstance(choices, list):
            return ""
        new = ""
        for position, raw in enumerate(choices):
            if isinstance(raw, dict):
                new += self._merge_choice(position, raw)
        self.chars += len(new)
        if self.size > self._max_size:
            raise TooLarge(self._max_size)
        return new

    def _merge_choice(self, position: int, raw: dict[str, Any]) -> str:
        index = raw.get("index", position)
        slot = index if type(index) is int else position
        choice = self._choices.get(slot)
        if choice is None:
            choice = self._choices[slot] = _Choice()
            self.size += ENTRY_COST
        for key, value in raw.items():
            if value is None or key in _CHOICE_PARTS:
                continue
            if key == "finish_reason":
                choice.finish_reason = value
            else:
                choice.extra[key] = value
        delta = raw.get("delta") or raw.get("message")
        if not isinstance(delta, dict):
            return ""
        new = ""
        for key, value in delta.items():
            if key in _TEXT_FIELDS:
                if isinstance(value, str):
                    choice.parts[key].append(value)
                    self.size += len(value)
                    if key != "refusal":
                        new += value
            elif key == "role":
                choice.role = choice.role or value
            elif key == "tool_calls":
                if isinstance(value, list):
                    for place, call in enumerate(value):
                        if isinstance(call, dict):
                            self._merge_tool_call(choice, place, call)
            elif value is not None:
                choice.message_extra[key] = value
        return new

    def _merge_tool_call(self, choice: _Choice, position: int, call: dict[str, Any]) -> None:
        index = call.get("index", position)
        key = index if type(index) is int else position
        merged = choice.tool_calls.get(key)
        if merged is None:
            merged = choice.tool_calls[key] = {"id": None, "type": "function", "name": None, "arguments": []}
            self.size += ENTRY_COST
        if call.get("id"):
            merged["id"] = merged["id"] or call["id"]
        if call.get("type"):
            merged["type"] = call["type"]
        function = call.get("function")
        if isinstance(function, dict):
            if function.get("name"):
                merged["name"] = merged["name"] or function["name"]
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                merged["arguments"].append(arguments)
                self.size += len(arguments)

    def _take_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        if self._usage is None or _has_numbers(usage) or not _has_numbers(self._usage):
            self._usage = usage

    def result(self) -> dict[str, Any]:
        """The assembled ``chat.completion``; :class:`BadEvent` if it nests deeper than allowed."""
        top = {k: v for k, v in self._top.items() if k not in ("choices", "object", "usage")}
        completion: dict[str, Any] = {"id": top.pop("id", None), "object": "chat.completion"}
        for key in ("created", "model", "system_fingerprint"):
            if key in top:
                completion[key] = top.pop(key)
        completion["choices"] = [_choice_result(i, self._choices[i]) for i in sorted(self._choices)]
        if self._usage is not None:
            completion["usage"] = self._usage
        completion.update(top)
        if too_deep(completion, self._max_depth):
            raise BadEvent("", f"nested deeper than {self._max_depth} levels")
        result: dict[str, Any] = repaired(completion)
        return result


def _choice_result(index: int, choice: _Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": choice.role or "assistant"}
    content = choice.parts.get("content")
    message["content"] = "".join(content) if content is not None else None
    for key in ("reasoning_content", "refusal"):
        if key in choice.parts:
            message[key] = "".join(choice.parts[key])
    if choice.tool_calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": call["type"],
                "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
            }
            for _, call in sorted(choice.tool_calls.items())
        ]
    message.update(choice.message_extra)
    result: dict[str, Any] = {"index": index, "message": message, "finish_reason": choice.finish_reason}
    result.update(choice.extra)
    return result


def _has_numbers(usage: dict[str, Any]) -> bool:
    return any(isinstance(v, int | float) and not isinstance(v, bool) and v for v in usage.values())
