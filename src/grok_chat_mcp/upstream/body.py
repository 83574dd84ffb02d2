"""Reading a response body within bounds: decompressed a step at a time, never past a limit."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx

#: The largest (decoded) non-streamed response body accepted.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_STEP = 64 * 1024


class Unreadable(Exception):
    """The body cannot be read within its bounds (too large, bad encoding)."""


def decoded(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body, decompressed at most 64 KiB at a time (a gzip bomb cannot balloon); without a
    ``Content-Encoding``, httpx's own iterator."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if response.is_stream_consumed:  # read already (a mock transport): httpx has decoded it
        return _read_already(response)
    if encoding in ("", "identity"):
        return response.aiter_raw()
    return _inflated(response, encoding)


async def _read_already(response: httpx.Response) -> AsyncIterator[bytes]:
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise Unreadable("the response is larger than any completion needs")
    yield response.content


async def _inflated(response: httpx.Response, encoding: str) -> AsyncIterator[bytes]:
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Unreadable(f"upstream sent an unsupported Content-Encoding: {encoding[:40]!r}")
    inflater = zlib.decompressobj(47)  # gzip or zlib header, detected
    async for raw in response.aiter_raw():
        data = raw
        while data:
            try:
                out = inflater.decompress(data, _STEP)
            except zlib.error:
                raise Unreadable("upstream sent a corrupt compressed body") from None
            if out:
                yield out
            data = inflater.unconsumed_tail


async def read_body(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """Up to ``limit`` decoded bytes; more is an error, or cut off where ``truncate``."""
    pieces: list[bytes] = []
    size = 0
    async for piece in decoded(response):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            if truncate:
                break
            raise Unreadable(f"the response passed {limit // 2**20} MiB, more than any completion needs")
    return b"".join(pieces)[:limit]
