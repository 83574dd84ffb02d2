"""Event-stream bytes in, events out: a bounded, incremental decoder (no HTTP, no JSON)."""

from __future__ import annotations

__all__ = ["MAX_LINE_BYTES", "EventStream", "Events", "LineTooLong", "StreamError"]

#: The longest event-stream line, and the most data one event may carry (a whole tool call can
#: arrive in one).
MAX_LINE_BYTES = 4 * 1024 * 1024

#: The events one read completes: their names (``""`` for none) and their data (UTF-8 as sent).
Events = tuple[list[str], list[bytes]]

_LINE_ENDS = (b"\n", b"\r")


class StreamError(ValueError):
    """The event stream cannot be turned into a completion; ``str()`` says why in one line."""


class LineTooLong(StreamError):
    """A line (or the data of one event) is longer than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event-stream line is longer than {limit:,} bytes")
        self.limit = limit


class EventStream:
    """Decodes an event stream as the WHATWG HTML standard defines it, from bytes in any split.

    :meth:`feed` takes the next bytes and :meth:`close` marks their end; each returns the events
    those bytes complete, in order. A bound passed after some events of a read returns those
    events and raises at the next call, so a caller that stops at ``[DONE]`` never sees it. Only
    ``data`` and ``event`` fields are kept; comments, ``id`` and ``retry`` carry nothing used here.
    An event whose data is empty is not returned.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._limit = max_line_bytes
        self._line: list[bytes] = []  # the start of a line cut by the end of a read
        self._line_size = 0
        self._after_cr = False  # the last read ended in \r: a \n starting the next is the same end
        self._name = ""
        self._data: list[bytes] = []
        self._data_size = 0
        self._failed: LineTooLong | None = None

    def feed(self, data: bytes) -> Events:
        """The events the bytes ``data`` complete."""
        if self._failed is not None:
            raise self._failed
        if self._after_cr and data.startswith(b"\n"):
            data = data[1:]
        if not data:
            return [], []
        self._after_cr = data.endswith(b"\r")
        return self._take(data)

    def close(self) -> Events:
        """The bytes ended: a last unterminated line and event are complete."""
        if self._failed is not None:
            raise self._failed
        self._after_cr = False
        return self._take(b"\n\n") if self._line or self._data else ([], [])

    def _take(self, data: bytes) -> Events:
        events: Events = ([], [])
        try:
            self._lines(data, events)
        except LineTooLong as exc:
            if not events[1]:
                raise
            self._failed = exc
        return events

    def _lines(self, data: bytes, events: Events) -> None:
        lines = data.splitlines()  # at CR, LF and CRLF only (bytes, unlike str)
        rest = b"" if data.endswith(_LINE_ENDS) else lines.pop()
        if lines and self._line:
            lines[0] = b"".join((*self._line, lines[0]))
            self._line.clear()
            self._line_size = 0
        limit, parts = self._limit, self._data
        names, payloads = events
        for line in lines:
            if not line:  # a blank line ends the event
                if parts:
                    value = b"\n".join(parts)
                    if value:
                        names.append(self._name)
                        payloads.append(value)
                    parts.clear()
                self._name, self._data_size = "", 0
                continue
            if len(line) > limit:
                raise LineTooLong(limit)
            field, _, value = line.partition(b":")
            if field == b"data":
                value = value[1:] if value.startswith(b" ") else value
                self._data_size += len(value) + 1
                if self._data_size > limit + 1:
                    raise LineTooLong(limit)
                parts.append(value)
            elif field == b"event":
                self._name = value.removeprefix(b" ").decode("utf-8", "replace")
        if rest:
            self._line.append(rest)
            self._line_size += len(rest)
            if self._line_size > limit:
                raise LineTooLong(limit)
