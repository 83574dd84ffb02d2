"""Event-stream bytes in, the assembled ``chat.completion`` out: one bounded, incremental reader."""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import pydantic_core

__all__ = [
    "BadEvent",
    "CompletionStream",
    "LineTooLong",
    "StreamError",
    "TooLarge",
    "UpstreamEvent",
]

#: The longest event-stream line (and event) accepted; a whole tool call can arrive in one.
MAX_LINE_CHARS = 4 * 1024 * 1024
#: The most characters a completion may assemble (text, reasoning, refusal, tool arguments).
MAX_ASSEMBLED_CHARS = 16 * 1024 * 1024
#: The deepest JSON nesting accepted in the completion (checked on what is kept, in ``result()``).
MAX_DEPTH = 64
#: How much of an event a :class:`BadEvent` keeps.
EXCERPT_CHARS = 8 * 1024

DONE = "[DONE]"
_TEXT_FIELDS = ("content", "reasoning_content", "refusal")
#: What a new choice or tool call counts towards :attr:`CompletionStream.size`.
_ENTRY_COST = 256
_PLAIN_CHOICE = frozenset(("index", "delta", "finish_reason", "message"))

_decode_utf8 = codecs.utf_8_decode
_from_json = pydantic_core.from_json
_JSON = json.JSONDecoder(parse_constant=lambda _: None)  # NaN, Infinity, -Infinity: null
_SURROGATE = re.compile("[\ud800-\udfff]")


class StreamError(ValueError):
    """The event stream cannot be turned into a completion; ``str()`` says why in one line."""


