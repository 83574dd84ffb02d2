"""SSE decoding and chunk assembly, from recorded-style transcripts."""

from __future__ import annotations

import json
from typing import Any

from grok_chat_mcp.stream import SSEDecoder, StreamAssembler


def events(raw: str) -> list[str]:
    decoder = SSEDecoder()
    out = [data for line in raw.splitlines() if (data := decoder.feed(line)) is not None]
    if (tail := decoder.flush()) is not None:
        out.append(tail)
    return out


def assemble(chunks: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    assembler = StreamAssembler()
    texts = [assembler.add(c) for c in chunks]
    return assembler.result(), [t for t in texts if t]


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0, **top: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "grok-4",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        **top,
    }


def test_decoder_handles_comments_crlf_multiline_and_fields() -> None:
    raw = ': keep-alive\r\n\r\nevent: message\r\nid: 3\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata:[DONE]\r\n\r\n'
    assert events(raw) == ['{"a":\n1}', "[DONE]"]


def test_decoder_flushes_an_unterminated_last_event() -> None:
    assert events("data: x\n\ndata: [DONE]") == ["x", "[DONE]"]


def test_decoder_ignores_blank_and_comment_only_streams() -> None:
    assert events("\n\n: ping\n\n: ping\n") == []


def test_content_only() -> None:
    result, texts = assemble(
        [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}), chunk({"content": " there"}),
         chunk({}, "stop")]
    )  # fmt: skip
    assert texts == ["Hi", " there"]
    assembler = StreamAssembler()
    assembler.add(chunk({"content": "x"}))
    assert assembler.result() == assembler.result()  # reading the result changes nothing
    assert result == {
        "id": "chatcmpl-7",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "grok-4",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}
        ],
    }


def test_reasoning_then_content() -> None:
    result, texts = assemble(
        [chunk({"role": "assistant", "reasoning_content": "Let me"}), chunk({"reasoning_content": " think."}),
         chunk({"content": "42"}), chunk({}, "stop")]
    )  # fmt: skip
    message = result["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "42", "reasoning_content": "Let me think."}
    assert texts == ["Let me", " think.", "42"]


def test_tool_call_whole() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    result, _ = assemble([chunk({"role": "assistant", "tool_calls": [call]}), chunk({}, "tool_calls")])
    message = result["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert result["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_in_fragments_and_parallel_calls() -> None:
    fragments = [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y"'}},
        {"index": 0, "function": {"arguments": '{"x":'}},
        {"index": 0, "function": {"arguments": "1}"}},
        {"index": 1, "function": {"arguments": ":2}"}},
    ]
    result, _ = assemble([chunk({"tool_calls": [f]}) for f in fragments] + [chunk({}, "tool_calls")])
    calls = result["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("a", "f", '{"x":1}'),
        ("b", "g", '{"y":2}'),
    ]
    assert all(json.loads(c["function"]["arguments"]) for c in calls)


def test_usage_from_final_empty_choices_chunk_beats_zero_usage() -> None:
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    real = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    final = {"id": "chatcmpl-7", "object": "chat.completion.chunk", "choices": [], "usage": real}
    result, _ = assemble([chunk({"content": "ok"}), chunk({}, "stop", usage=zero), final])
    assert result["usage"] == real
    zero_after_real, _ = assemble([chunk({"content": "ok"}, usage=real), chunk({}, "stop", usage=zero)])
    assert zero_after_real["usage"] == real


def test_last_non_null_finish_reason_and_citations_kept() -> None:
    result, _ = assemble(
        [chunk({"content": "a"}, "length"), chunk({"content": "b"}, None, citations=["https://x.test"])]
    )
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["citations"] == ["https://x.test"]


def test_several_choices_by_index() -> None:
    result, _ = assemble([chunk({"content": "B"}, index=1), chunk({"content": "A"}, index=0)])
    assert [c["message"]["content"] for c in result["choices"]] == ["A", "B"]


def test_large_stream_is_linear() -> None:
    piece = "y" * 1024
    assembler = StreamAssembler()
    for _ in range(2048):  # 2 MiB in 1 KiB deltas
        assembler.add(chunk({"content": piece}))
    assert len(assembler.result()["choices"][0]["message"]["content"]) == 2 * 1024 * 1024
    assert assembler.chars == 2 * 1024 * 1024
