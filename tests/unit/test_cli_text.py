"""The command line's text: --help, --models and its JSON, as a terminal and a script read them."""

from __future__ import annotations

import json
import logging

import pytest

from grok_chat_mcp import cli
from grok_chat_mcp.capabilities import CURRENT_MODELS, RETIRED_MODELS
from grok_chat_mcp.config import ENV_VARS
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.results import error

COLUMNS = 100


def test_help_describes_both_transports_and_fits_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert "stdio" in description and "streamable HTTP" in description
    assert "(stdio)" not in text
    assert "(default: (none))" not in text and "(default: )" not in text
    assert all(len(line) <= COLUMNS for line in text.splitlines()), max(text.splitlines(), key=len)
    for name, _, _ in ENV_VARS:
        assert f"  {name} " in text


def test_models_fits_100_columns_and_lists_every_model() -> None:
    text = cli.models_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= COLUMNS
    assert lines[0].split() == ["model", "status", "reasoning_effort", "default", "images", "penalties"]
    rows = {line.split()[0]: line for line in lines[1 : lines.index("")]}
    assert set(rows) >= {*CURRENT_MODELS, *RETIRED_MODELS, "grok-4.6", "grok-4.3", "grok-4.20-multi-agent"}
    assert rows["grok-4.7"].split()[1:] == ["served", "low..xhigh", "high", "yes", "no"]
    assert rows["grok-4"].split()[1:] == ["served", "(grok-4.3)", "*", "unsure", "-", "yes", "no"]
    assert "retired 2026-07-27" in rows["grok-2-vision"]
    column = lines[0].index("status")
    assert all(row[column - 2 : column] == "  " and row[column] != " " for row in rows.values())
    notes = lines[lines.index("") + 1 :]
    assert any(note.startswith("* grok-4 is answered by grok-4.3 at low effort") for note in notes)
    assert any("has not confirmed it" in note for note in notes)
    assert "grok-4.5 treats reasoning_effort xhigh as high." in notes
    assert any(note.startswith("grok-4.20-multi-agent is reported") for note in notes)
    assert any(note.startswith("grok-4.20-multi-agent: ") and "16" in note for note in notes)


def test_models_json_gives_lists_booleans_and_null_where_unsure() -> None:
    data = json.loads(cli.models_json())
    assert [row["model"] for row in data][:4] == list(CURRENT_MODELS)
    by_model = {row["model"]: row for row in data}
    assert by_model["grok-4.7"] == {
        "model": "grok-4.7",
        "status": "current",
        "served_by": None,
        "served_effort": None,
        "retired": None,
        "reasoning_effort": ["low", "medium", "high", "xhigh"],
        "default_effort": "high",
        "effort_meaning": None,
        "effort_as": None,
        "remark": None,
        "images": True,
        "presence_penalty": False,
        "frequency_penalty": False,
        "stop": False,
    }
    assert by_model["grok-4"]["served_by"] == "grok-4.3" and by_model["grok-4"]["reasoning_effort"] is None
    assert (by_model["grok-4"]["served_effort"], by_model["grok-3"]["served_effort"]) == ("low", "none")
    assert by_model["grok-4.5"]["effort_as"] == {"xhigh": "high"}
    assert by_model["grok-3"]["images"] is None
    assert by_model["grok-4.20-reasoning"]["reasoning_effort"] == []
    assert by_model["grok-2-vision"]["retired"] == "2026-07-27"


def test_a_tool_error_is_logged_whole_and_redacted(caplog: pytest.LogCaptureFixture) -> None:
    text = "Invalid arguments:\n- messages[0].role: not one of ...\n- temperature: sk-secret-0123456789abc"
    with caplog.at_level(logging.INFO, logger="grok_chat_mcp"):
        error(text, Secrets(["sk-secret-0123456789abc"]))
    (record,) = [r for r in caplog.records if r.getMessage().startswith("tool error: ")]
    logged = record.getMessage()
    assert "messages[0].role: not one of" in logged and "temperature: " in logged
    assert "sk-secret-0123456789abc" not in logged
    assert "\n" not in logged
