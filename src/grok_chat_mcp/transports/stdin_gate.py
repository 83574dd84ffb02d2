"""stdin for the SDK's ``stdio_server()``, each line checked before the SDK parses it (docs/design.md,
memory by structure): a line over :data:`~grok_chat_mcp.structure.MAX_MESSAGE_BYTES` or holding too
much structure reaches the SDK as a small stand-in that the relay answers with the request's id.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO, TextIO, cast

import anyio
from mcp.os.win32.utilities import rebind_std_handle_to_fd

from grok_chat_mcp.structure import MAX_MESSAGE_BYTES, TOO_MANY_VALUES, too_many_values
from grok_chat_mcp.transports.malformed import ID_SCAN, ID_TAIL, stand_in

if sys.platform != "win32":
    import fcntl

logger = logging.getLogger(__name__)

#: Why a line with too much structure is refused.
TOO_COMPLEX = (
    f"the message holds too much structure: a message {TOO_MANY_VALUES} is not read; send a smaller "
    "call, with fewer messages, content parts or values"
)
MiB = 1024 * 1024
#: How much of a long line is read at a time.
_CHUNK = MiB


def checked(source: BinaryIO) -> anyio.AsyncFile[str]:
    """``source`` as the ``stdin`` of ``stdio_server()``, which reads it by ``readline`` only."""
    return anyio.wrap_file(cast(TextIO, CheckedLines(source)))


class CheckedLines:
    """UTF-8 lines from a binary stream, as the SDK reads them (lines end at ``\\n``, undecodable
    bytes become U+FFFD), except that a line the server refuses is replaced by
    :func:`~grok_chat_mcp.transports.malformed.stand_in`'s line, or skipped for a notification.
    A refused line costs about its size (at most ``max_bytes``) while it is read."""

    def __init__(self, source: BinaryIO, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.too_long = (
            f"the message is longer than {max_bytes / MiB:g} MiB and is not read; send a smaller call"
        )

    def readline(self) -> str:
        while True:
            line = self._line()
            if len(line) > self.max_bytes and not line.endswith(b"\n"):
                why, head, tail = self.too_long, line[:ID_SCAN], self._rest(line[-ID_TAIL:])
            elif too_many_values(line):
                why, head, tail = TOO_COMPLEX, line[:ID_SCAN], line[-ID_TAIL:]
            else:
                return line.decode("utf-8", errors="replace")
            del line  # before the stand-in is built: a refused line is held once
            replacement = stand_in(head.decode(errors="replace"), tail.decode(errors="replace"), why)
            if replacement is not None:
                return replacement
            logger.warning("refused a notification (no reply is due): %s", why)

    def _line(self) -> bytes | bytearray:
        """The next line, or its first ``max_bytes + 1`` bytes; grown in place, so that a long line
        is held once (a ``readline`` with a limit joins its chunks: twice)."""
        first = min(_CHUNK, self.max_bytes + 1)
        line = self.source.readline(first)
        if len(line) < first or line.endswith(b"\n"):
            return line
        grown = bytearray(line)
        while len(grown) <= self.max_bytes and not grown.endswith(b"\n"):
            chunk = self.source.readline(min(_CHUNK, self.max_bytes + 1 - len(grown)))
            if not chunk:
                break
            grown += chunk
        return grown

    def _rest(self, tail: bytes | bytearray) -> bytes | bytearray:
        """Skip to the end of an over-long line; the last :data:`ID_TAIL` bytes of it."""
        while not tail.endswith(b"\n") and (chunk := self.source.readline(_CHUNK)):
            tail = (tail + chunk)[-ID_TAIL:]
        return tail


@contextmanager
def claimed_stdin() -> Iterator[BinaryIO]:
    """fd 0's input on a private copy, while fd 0 itself reads the null device: handlers and child
    processes read the end of input, never the protocol (what ``stdio_server()`` does when it reads
    stdin itself). fd 0 is restored on exit; the copy stays open, since a reader thread may still
    be blocked on it."""
    private = os.dup(0) if sys.platform == "win32" else fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    _point_stdin_at(null)
    os.close(null)
    try:
        yield os.fdopen(private, "rb", closefd=False)
    finally:
        _point_stdin_at(private)


def _point_stdin_at(fd: int) -> None:
    os.dup2(fd, 0)
    with suppress(OSError):  # Windows: the handle child processes inherit (elsewhere, nothing)
        rebind_std_handle_to_fd(0)
