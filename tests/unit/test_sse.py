"""The event-stream decoder and the assembly of its chunks: bytes in any split, every bound, the
assembled completion (no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grok_chat_mcp.upstream.assembly import Assembly, BadEvent, TooLarge, UpstreamEvent
from grok_chat_mcp.upstream.sse import MAX_LINE_BYTES, EventStream, LineTooLong, StreamError


class CompletionStream:
    """Bytes in, visible text out: the decoder feeding the assembly, as the client reads a stream."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES, **limits: int) -> None:
        self.events = EventStream(max_line_bytes)
        self.assembly = Assembly(**limits)

    def feed(self, data: bytes) -> str:
        return "" if self.assembly.done else self.assembly.take(self.events.feed(data))

    def close(self) -> str:
        return "" if self.assembly.done else self.assembly.take(self.events.close())

    @property
    def done(self) -> bool:
        return self.assembly.done

    @property
    def chars(self) -> int:
        return self.assembly.chars

    @property
    def chunks(self) -> int:
        return self.assembly.chunks

    def result(self) -> dict[str, Any]:
        return self.assembly.result()


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0, **top: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "grok-4",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **top,
    }


def sse(*events: dict[str, Any] | str, end: str = "\n") -> bytes:
    """``data:`` events (JSON for dicts) and ``data: [DONE]``."""
    datas = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]
    return "".join(f"data: {d}{end}{end}" for d in [*datas, "[DONE]"]).encode()


def read(raw: bytes, cuts: list[int] | None = None, **limits: int) -> tuple[CompletionStream, str]:
    """Feed ``raw`` cut at ``cuts`` (default: whole), then close; the stream and the text returned."""
    bounds = sorted(set(cuts or []))
    pieces = [raw[a:b] for a, b in zip([0, *bounds], [*bounds, len(raw)], strict=True)]
    stream = CompletionStream(**limits)
    texts = [stream.feed(piece) for piece in pieces]
    texts.append(stream.close())
    return stream, "".join(texts)


def every_split(raw: bytes, **limits: int) -> tuple[CompletionStream, str]:
    """Read ``raw`` whole, one byte at a time and cut at every single position: all must agree."""
    whole, text = read(raw, None, **limits)
    expected = (whole.result() if whole.done else None, text, whole.done, whole.chars, whole.chunks)
    for cuts in [list(range(1, len(raw))), *([i] for i in range(1, len(raw)))]:
        stream, got = read(raw, cuts, **limits)
        assert (stream.result() if stream.done else None, got, stream.done, stream.chars, stream.chunks) == (
            expected
        ), cuts
    return whole, text


def message(stream: CompletionStream, index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = stream.result()["choices"][index]["message"]
    return result


# Assembly


def test_content_is_assembled_and_returned_as_it_arrives() -> None:
    raw = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({"content": " there"}),
        chunk({}, "stop"),
    )
    stream, text = every_split(raw)
    assert text == "Hi there" and stream.done and stream.chars == 8 and stream.chunks == 4
    assert stream.result() == {
        "id": "chatcmpl-7",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "grok-4",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}
        ],
    }
    assert stream.result() == stream.result()  # reading the result changes nothing


def test_feed_returns_the_text_of_the_events_it_completed() -> None:
    stream = CompletionStream()
    assert stream.feed(b'data: {"choices":[{"delta":{"reasoning_content":"Hm"}}]}\n\ndata: {"choi') == "Hm"
    assert stream.feed(b'ces":[{"delta":{"content":"42","refusal":"no"}}]}\n') == ""
    assert stream.feed(b"\n") == "42"  # refusal is kept, not shown
    assert stream.feed(b"") == ""
    assert message(stream) == {
        "role": "assistant",
        "content": "42",
        "reasoning_content": "Hm",
        "refusal": "no",
    }


def test_tool_calls_are_merged_by_index_with_arguments_joined() -> None:
    fragments = [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y"'}},
        {"index": 0, "function": {"arguments": '{"x":'}},
        {"index": 0, "function": {"arguments": "1}"}},
        {"index": 1, "function": {"arguments": ":2}"}},
    ]
    raw = sse(*[chunk({"tool_calls": [f]}) for f in fragments], chunk({}, "tool_calls"))
    stream, text = read(raw, [5, 77, 300])
    assert text == ""
    assert message(stream) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y":2}'}},
        ],
    }
    assert stream.result()["choices"][0]["finish_reason"] == "tool_calls"


def test_usage_zeros_on_the_finish_chunk_then_the_real_usage() -> None:
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    real = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    final = {"id": "chatcmpl-7", "object": "chat.completion.chunk", "choices": [], "usage": real}
    stream, _ = read(sse(chunk({"content": "ok"}), chunk({}, "stop", usage=zero), final))
    assert stream.result()["usage"] == real
    stream, _ = read(sse(chunk({"content": "ok"}, usage=real), chunk({}, "stop", usage=zero)))
    assert stream.result()["usage"] == real


