"""Server-sent events: an incremental decoder and the assembler of ``chat.completion.chunk`` objects."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

DONE = "[DONE]"


class LineTooLong(ValueError):
    """An event-stream line longer than the limit (no newline within that many characters)."""


class LineSplitter:
    """Splits decoded text into lines (``\n``, ``\r\n`` or ``\r``), refusing lines over ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: list[str] = []
        self._size = 0
        self._after_cr = False

    def feed(self, text: str) -> list[str]:
        """Take more text; return the lines it completed (without line endings)."""
        lines: list[str] = []
        start = 0
        if self._after_cr and text.startswith("\n"):
            start = 1  # the \n of a \r\n split across two reads
        self._after_cr = False
        for match in _LINE_END.finditer(text, start):
            self._pieces.append(text[start : match.start()])
            lines.append("".join(self._pieces))
            self._pieces.clear()
            self._size = 0
            start = match.end()
            if match.group() == "\r" and start == len(text):
                self._after_cr = True
        rest = text[start:]
        if rest:
            self._size += len(rest)
            if self._size > self._limit:
                raise LineTooLong(f"an event-stream line is longer than {self._limit:,} characters")
            self._pieces.append(rest)
        return lines

    def flush(self) -> list[str]:
        """The last, unterminated line, if any."""
        line = "".join(self._pieces)
        self._pieces.clear()
        self._size = 0
        return [line] if line else []


_LINE_END = re.compile(r"\r\n|\r|\n")


class SSEDecoder:
    """Turns lines of an event stream into the ``data`` of each event (multi-line data joined).

    Events without data, or with only empty ``data:`` lines (AceDataCloud sends those), are skipped.
    ``event`` is the name of the event last returned (``message`` unless the stream named it).
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self._name = ""
        self.event = "message"

    def feed(self, line: str) -> str | None:
        """Take one line (without its line ending); return an event's data when one completes."""
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._name = value
        return None  # id:, retry: carry nothing we use

    def flush(self) -> str | None:
        """End of an event (or of the stream): the pending data, if any."""
        data = "\n".join(self._data)
        self._data.clear()
        self.event, self._name = self._name or "message", ""
        return data or None


class _Choice:
    __slots__ = ("extra", "finish_reason", "message_extra", "parts", "role", "tool_calls")

    def __init__(self) -> None:
        self.role: str | None = None
        self.parts: dict[str, list[str]] = {}  # content, reasoning_content, refusal
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: Any = None
        self.extra: dict[str, Any] = {}  # unknown keys of the choice (logprobs, ...)
        self.message_extra: dict[str, Any] = {}  # unknown keys of the delta


_TEXT_FIELDS = ("content", "reasoning_content", "refusal")
#: What a new choice or tool call counts towards :attr:`StreamAssembler.size`.
_ENTRY_COST = 256


