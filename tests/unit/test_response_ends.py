"""ResponseEnds: where each HTTP/1.1 response on a connection ends, however the bytes are split."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from grok_chat_mcp.upstream.transport import ResponseEnds


def length_framed(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


def chunked(*pieces: bytes) -> bytes:
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces if piece)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + (b"0\r\n\r\n")
    )


NO_CONTENT = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"
CONTINUE_THEN_OK = b"HTTP/1.1 100 Continue\r\n\r\n" + length_framed(b"after continue")

bodies = st.binary(max_size=300)
responses = st.one_of(
    bodies.map(length_framed),
    st.lists(bodies, max_size=4).map(lambda pieces: chunked(*pieces)),
    st.just(NO_CONTENT),
    st.just(CONTINUE_THEN_OK),
    st.lists(st.text(max_size=40), max_size=4).map(
        lambda texts: chunked(*(b"data: %s\n\n" % json.dumps({"content": t}).encode() for t in texts))
    ),
)


def ends_found(stream: bytes, cuts: list[int]) -> list[int]:
    """Feeds ``stream`` cut at ``cuts`` as a connection would, holding back after each end found;
    returns the absolute offsets of the ends."""
    ends = ResponseEnds()
    found, position = [], 0
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if b > a]
    pending = list(pieces)
    while pending:
        piece = pending.pop(0)
        end = ends.end(piece)
        if 0 < end < len(piece):
            pending.insert(0, piece[end:])
            piece = piece[:end]
        position += len(piece)
        if end == len(piece):
            found.append(position)
    return found


@given(st.lists(responses, min_size=1, max_size=4), st.data())
def test_every_response_end_is_found_however_the_bytes_are_split(
    sequence: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(sequence)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=8))))
    expected, offset = [], 0
    for response in sequence:
        offset += len(response)
        expected.append(offset)
    assert ends_found(stream, cuts) == expected


def test_an_unsolicited_response_in_the_same_read_is_held_back() -> None:
    first, stray = length_framed(b'{"answer": 1}'), length_framed(b'{"UNSOLICITED": true}')
    assert ResponseEnds().end(first + stray) == len(first)


def test_a_stream_whose_last_chunk_is_followed_by_more_is_cut_there() -> None:
    stream = chunked(b"data: {}\n\n", b"data: [DONE]\n\n")
    assert ResponseEnds().end(stream + b"HTTP/1.1 200 OK\r\n") == len(stream)


def test_what_cannot_be_framed_passes_through_whole() -> None:
    close_delimited = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close" * 2
    not_http = b"\x00\x01garbage\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    for data in (close_delimited, not_http):
        ends = ResponseEnds()
        assert ends.end(data) == -1
        assert ends.end(data) == -1  # and stays out of the way


def test_a_head_that_never_ends_is_not_buffered_without_bound() -> None:
    ends = ResponseEnds()
    piece = b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70_000
    assert ends.end(piece) == -1
    assert ends.end(length_framed(b"x")) == -1  # given up on: passes through