def test_last_non_null_finish_reason_and_unknown_keys_pass_through() -> None:
    first = chunk({"content": "a", "annotations": [1]}, "length", system_fingerprint="fp1")
    first["choices"][0]["logprobs"] = {"content": []}
    later = chunk({"content": "b"}, None, citations=["https://x.test"], system_fingerprint=None)
    stream, _ = read(sse(first, later))
    result = stream.result()
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["choices"][0]["logprobs"] == {"content": []}
    assert result["choices"][0]["message"]["annotations"] == [1]
    assert result["citations"] == ["https://x.test"]
    assert result["system_fingerprint"] == "fp1"  # a later null does not erase it
    assert list(result) == ["id", "object", "created", "model", "system_fingerprint", "choices", "citations"]


def test_several_choices_by_index() -> None:
    stream, text = read(sse(chunk({"content": "B"}, index=1), chunk({"content": "A"}, index=0)))
    assert [c["message"]["content"] for c in stream.result()["choices"]] == ["A", "B"]
    assert text == "BA"


def test_odd_chunks_are_tolerated() -> None:
    raw = sse("5", '"text"', "[1, 2]", {"choices": None}, {"choices": {"a": 1}}, {"choices": ["x", 3]},
              {"choices": [{"delta": "x"}, {"delta": {"tool_calls": 5, "content": 7}}]},
              {"choices": [{"index": "z", "delta": {"tool_calls": ["x", {"index": None}]}}]})  # fmt: skip
    stream, text = read(raw)
    assert stream.done and text == ""
    assert stream.result()["choices"][0]["message"]["tool_calls"][0]["function"] == {
        "name": None,
        "arguments": "",
    }


# Event-stream syntax


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_line_ends(end: str) -> None:
    raw = sse(chunk({"content": "a"}), chunk({"content": "b"}, "stop"), end=end)
    stream, text = every_split(raw)
    assert text == "ab" and stream.done


def test_crlf_split_across_reads_is_one_line_end() -> None:
    stream = CompletionStream()
    assert stream.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}\r') == ""
    assert stream.feed(b"\n\r") == "x"  # \r\n, then an empty line: the event ends once
    assert stream.feed(b"\ndata: [DONE]\r\n\r\n") == ""
    assert stream.done and stream.chunks == 1


def test_comments_fields_empty_data_and_multiline_data() -> None:
    raw = (
        b": keep-alive\n\n"
        b"data:\n\n"  # AceDataCloud sends these
        b"event: message\nid: 3\nretry: 10\nunknown\n"
        b'data: {"choices": [{"delta":\n'
        b'data:{"content": "joined"}}]}\n\n'
        b": ping\n\n"
        b"data\n\n"  # a field without a colon: empty data
        b"data: [DONE]\n\n"
    )
    stream, text = every_split(raw)
    assert text == "joined" and stream.chunks == 1


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_other_unicode_line_separators_are_not_line_ends(separator: str) -> None:
    """``str.splitlines`` would end lines there; an event stream does not (the event is no error)."""
    raw = f": a{separator}b\nevent: error{separator}\n".encode() + sse(chunk({"content": "ok"}))
    stream, text = every_split(raw)
    assert text == "ok" and stream.done


def test_separators_in_raw_content_survive() -> None:
    odd = "a\u2028b\u2029c\x85d"
    stream, text = every_split(sse(chunk({"content": odd})))
    assert text == odd and message(stream)["content"] == odd


def test_done_ends_the_stream_and_later_bytes_are_ignored() -> None:
    stream = CompletionStream()
    stream.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\ndata: [DONE]\n\ndata: not json\n\n')
    assert stream.done
    assert stream.feed(b"event: error\ndata: boom\n\n" + b"x" * 100) == ""
    assert stream.close() == ""
    assert message(stream)["content"] == "x"