class StreamAssembler:
    """Merges chunks into the ``chat.completion`` a non-streaming call would have returned."""

    def __init__(self) -> None:
        self._top: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self.chars = 0
        self.chunks = 0
        #: Characters held (all text fields and tool-call arguments), to bound memory.
        self.size = 0

    def add(self, chunk: dict[str, Any]) -> str:
        """Merge one chunk; return the new text it carried (reasoning and content)."""
        self.chunks += 1
        for key, value in chunk.items():
            if key == "usage":
                self._take_usage(value)
            elif key not in ("choices", "object") and value is not None:
                self._top[key] = value
        new: list[str] = []
        for position, raw in enumerate(chunk.get("choices") or ()):
            if isinstance(raw, dict):
                new.extend(self._add_choice(position, raw))
        text = "".join(new)
        self.chars += len(text)
        return text

    def _add_choice(self, position: int, raw: dict[str, Any]) -> Iterator[str]:
        index = raw.get("index", position)
        slot = index if isinstance(index, int) else position
        if slot not in self._choices:
            self.size += _ENTRY_COST
        choice = self._choices.setdefault(slot, _Choice())
        if raw.get("finish_reason") is not None:
            choice.finish_reason = raw["finish_reason"]
        for key, value in raw.items():
            if key not in ("index", "delta", "finish_reason", "message") and value is not None:
                choice.extra[key] = value
        delta = raw.get("delta") or raw.get("message") or {}
        if not isinstance(delta, dict):
            return
        for key, value in delta.items():
            if key == "role":
                choice.role = choice.role or value
            elif key in _TEXT_FIELDS:
                if isinstance(value, str):
                    choice.parts.setdefault(key, []).append(value)
                    self.size += len(value)
                    if key != "refusal":
                        yield value
            elif key == "tool_calls":
                for position_in_delta, call in enumerate(value or ()):
                    self.size += self._add_tool_call(choice, position_in_delta, call)
            elif value is not None:
                choice.message_extra[key] = value

    @staticmethod
    def _add_tool_call(choice: _Choice, position: int, call: Any) -> int:
        """Merge one tool-call delta; return the characters of arguments it added."""
        if not isinstance(call, dict):
            return 0
        index = call.get("index", position)
        key = index if isinstance(index, int) else position
        added = 0 if key in choice.tool_calls else _ENTRY_COST
        merged = choice.tool_calls.setdefault(
            key, {"id": None, "type": "function", "name": None, "arguments": []}
        )
        if call.get("id"):
            merged["id"] = merged["id"] or call["id"]
        if call.get("type"):
            merged["type"] = call["type"]
        function = call.get("function") or {}
        if isinstance(function, dict):
            if function.get("name"):
                merged["name"] = merged["name"] or function["name"]
            if isinstance(function.get("arguments"), str):
                merged["arguments"].append(function["arguments"])
                added += len(function["arguments"])
        return added

    def _take_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        if self._usage is None or _has_numbers(usage) or not _has_numbers(self._usage):
            self._usage = usage

    @property
    def text(self) -> str:
        """Content received so far (all choices)."""
        return "".join("".join(c.parts.get("content", ())) for c in self._choices.values())

    def result(self) -> dict[str, Any]:
        """The assembled ``chat.completion``."""
        top = dict(self._top)
        completion: dict[str, Any] = {"id": top.pop("id", None), "object": "chat.completion"}
        for key in ("created", "model", "system_fingerprint"):
            if key in top:
                completion[key] = top.pop(key)
        completion["choices"] = [self._choice_result(i, self._choices[i]) for i in sorted(self._choices)]
        if self._usage is not None:
            completion["usage"] = self._usage
        completion.update(top)
        return completion

    @staticmethod
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


# Interim adapter (replaced by upstream/sse.py): bytes in, chat.completion out.
import codecs  # noqa: E402
import json  # noqa: E402


class StreamError(Exception):
    """The event stream cannot be relayed."""


class TooLarge(StreamError):
    """A line or the assembled answer passed its bound."""


class BadEvent(StreamError):
    """An event that is not JSON; ``data`` holds it."""

    def __init__(self, data: str) -> None:
        super().__init__("non-JSON event")
        self.data = data


class UpstreamEvent(StreamError):
    """An error sent inside the stream; ``data`` holds it."""

    def __init__(self, data: str) -> None:
        super().__init__("error event")
        self.data = data


MAX_DEPTH = 64


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
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


class CompletionStream:
    def __init__(
        self, *, max_line_chars: int = 4 * 1024 * 1024, max_assembled_chars: int = 16 * 1024 * 1024
    ) -> None:
        self._split = LineSplitter(max_line_chars)
        self._text = codecs.getincrementaldecoder("utf-8")("replace")
        self._decoder = SSEDecoder()
        self._assembler = StreamAssembler()
        self._max = max_assembled_chars
        self.done = False

    @property
    def chars(self) -> int:
        return self._assembler.chars

    @property
    def chunks(self) -> int:
        return self._assembler.chunks

    def feed(self, data: bytes) -> str:
        try:
            lines = self._split.feed(self._text.decode(data))
        except LineTooLong as exc:
            raise TooLarge(str(exc)) from None
        return self._lines(lines)

    def close(self) -> None:
        self._lines(self._split.feed(self._text.decode(b"", final=True)) + self._split.flush())
        if not self.done:
            data = self._decoder.flush()
            if data is not None:
                self._event(data)

    def _lines(self, lines: list[str]) -> str:
        out: list[str] = []
        for line in lines:
            if self.done:
                break
            data = self._decoder.feed(line)
            if data is not None:
                out.append(self._event(data))
        return "".join(out)

    def _event(self, data: str) -> str:
        if data.strip() == DONE:
            self.done = True
            return ""
        if self._decoder.event == "error":
            raise UpstreamEvent(data)
        try:
            chunk = json.loads(data, parse_constant=lambda _: None)
        except (ValueError, RecursionError):
            raise BadEvent(data) from None
        if too_deep(chunk):
            raise BadEvent(data)
        if not isinstance(chunk, dict):
            return ""
        if "error" in chunk and "choices" not in chunk:
            raise UpstreamEvent(data)
        text = self._assembler.add(chunk)
        if self._assembler.size > self._max:
            raise TooLarge(f"the streamed answer passed {self._max:,} characters")
        return text

    def result(self) -> dict[str, Any]:
        return self._assembler.result()
