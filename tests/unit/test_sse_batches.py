"""Reads that carry many events (a busy connection) give what the same events give one read at a
time: text, counters, result, and the error a stream ends with (no HTTP). See
docs/design-stream.md for the per-read design these were written for."""

from __future__ import annotations

import json
from typing import Any

import pytest

from grok_chat_mcp.upstream.assembly import Assembly, BadEvent, TooLarge, UpstreamEvent
from grok_chat_mcp.upstream.sse import EventStream, LineTooLong, StreamError


def data(value: dict[str, Any] | str) -> bytes:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"data: {text}\n\n".encode()


def content(text: str) -> bytes:
    return data({"id": "c", "choices": [{"index": 0, "delta": {"content": text}}]})


def outcome(reads: list[bytes], **limits: int) -> tuple[Any, ...]:
    """What the client gets from these reads: the texts of each read, or the error it ends with."""
    events, assembly = EventStream(max_line_bytes=limits.pop("max_line_bytes", 8192)), Assembly(**limits)
    texts: list[str] = []
    try:
        for piece in reads:
            texts.append(assembly.take(events.feed(piece)))
            if assembly.done:
                break
        else:
            texts.append(assembly.take(events.close()))
    except StreamError as exc:
        return ("error", type(exc), str(exc), getattr(exc, "excerpt", None), assembly.chunks)
    return ("ok", "".join(texts), assembly.done, assembly.chars, assembly.chunks, assembly.result())


def same_as_one_at_a_time(events: list[bytes], **limits: int) -> tuple[Any, ...]:
    """The events in one read and one read each agree; return that outcome."""
    together = outcome([b"".join(events)], **limits)
    assert outcome(events, **limits) == together
    return together


def test_a_read_with_many_events() -> None:
    events = [content(f"w{i} ") for i in range(200)] + [b"data: [DONE]\n\n"]
    stream, assembly = EventStream(), Assembly()
    text = assembly.take(stream.feed(b"".join(events)))
    assert text == "".join(f"w{i} " for i in range(200)) and assembly.done
    assert assembly.chunks == 200 and assembly.chars == len(text)
    assert same_as_one_at_a_time(events)[1] == text


def test_an_event_split_across_reads_joins_the_next_batch() -> None:
    raw = content("a") + content("b") + content("c") + b"data: [DONE]\n\n"
    cut = len(content("a")) + 10
    stream, assembly = EventStream(), Assembly()
    assert assembly.take(stream.feed(raw[:cut])) == "a"
    assert assembly.take(stream.feed(raw[cut:])) == "bc" and assembly.done


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        '{"choices": []} trailing',  # a value and garbage
        '{"choices": []} {"choices": []}',  # two values
        '{"choices": []},{"choices": []}',  # two values, as an array's items would be
        "",  # a space only: no value
        '{"choices": [',  # cut short
        "123" + "4" * 5000,  # past Python's digit limit
    ],
)
def test_a_malformed_payload_among_good_ones_is_named(bad: str) -> None:
    events = [content("a"), content("b"), f"data: {bad} \n\n".encode(), content("c"), b"data: [DONE]\n\n"]
    result = same_as_one_at_a_time(events)
    assert result[:3] == ("error", BadEvent, "the event stream carried a non-JSON event (not JSON)")
    assert result[3] == f"{bad} "[:8192] and result[4] == 2  # the culprit, and the chunks before it


def test_payloads_that_reach_into_each_other_are_each_named() -> None:
    """Malformed payloads whose joined text would be one valid array of as many items: each alone
    is not JSON, so the first is named, as when they come one read at a time."""
    events = [data('{"choices": []},{"choices": []}'), data('{"choices": [1'), data("2]}")]
    result = same_as_one_at_a_time([content("a"), *events, b"data: [DONE]\n\n"])
    assert result[1] is BadEvent and result[3] == '{"choices": []},{"choices": []}'
    result = same_as_one_at_a_time([data('{"choices": [{"delta": {"content": "x'), data('y"}}]}')])
    assert result[1] is BadEvent  # nor does a string cut across two events


def test_done_and_comments_mixed_in() -> None:
    events = [b": ping\n\n", content("a"), b"data:\n\n", b"event: message\nid: 4\n", content("b")]
    events += [b"data:  [DONE] \n\n", b"data: not json\n\n", b"event: error\ndata: late\n\n"]
    result = same_as_one_at_a_time(events)
    assert result[:3] == ("ok", "ab", True) and result[4] == 2


def test_an_error_event_in_a_batch_comes_after_the_events_before_it() -> None:
    events = [content("a"), b"event: error\ndata: overloaded\n\n", b"data: not json\n\n"]
    result = same_as_one_at_a_time(events)
    assert result[1] is UpstreamEvent and result[4] == 1
    chunk = data({"error": {"message": "overloaded"}})
    assert same_as_one_at_a_time([content("a"), chunk, content("b")])[1] is UpstreamEvent


def test_a_surrogate_pair_split_across_events_in_one_read_and_across_reads() -> None:
    high, low = (
        data('{"choices":[{"delta":{"content":"a\\ud83d"}}]}'),
        data('{"choices":[{"delta":{"content":"\\ude00b"}}]}'),
    )
    done = b"data: [DONE]\n\n"
    stream, assembly = EventStream(), Assembly()
    assert assembly.take(stream.feed(high + low)) == "a\U0001f600b"  # the same read
    stream, assembly = EventStream(), Assembly()
    assert assembly.take(stream.feed(content("x") + high)) == "xa"  # the high half waits
    assert assembly.take(stream.feed(low + done)) == "\U0001f600b"
    assert assembly.result()["choices"][0]["message"]["content"] == "xa\U0001f600b"
    assert same_as_one_at_a_time([high, low, high, done])[1] == "a\U0001f600ba\ufffd"


def test_a_line_too_long_in_the_middle_of_a_batch() -> None:
    long = b"data: " + b"x" * 9000 + b"\n\n"
    result = same_as_one_at_a_time([content("a"), long, content("c")])
    assert result[1] is LineTooLong and result[4] == 1
    # [DONE] before the long line: the stream is complete, the bound never matters
    assert same_as_one_at_a_time([content("a"), b"data: [DONE]\n\n", long])[:3] == ("ok", "a", True)


def test_the_assembled_size_passed_in_the_middle_of_a_batch() -> None:
    events = [content("x" * 400) for _ in range(5)] + [b"data: not json\n\n", b"data: [DONE]\n\n"]
    result = same_as_one_at_a_time(events, max_assembled_chars=1200)
    assert result[1] is TooLarge and result[4] == 3  # the third chunk passes it; nothing after counts