@pytest.mark.parametrize("tail", [b"data: [DONE]", b"data:[DONE]\n", b"data:  [DONE] \r\n"])
def test_done_without_its_blank_line_or_spaced(tail: bytes) -> None:
    stream, _ = read(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n' + tail)
    assert stream.done


def test_a_stream_without_done_is_not_done() -> None:
    stream, text = read(b'data: {"choices":[{"delta":{"content":"partial"}}]}\n\n')
    assert not stream.done and text == "partial" and stream.chars == 7 and stream.chunks == 1


def test_an_unterminated_last_event_is_taken_at_close() -> None:
    stream = CompletionStream()
    assert stream.feed(b'data: {"choices":[{"delta":{"content":"end"}}]}') == ""
    assert stream.close() == "end"
    assert not stream.done


# Errors upstream


def test_error_event_carries_its_data() -> None:
    stream = CompletionStream()
    stream.feed(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n')
    with pytest.raises(UpstreamEvent) as caught:
        stream.feed(b"event: error\ndata: model overloaded, try later\n\n")
    assert caught.value.data == "model overloaded, try later"


def test_error_chunk_without_choices() -> None:
    error = {"error": {"code": "api_error", "message": "model overloaded"}}
    with pytest.raises(UpstreamEvent) as caught:
        read(sse(chunk({"content": "a"}), error))
    assert json.loads(caught.value.data) == error
    stream, _ = read(sse({"error": None, "choices": [{"delta": {"content": "fine"}}]}))
    assert message(stream)["content"] == "fine"  # an error key beside choices is not an error


def test_non_json_event() -> None:
    with pytest.raises(BadEvent) as caught:
        read(sse("not json " + "x" * 10_000))
    assert caught.value.excerpt.startswith("not json") and len(caught.value.excerpt) == 8192
    assert isinstance(caught.value, StreamError)


def test_nan_and_infinity_become_null() -> None:
    stream, _ = read(sse('{"choices": [], "usage": {"a": NaN, "b": Infinity, "c": -Infinity, "d": 1}}'))
    assert stream.result()["usage"] == {"a": None, "b": None, "c": None, "d": 1}


# Bounds


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [65, 200, 100_000])
def test_deep_nesting_is_caught(depth: int) -> None:
    raw = sse(chunk({"content": "x", "deep": json.loads(nested(61))}))
    stream, _ = read(raw)
    stream.result()  # 64 levels in all: allowed
    raw = ('data: {"choices": [], "deep": ' + nested(depth) + "}\n\ndata: [DONE]\n\n").encode()
    with pytest.raises(BadEvent, match=r"nested deeper than 64 levels|non-JSON"):
        read(raw)[0].result()


def test_a_custom_depth() -> None:
    stream, _ = read(sse({"choices": [], "x": [[[1]]]}), max_depth=3)
    stream.result()
    stream, _ = read(sse({"choices": [], "x": [[[[1]]]]}), max_depth=3)
    with pytest.raises(BadEvent):
        stream.result()


def test_a_line_without_an_end_is_bounded() -> None:
    stream = CompletionStream(max_line_bytes=1000)
    stream.feed(b"data: " + b"a" * 900)
    with pytest.raises(LineTooLong, match="longer than 1,000 bytes"):
        stream.feed(b"a" * 200)


def test_a_whole_long_line_in_one_read_is_bounded() -> None:
    with pytest.raises(LineTooLong):
        read(sse(chunk({"content": "y" * 2000})), max_line_bytes=1000)
    with pytest.raises(LineTooLong):  # the end of a long line, joined to what came before
        read(b"data: " + b"a" * 600 + b"a" * 600 + b"\n\n", [600], max_line_bytes=1000)
    stream, _ = read(sse(chunk({"content": "y" * 800})), max_line_bytes=1000)
    assert stream.chars == 800


def test_many_data_lines_of_one_event_are_bounded() -> None:
    with pytest.raises(LineTooLong):
        read(b"data: aaaaaaaaa\n" * 200, max_line_bytes=1000)
    with pytest.raises(LineTooLong):
        read(b"data\n" * 2000, max_line_bytes=1000)


def test_keep_alives_alone_hold_nothing() -> None:
    stream = CompletionStream(max_line_bytes=100)
    for _ in range(1000):
        stream.feed(b": ping\n\n")
    assert stream.close() == "" and not stream.done


def test_the_assembled_size_is_bounded() -> None:
    event = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 1000 + b'"}}]}\n\n'
    stream = CompletionStream(max_assembled_chars=10_000)
    for _ in range(9):
        stream.feed(event)
    with pytest.raises(TooLarge, match="passed 10,000 characters"):
        stream.feed(event)
    assert stream.chunks == 10


def test_tool_call_arguments_count_towards_the_size() -> None:
    call = {"index": 0, "function": {"arguments": "z" * 600}}
    with pytest.raises(TooLarge):
        read(sse(*[chunk({"tool_calls": [call]}) for _ in range(10)]), max_assembled_chars=5000)


# Never lose an answer to one character


def test_an_emoji_split_across_reads_comes_out_whole() -> None:
    raw = sse(chunk({"content": "smile 😀 ok"}), chunk({"content": "é"}))
    _, text = every_split(raw)
    assert text == "smile 😀 ok" + "é"


def test_an_emoji_split_in_a_multiline_event() -> None:
    raw = (
        '\r\ndata: {"choices": [{"delta":\r\ndata: {"content": "😀"}}]}\r\n\r\ndata: [DONE]\r\n\r\n'.encode()
    )
    assert every_split(raw)[1] == "😀"


def test_invalid_utf8_becomes_replacement_characters() -> None:
    raw = sse(chunk({"content": "ab"})).replace(b"ab", b"a\xff\xc3b")
    stream, text = every_split(raw)
    assert text == "a\ufffd\ufffdb" and stream.done
    stream, text = read(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n\xe2\x82')  # cut at the end
    assert text == "x"


def test_lone_surrogates_become_replacement_characters() -> None:
    raw = (
        b'data: {"choices":[{"delta":{"content":"a\\ud800b\\uDC00c\\ud83d\\ude00"}}],'
        b' "x\\udfff": {"k": ["\\udbff"]}}\n\ndata: [DONE]\n\n'
    )
    stream, text = every_split(raw)
    assert text == "a\ufffdb\ufffdc😀"
    result = stream.result()
    assert result["x\ufffd"] == {"k": ["\ufffd"]}
    json.dumps(result, ensure_ascii=False).encode()  # no surrogate left to break an encoder


def test_a_surrogate_pair_split_across_chunks_is_one_character() -> None:
    """Upstream cut a UTF-16 pair between two chunks: the two halves join into the emoji they encode."""
    raw = (
        b'data: {"choices":[{"delta":{"content":"a\\ud83d"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"\\ude00b"}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"\\ud83d"}}]}\n\ndata: [DONE]\n\n'
    )
    stream, text = every_split(raw)
    assert text == "a\U0001f600b\ufffd"  # the last half has no partner: U+FFFD
    assert message(stream)["content"] == "a\U0001f600b\ufffd"
    stream = CompletionStream()
    assert stream.feed(raw[:53]) == "a"  # the high half waits for its partner
    assert stream.feed(raw[53:106]) == "\U0001f600b"


# Any split, any bytes


def stream_event(draw_text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    plain = st.fixed_dictionaries(
        {"content": draw_text}, optional={"reasoning_content": draw_text, "role": st.just("assistant")}
    )
    tool = st.fixed_dictionaries(
        {"tool_calls": st.lists(
            st.fixed_dictionaries({"index": st.integers(0, 2), "function": st.fixed_dictionaries(
                {"arguments": draw_text}, optional={"name": st.sampled_from(["f", "g"])})},
                optional={"id": st.sampled_from(["c1", "c2"])}),
            max_size=2)}
    )  # fmt: skip
    data = st.builds(
        lambda delta, index, finish, ascii_only: json.dumps(
            chunk(delta, finish, index), ensure_ascii=ascii_only
        ).encode(),
        st.one_of(plain, tool),
        st.integers(0, 1),
        st.sampled_from([None, None, "stop"]),
        st.booleans(),
    )
    return st.one_of(
        data.map(lambda d: b"data: " + d + b"\n\n"),
        data.map(lambda d: b"data:" + d.replace(b", ", b",\ndata: ", 1) + b"\r\n\r\n"),
        st.sampled_from([b": ping\n\n", b"data:\n\n", b"event: message\r", b"id: 1\n", b"\n", b"\r\n"]),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(stream_event(st.text(max_size=6)), max_size=8),
    st.booleans(),
    st.lists(st.integers(0, 4000), max_size=12),
)
def test_any_split_reads_like_the_whole(events: list[bytes], done: bool, cuts: list[int]) -> None:
    raw = b"".join(events) + (b"data: [DONE]\n\n" if done else b"")
    whole, text = read(raw)
    stream, got = read(raw, [c for c in cuts if c < len(raw)])
    assert got == text and stream.done == whole.done == done
    assert (stream.chars, stream.chunks) == (whole.chars, whole.chunks)
    assert stream.result() == whole.result()


SNIPPETS = [b"data: ", b"data:", b"\n", b"\r", b"\r\n", b"event: error\n", b"[DONE]", b"\xf0\x9f", b"NaN",
            b'{"choices":[{"delta":{"content":"', b'"}}]}', b"\\ud800", b"[[[[[", b"]]]]]"]  # fmt: skip


def outcome(raw: bytes, cuts: list[int]) -> tuple[Any, ...]:
    try:
        stream, text = read(raw, cuts, max_line_bytes=200, max_assembled_chars=2000, max_depth=4)
        return ("ok", text, stream.done, stream.chars, stream.chunks, stream.result())
    except StreamError as exc:
        return (type(exc), str(exc))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(SNIPPETS),
        ),
        max_size=30,
    ),
    st.lists(st.integers(0, 400), max_size=10),
)  # fmt: skip
def test_any_bytes_any_split_same_outcome(parts: list[bytes], cuts: list[int]) -> None:
    raw = b"".join(parts)
    whole = outcome(raw, [])
    assert outcome(raw, [c for c in cuts if c < len(raw)]) == whole
    if whole[0] == "ok":
        json.dumps(whole[-1], ensure_ascii=False).encode()
