"""Unbreakable: random bad input, faulty upstreams, hanging upstreams, bad settings."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import respx
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import TextContent
from standin.upstream import Upstream
from standin.upstream import completion as stand_in_completion

from grok_chat_mcp.config import Settings, load_settings
from grok_chat_mcp.server import build_server
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import HELLO, SCRIPT, answer, completion, params, server_env, text_of

pytestmark = pytest.mark.anyio

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
not_none = json_values.filter(lambda v: v is not None)
not_text = not_none.filter(lambda v: not isinstance(v, str))
not_number = not_none.filter(lambda v: isinstance(v, bool) or not isinstance(v, int | float))
not_int = not_none.filter(lambda v: isinstance(v, bool) or not isinstance(v, int))
not_json_text = not_none.filter(lambda v: not (isinstance(v, str) and v.lstrip()[:1] in ("[", "{")))


def outside(low: float, high: float) -> st.SearchStrategy[Any]:
    return (  # JSON cannot carry infinities
        st.floats(min_value=high, exclude_min=True, allow_infinity=False)
        | st.floats(max_value=low, exclude_max=True, allow_infinity=False)
        | not_number
    )


non_objects = st.lists(not_none.filter(lambda v: not isinstance(v, dict)), min_size=1)
bad_roles = st.lists(
    st.fixed_dictionaries({"role": st.text(max_size=6).filter(lambda r: r != "user")}), min_size=1
)
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "messages": not_json_text.filter(lambda v: not isinstance(v, list) or not v) | non_objects | bad_roles,
    "model": not_text | st.just(""),
    "temperature": outside(0, 2).filter(lambda v: v is not None),
    "top_p": outside(0, 1),
    "max_tokens": st.integers(max_value=0) | not_int,
    "stop": not_json_text.filter(lambda v: not isinstance(v, str) and (not isinstance(v, list) or not v))
    | st.lists(st.text(), min_size=5, max_size=7),
    "seed": not_int,
    "user": not_text,
    "stream": not_none.filter(lambda v: not isinstance(v, bool)),
    "presence_penalty": outside(-2, 2),
    "frequency_penalty": outside(-2, 2),
    "reasoning_effort": not_none.filter(lambda v: v not in ("low", "high")),
    "response_format": not_json_text.filter(lambda v: not isinstance(v, dict))
    | st.fixed_dictionaries({"type": st.text(max_size=5).filter(lambda t: t != "text")}),  # "text" is valid
    "tools": not_json_text.filter(lambda v: not isinstance(v, list)) | non_objects,
    "tool_choice": not_json_text.filter(lambda v: v not in ("none", "auto", "required")),
    "unknown_parameter": not_none,
}  # fmt: skip


@st.composite
def invalid_arguments(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    field = draw(st.sampled_from(sorted(INVALID)))
    return field, {"messages": HELLO, field: draw(INVALID[field])}


@given(case=invalid_arguments())
@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_random_invalid_arguments_never_reach_upstream(case: tuple[str, dict[str, Any]]) -> None:
    field, arguments = case
    with respx.mock(base_url="https://api.acedata.cloud", assert_all_called=False) as upstream:
        route = upstream.post("/grok/chat/completions").respond(200, json=completion())
        async with Client(build_server(Settings(api_token="t0ken-for-fuzz"))) as client:
            result = await client.call_tool(TOOL_NAME, arguments)
            assert result.is_error, arguments
            block = result.content[0]
            assert isinstance(block, TextContent)
            assert field in block.text, (arguments, block.text)
            assert "Traceback" not in block.text
            assert not route.called
            after = await client.call_tool(TOOL_NAME, {"messages": HELLO})
            assert not after.is_error
            assert route.call_count == 1


async def test_hanging_upstream_is_cut_off_at_the_timeout(stand_in: Upstream, tmp_path: Path) -> None:
    async with Client(params(stand_in.url("hang"), tmp_path, GROK_REQUEST_TIMEOUT="1")) as client:
        started = time.monotonic()
        result = await client.call_tool(TOOL_NAME, {"messages": HELLO})
        elapsed = time.monotonic() - started
    assert result.is_error
    assert "Timeout" in text_of(result) and "1s" in text_of(result)
    assert 0.9 <= elapsed < 5
    assert len([r for r in stand_in.requests if r.path.startswith("/hang")]) >= 1


async def test_one_process_serves_after_a_burst_of_faults(stand_in: Upstream, tmp_path: Path) -> None:
    """Faults, then a good call, through one process and its one pooled client."""
    faults = [
        "status500",
        "status503",
        "html",
        "truncated",
        "status401",
        "hang",
        "status429",
        "status504",
        "nowhere",
    ]
    async with Client(
        params(stand_in.url("ok"), tmp_path, GROK_MAX_RETRIES="0", GROK_REQUEST_TIMEOUT="1")
    ) as c:
        for scenario in faults:
            arguments = {"messages": HELLO, "user": f"scenario:{scenario}", "stream": scenario == "truncated"}
            result = await c.call_tool(TOOL_NAME, arguments)
            assert result.is_error, scenario
            assert "Traceback" not in text_of(result)
        good = await c.call_tool(TOOL_NAME, {"messages": HELLO})
    assert answer(good)["result"] == stand_in_completion("grok-4.3", "pong")  # grok-4 redirects


async def test_connection_refused_names_the_host(tmp_path: Path) -> None:
    async with Client(params("http://127.0.0.1:9", tmp_path, GROK_MAX_RETRIES="1")) as client:
        result = await client.call_tool(TOOL_NAME, {"messages": HELLO})
    assert result.is_error
    text = text_of(result)
    assert "Network error" in text and "127.0.0.1" in text and "after 2 attempts" in text


def test_invalid_settings_are_reported_and_defaults_used(tmp_path: Path) -> None:
    env = {"GROK_REQUEST_TIMEOUT": "soon", "GROK_MAX_RETRIES": "-1", "LOG_LEVEL": "loud",
           "ACEDATACLOUD_API_BASE_URL": "ftp://x", "GROK_EVENT_LOOP": "trio"}  # fmt: skip
    loaded = load_settings(env, tmp_path / "missing.env")
    assert (loaded.timeout, loaded.max_retries, loaded.log_level) == (900.0, 2, "INFO")
    assert loaded.call_timeout == 1800.0
    assert (
        loaded.problem is not None and "ACEDATACLOUD_API_BASE_URL='ftp://x'" in loaded.problem
    )  # not replaced
    assert loaded.event_loop == "auto"
    assert len(loaded.warnings) == 4
    assert load_settings({"GROK_EVENT_LOOP": "AsyncIO"}, tmp_path / "x").event_loop == "asyncio"
    assert load_settings({"GROK_MAX_RETRIES": "1.5"}, tmp_path / "x").max_retries == 2
    assert load_settings({"GROK_MAX_RETRIES": "99"}, tmp_path / "x").max_retries == 10
    assert load_settings({"GROK_REQUEST_TIMEOUT": "0"}, tmp_path / "x").timeout == 900.0
    assert load_settings({"GROK_CALL_TIMEOUT": "0"}, tmp_path / "x").call_timeout == 1800.0
    assert load_settings({"GROK_CALL_TIMEOUT": "60"}, tmp_path / "x").call_timeout == 60.0
    good = load_settings(
        {"GROK_REQUEST_TIMEOUT": "30", "GROK_MAX_RETRIES": "0", "LOG_LEVEL": "warn"}, tmp_path / "x"
    )
    assert (good.timeout, good.max_retries, good.log_level) == (30.0, 0, "WARNING")


def test_dotenv_loses_to_the_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ACEDATACLOUD_API_TOKEN=file-token\nGROK_MAX_RETRIES=5\n")
    loaded = load_settings({"ACEDATACLOUD_API_TOKEN": "env-token"}, tmp_path / ".env")
    assert (loaded.api_token, loaded.token_source, loaded.max_retries) == ("env-token", "environment", 5)
    assert "env-token" not in repr(loaded)  # the token is kept out of repr
    from_file = load_settings({}, tmp_path / ".env")
    assert (from_file.api_token, from_file.token_source) == ("file-token", str(tmp_path / ".env"))


def test_bad_settings_start_anyway_with_warnings_on_stderr(stand_in: Upstream, tmp_path: Path) -> None:
    env = server_env(stand_in.url("ok"), GROK_REQUEST_TIMEOUT="abc", GROK_MAX_RETRIES="-3")
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}) + "\n"
    done = subprocess.run(
        [SCRIPT], input=message.encode(), capture_output=True, env=env, cwd=tmp_path, timeout=30, check=False
    )
    assert done.returncode == 0
    assert json.loads(done.stdout.splitlines()[0])["id"] == 1
    stderr = done.stderr.decode()
    assert "GROK_REQUEST_TIMEOUT='abc' is not a number; using 900" in stderr
    assert "GROK_MAX_RETRIES='-3' is out of range; using 2" in stderr
    assert "Traceback" not in stderr


async def test_cancelled_call_leaves_server_healthy(stand_in: Upstream, tmp_path: Path) -> None:
    async with Client(params(stand_in.url("hang"), tmp_path)) as client:
        with anyio.move_on_after(0.5):
            await client.call_tool(TOOL_NAME, {"messages": HELLO})
        assert (await client.list_tools()).tools
