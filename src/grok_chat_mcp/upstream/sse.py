"""Event-stream bytes in, events out: a bounded, incremental decoder (no HTTP, no JSON)."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["MAX_LINE_BYTES", "Event", "EventStream", "LineTooLong", "StreamError"]

#: The longest event-stream line, and the most data one event may carry (a whole tool call can
#: arrive in one).
MAX_LINE_BYTES = 4 * 1024 * 1024

#: An event's name (``""`` when it has none) and its data.
Event = tuple[str, str]

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

    :meth:`feed` takes the next bytes and :meth:`close` marks their end; both yield the events
    they complete, lazily (stop reading them and nothing after is decoded). Only ``data`` and
    ``event`` fields are kept; comments, ``id`` and ``retry`` carry nothing used here. An event
    whose data is empty is not yielded. Invalid UTF-8 becomes U+FFFD.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._limit = max_line_bytes
        self._line: list[bytes] = []  # the start of a line cut by the end of a read
        self._line_size = 0
        self._after_cr = False  # the last read ended in \r: a \n starting the next is the same end
        self._name = ""
        self._data: list[bytes] = []
        self._data_size = 0

    def feed(self, data: bytes) -> Iterator[Event]:
        """The events the bytes ``data`` complete."""
        if self._after_cr and data.startswith(b"\n"):
            data = data[1:]
        if not data:
            return iter(())
        self._after_cr = data.endswith(b"\r")
        return self._take(data)

    def close(self) -> Iterator[Event]:
        """The bytes ended: a last unterminated line and event are complete."""
        self._after_cr = False
        if self._line:
            yield from self._take(b"\n")
        if self._data:
            yield from self._take(b"\n")

    def _take(self, data: bytes) -> Iterator[Event]:
        lines = data.splitlines()  # at CR, LF and CRLF only (bytes, unlike str)
        rest = b"" if data.endswith(_LINE_ENDS) else lines.pop()
        if lines and self._line:
            lines[0] = b"".join((*self._line, lines[0]))
            self._line.clear()
            self._line_size = 0
        for line in lines:
            if len(line) > self._limit:
                raise LineTooLong(self._limit)
            if line:
                self._field(line)
            else:  # a blank line ends the event
                data = b"\n".join(self._data)
                name, self._name, self._data_size = self._name, "", 0
                self._data.clear()
                if data:
                    yield name, data.decode("utf-8", "replace")
        if rest:
            self._line.append(rest)
            self._line_size += len(rest)
            if self._line_size > self._limit:
                raise LineTooLong(self._limit)

    def _field(self, line: bytes) -> None:
        """Take one field line (a comment has no field name)."""
        field, _, value = line.partition(b":")
        if field == b"data":
            value = value[1:] if value.startswith(b" ") else value
            self._data_size += len(value) + 1
            if self._data_size > self._limit + 1:
                raise LineTooLong(self._limit)
            self._data.append(value)
        elif field == b"event":
            self._name = value.removeprefix(b" ").decode("utf-8", "replace")