class LineTooLong(StreamError):
    """A line (or the data of one event) is longer than ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event-stream line is longer than {limit:,} characters")
        self.limit = limit


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
        self.parts: dict[str, list[str]] = {}
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: Any = None
        self.extra: dict[str, Any] = {}
        self.message_extra: dict[str, Any] = {}


class CompletionStream:
    """Event-stream bytes in; the assembled ``chat.completion`` out.

    :meth:`feed` takes the bytes as they arrive, in any split; :meth:`close` marks their end. Both
    return the new visible text (``content`` and ``reasoning_content``) of the events they
    completed, and raise a :class:`StreamError` when the stream breaks a bound or reports an error.
    A stream without ``data: [DONE]`` is not complete: see :attr:`done`. After a
    :class:`StreamError` the object is spent.
    """

    __slots__ = (
        "_after_cr",
        "_choices",
        "_clean",
        "_data",
        "_data_size",
        "_event",
        "_max_assembled",
        "_max_depth",
        "_max_line",
        "_pending",
        "_pieces",
        "_rest_size",
        "_top",
        "_usage",
        "chars",
        "chunks",
        "done",
        "size",
    )

    def __init__(
        self,
        *,
        max_line_chars: int = MAX_LINE_CHARS,
        max_assembled_chars: int = MAX_ASSEMBLED_CHARS,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self._max_line = max_line_chars
        self._max_assembled = max_assembled_chars
        self._max_depth = max_depth
        self._pending = b""  # the start of a UTF-8 sequence cut by the end of a read
        self._pieces: list[str] = []  # the unterminated line
        self._rest_size = 0
        self._after_cr = False  # the last read ended in \r (its \n may start the next)
        self._clean = True  # none of the above: a read may start a new event
        self._data: list[str] = []  # data lines of the event in progress
        self._data_size = 0
        self._event = ""  # its name
        self._top: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        #: ``data: [DONE]`` was seen; later bytes are ignored.
        self.done = False
        #: Visible characters received (content and reasoning).
        self.chars = 0
        #: Chunks merged.
        self.chunks = 0
        #: Characters held (text fields and tool-call arguments, plus a fixed cost per entry).
        self.size = 0

    def feed(self, data: bytes) -> str:
        """Take the next bytes; return the visible text of the events they completed."""
        if (
            self._clean
            and data.startswith(b"data: ")
            and data.endswith(b"\n\n")
            and data.find(b"\n", 6) == len(data) - 2
            and b"\r" not in data
            and len(data) <= self._max_line
        ):  # the usual read: one whole event of one data line (parsed as bytes, UTF-8 checked there)
            name = self._event
            if name:
                self._event = ""
            return self._dispatch(data[6:-2], name) if len(data) > 8 else ""
        if self.done or not data:
            return ""
        new = self._decode(data)
        self._clean = not (self.done or self._pending or self._data or self._pieces or self._after_cr)
        return new

    def _decode(self, data: bytes) -> str:
        """UTF-8, incrementally: a sequence cut by the end of ``data`` waits for the next read."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if data[-1] < 0x80:  # ends on a whole character
            text = data.decode("utf-8", "replace")
        else:
            text, used = _decode_utf8(data, "replace", False)
            if used < len(data):
                self._pending = data[used:]
            if not text:
                return ""
        return self._take(text)

    def close(self) -> str:
        """The bytes ended: take a last unterminated line and event; return their visible text."""
        if self.done:
            return ""
        new = ""
        if self._pending:
            text = _decode_utf8(self._pending, "replace", True)[0]
            self._pending = b""
            new = self._take(text)
        self._after_cr = False
        if not self.done and self._pieces:
            new += self._take("\n")
        if not self.done and self._data:
            new += self._take("\n")
        self._clean = False
        return new

    def _take(self, text: str) -> str:
        """Decoded text: split it into lines once, bound them, decode the events they complete."""
        if self._after_cr:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return ""
        if "\r" in text:
            self._after_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        pieces = self._pieces
        limit = self._max_line
        if not self._data and "\n\n" in text:  # no event in progress: the text starts one
            if pieces and self._rest_size + len(text) <= limit:  # a line cut by the last read
                pieces.append(text)
                text = "".join(pieces)
                pieces.clear()
                self._rest_size = 0
            if not pieces and len(text) <= limit:
                return self._events(text)
        lines = text.split("\n")
        rest = lines.pop()
        if not lines:  # no line end: all of it continues the line in progress
            pieces.append(rest)
            self._rest_size += len(rest)
            if self._rest_size > limit:
                raise LineTooLong(limit)
            return ""
        longest = self._rest_size + len(text)  # no line is longer than this
        if pieces:
            pieces.append(lines[0])
            lines[0] = "".join(pieces)
            pieces.clear()
        self._rest_size = len(rest)
        if rest:
            pieces.append(rest)
        if longest > limit and max(self._rest_size, *map(len, lines)) > limit:
            raise LineTooLong(limit)
        return self._lines(lines)

    def _events(self, text: str) -> str:
        """Text that starts a line, with no event in progress and no line over the limit: split
        into events once; an event of one ``data: `` line goes straight to :meth:`_dispatch`."""
        blocks = text.split("\n\n")
        last = blocks.pop()
        new = ""
        for block in blocks:
            if block.startswith("data: ") and "\n" not in block:
                name = self._event
                if name:
                    self._event = ""
                if len(block) > 6:
                    new += self._dispatch(block[6:], name)
            else:
                lines = block.split("\n")
                lines.append("")
                new += self._lines(lines)
            if self.done:
                return new
        if last:
            lines = last.split("\n")
            rest = lines.pop()
            if rest:
                self._pieces.append(rest)
                self._rest_size = len(rest)
            if lines:
                new += self._lines(lines)
        return new

    def _lines(self, lines: list[str]) -> str:
        """Whole lines (no line ends): decode the events they complete; return their text."""
        data = self._data
        limit = self._max_line
        new = ""
        for line in lines:
            if not line:  # end of an event
                if data:
                    joined = data[0] if len(data) == 1 else "\n".join(data)
                    data.clear()
                    name, self._event = self._event, ""
                    if joined:
                        new += self._dispatch(joined, name)
                        if self.done:
                            return new
                else:
                    self._event = ""
                continue
            if line.startswith("data:"):
                value = line[6:] if line[5:6] == " " else line[5:]
            elif line[0] == ":":  # a comment (keep-alive)
                continue
            else:
                field, _, value = line.partition(":")
                if field == "event":
                    self._event = value[1:] if value.startswith(" ") else value
                if field != "data":
                    continue  # id:, retry:, unknown fields carry nothing used here
            if data:
                self._data_size += len(value) + 1
                if self._data_size > limit:
                    raise LineTooLong(limit)
            else:
                self._data_size = len(value)
            data.append(value)
        return new

    def _dispatch(self, data: str | bytes, name: str) -> str:
        """One event's data (text, or the bytes of a whole event): merge its chunk; return its
        visible text."""
        if name and name == "error":
            if _text(data).strip() == DONE:
                self.done, self._clean = True, False
                return ""
            raise UpstreamEvent(_text(data))
        try:
            chunk = _from_json(data, allow_inf_nan=False)
        except ValueError:  # NaN, a lone surrogate, invalid UTF-8, nesting past 200, not JSON
            chunk = self._parse(_text(data))
            if self.done:
                return ""
        if type(chunk) is not dict:
            return ""
        if "error" in chunk and "choices" not in chunk:
            raise UpstreamEvent(_text(data))
        self.chunks += 1
        top = self._top
        if None in chunk.values():
            for key, value in chunk.items():
                if value is not None:
                    top[key] = value
        else:
            top.update(chunk)  # choices, object and usage are dropped in result()
        if "usage" in chunk:
            self._take_usage(chunk["usage"])
        choices = chunk.get("choices")
        if not choices or type(choices) is not list:
            return ""
        if len(choices) == 1:
            raw = choices[0]
            new = self._merge_choice(0, raw) if type(raw) is dict else ""
        else:
            new = ""
            for position, raw in enumerate(choices):
                if type(raw) is dict:
                    new += self._merge_choice(position, raw)
        if new:
            self.chars += len(new)
        if self.size > self._max_assembled:
            raise TooLarge(self._max_assembled)
        return new

    def _parse(self, data: str) -> Any:
        """JSON as the standard library reads it: NaN and Infinity become null, lone surrogates
        U+FFFD; ``[DONE]`` sets :attr:`done`."""
        try:
            chunk = _JSON.decode(data)
        except (ValueError, RecursionError):
            if data.strip() == DONE:
                self.done, self._clean = True, False
                return None
            raise BadEvent(data[:EXCERPT_CHARS]) from None
        if "\\ud" in data or "\\uD" in data:
            if data.count("{") + data.count("[") > self._max_depth and too_deep(chunk, self._max_depth):
                raise BadEvent(data[:EXCERPT_CHARS], f"nested deeper than {self._max_depth} levels")
            chunk = _no_surrogates(chunk)
        return chunk

    def _merge_choice(self, position: int, raw: dict[str, Any]) -> str:
        index = raw.get("index", position)
        slot = index if type(index) is int else position
        choice = self._choices.get(slot)
        if choice is None:
            choice = self._choices[slot] = _Choice()
            self.size += _ENTRY_COST
        finish = raw.get("finish_reason")
        if finish is not None:
            choice.finish_reason = finish
        if not raw.keys() <= _PLAIN_CHOICE:
            for key, value in raw.items():
                if key not in _PLAIN_CHOICE and value is not None:
                    choice.extra[key] = value
        delta = raw.get("delta") or raw.get("message")
        if type(delta) is not dict:
            return ""
        if len(delta) == 1 and type(text := delta.get("content")) is str:  # most chunks: text only
            parts = choice.parts.get("content")
            if parts is None:
                choice.parts["content"] = [text]
            else:
                parts.append(text)
            self.size += len(text)
            return text
        new = ""
        for key, value in delta.items():
            if key in _TEXT_FIELDS:
                if type(value) is str:
                    parts = choice.parts.get(key)
                    if parts is None:
                        choice.parts[key] = [value]
                    else:
                        parts.append(value)
                    self.size += len(value)
                    if key != "refusal":
                        new += value
            elif key == "role":
                choice.role = choice.role or value
            elif key == "tool_calls":
                if type(value) is list:
                    for place, call in enumerate(value):
                        if type(call) is dict:
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
            self.size += _ENTRY_COST
        if call.get("id"):
            merged["id"] = merged["id"] or call["id"]
        if call.get("type"):
            merged["type"] = call["type"]
        function = call.get("function")
        if type(function) is dict:
            if function.get("name"):
                merged["name"] = merged["name"] or function["name"]
            arguments = function.get("arguments")
            if type(arguments) is str:
                merged["arguments"].append(arguments)
                self.size += len(arguments)

    def _take_usage(self, usage: Any) -> None:
        if type(usage) is not dict:
            return
        if self._usage is None or _has_numbers(usage) or not _has_numbers(self._usage):
            self._usage = usage

    def result(self) -> dict[str, Any]:
        """The assembled ``chat.completion`` (what the same call without ``stream`` returns);
        :class:`BadEvent` if what was kept is nested deeper than ``max_depth``."""
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
        return completion


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


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _has_numbers(usage: dict[str, Any]) -> bool:
    return any(isinstance(v, int | float) and not isinstance(v, bool) and v for v in usage.values())


def too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values() if isinstance(item, dict | list))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node if isinstance(item, dict | list))
    return False


def _no_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate (from a ``\\ud800``-style escape) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_no_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_no_surrogates(key): _no_surrogates(item) for key, item in value.items()}
    return value
