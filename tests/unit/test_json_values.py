"""``json_values.loads`` reads upstream's JSON exactly as the standard library does: pydantic_core
parses what it can, and whatever it refuses is read (or refused) by ``json``."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grok_chat_mcp.upstream.json_values import loads


def standard(data: str | bytes) -> Any:
    """The reading ``loads`` promises: ``json`` with NaN and Infinity as null, JSON's whitespace
    around the value, invalid UTF-8 as U+FFFD; ``ValueError`` for anything else."""
    if isinstance(data, bytes):
        try:
            return json.loads(data, parse_constant=lambda _: None)
        except UnicodeDecodeError:
            data = data.decode("utf-8", "replace")
    try:
        return json.loads(data.strip(" \t\n\r"), parse_constant=lambda _: None)
    except RecursionError:
        raise ValueError("nested too deep") from None


def same_reading(data: str | bytes) -> None:
    try:
        expected = standard(data)
    except ValueError:
        with pytest.raises(ValueError):  # noqa: PT011 (any reason: the standard library's words vary)
            loads(data)
        return
    got = loads(data)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # the same types and key order too (1 is not 1.0)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
#: Texts a careless or hostile upstream sends: NaN, a lone surrogate, an emoji cut in two.
PIECES = ["NaN", "Infinity", "-Infinity", '"\\ud83d"', '"\\ude00"', '"\\ud83d\\ude00"', "1e400", "-0", "0.1"]


@given(values, st.booleans(), st.sampled_from([None, 0, 2]))
def test_any_value_as_json_text_reads_as_the_standard_library_reads_it(
    value: Any, ascii_only: bool, indent: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    same_reading(text)
    same_reading(f" \n{text}\r\t")
    same_reading(text.encode("utf-8", "surrogatepass"))


@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4))
def test_values_only_the_standard_library_reads_read_the_same(pieces: list[str]) -> None:
    same_reading(f"[{', '.join(pieces)}]")
    same_reading(f'{{"k": {pieces[0]}}}')


@given(st.binary(max_size=40) | st.text(max_size=40))
def test_anything_else_reads_the_same_or_is_refused_the_same(data: bytes | str) -> None:
    same_reading(data)


surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


@given(st.lists(st.text(max_size=3) | surrogates, min_size=1, max_size=4).map("".join))
def test_text_holding_surrogates_reads_the_same(text: str) -> None:
    same_reading(json.dumps(text, ensure_ascii=False))  # the surrogates as characters
    same_reading(json.dumps(text))  # and as escapes
    same_reading(json.dumps({text: [text]}, ensure_ascii=False))


@pytest.mark.parametrize(
    "data",
    [
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 BOM: json skips it in bytes
        '"\\u00e9\\ud83d"',  # a lone high surrogate after text
        '["\ud83d", "\ud83d\ude00", "\udfff x"]',  # surrogates as characters in a str, not escapes
        '{"\ud800": 1}',
        b'{"a": "\xff"}',  # invalid UTF-8
        "[" * 200 + "]" * 200,  # deeper than pydantic_core goes
        "[" * 100_000 + "]" * 100_000,  # deeper than Python's recursion limit
        "1" * 5000,  # more digits than int() takes
        '{"a": 1} {"b": 2}',
        "\ufeff{}",
        "",
    ],
)
def test_edges_read_the_same(data: str | bytes) -> None:
    same_reading(data)


def test_nan_and_infinity_are_null() -> None:
    assert loads('{"a": NaN, "b": [Infinity, -Infinity], "c": 1e400}') == {
        "a": None,
        "b": [None, None],
        "c": math.inf,  # a number too large for a float is JSON, and json reads it as infinity
    }
