"""The console script's own commands: --models and --check, as a person or a script runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from grok_chat_mcp.capabilities import CURRENT_MODELS, RETIRED_MODELS
from grok_chat_mcp.config import ENV_VARS
from tests.conftest import SCRIPT, STATE_HOME, server_env


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        env=server_env("https://api.acedata.cloud", **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_models_prints_the_capability_table(tmp_path: Path) -> None:
    done = run("--models", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split()[:2] == ["model", "status"]
    for model in (*CURRENT_MODELS, *RETIRED_MODELS):
        assert any(line.startswith(model + " ") for line in lines), model
    grok_4_7 = next(line for line in lines if line.startswith("grok-4.7 "))
    assert "xhigh" in grok_4_7


def test_models_json_is_for_scripts(tmp_path: Path) -> None:
    done = run("--models", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    by_model = {row["model"]: row for row in rows}
    assert set(CURRENT_MODELS) <= set(by_model)
    assert by_model["grok-4.5"]["reasoning_effort"] == ["low", "medium", "high"]
    assert by_model["grok-4.5"]["images"] is True
    assert run("--json", cwd=tmp_path).returncode == 2  # --json goes with --models


def test_check_shows_every_setting_with_its_source(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GROK_MAX_RETRIES=3\n")
    done = run("--check", cwd=tmp_path, GROK_RETURN_AFTER="30", GROK_STORE="")  # "": unset
    assert done.returncode == 0, done.stdout
    for name, _, _ in ENV_VARS:
        assert f"  {name} " in done.stdout, name
    assert "GROK_RETURN_AFTER           30 s  (environment)" in done.stdout
    assert f"GROK_MAX_RETRIES            3  ({tmp_path / '.env'})" in done.stdout
    default_file = STATE_HOME / "grok-chat-mcp" / "conversations.db"
    assert f"GROK_STORE                  sqlite://{default_file}  (default)" in done.stdout
    assert default_file.exists()  # --check opens it as the server would
    assert done.stdout.rstrip().endswith("ok: the server can make calls (no request was made).")


def test_check_says_replaced_and_refuses_a_base_url_without_scheme(tmp_path: Path) -> None:
    done = run("--check", cwd=tmp_path, GROK_MAX_RETRIES="lots")
    assert done.returncode == 0
    assert "GROK_MAX_RETRIES            2  (replaced)" in done.stdout
    assert "replaced: GROK_MAX_RETRIES='lots' is not a number; using 2" in done.stdout
    assert "ok, with replaced values" in done.stdout
    done = run("--check", cwd=tmp_path, ACEDATACLOUD_API_BASE_URL="api.acedata.cloud")
    assert done.returncode == 1
    errors = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: ACEDATACLOUD_API_BASE_URL='api.acedata.cloud' does not start with http:// or https://; "
        "fix it (the default is https://api.acedata.cloud)."
    ]
    assert "https://api.acedata.cloud/grok" not in done.stdout  # no silent fall-back to production


def test_check_never_prints_a_password_in_the_base_url(tmp_path: Path) -> None:
    done = run("--check", cwd=tmp_path, ACEDATACLOUD_API_BASE_URL="https://me:hunter2-secret@proxy.example")
    assert "hunter2-secret" not in done.stdout
    assert "https://me:***@proxy.example" in done.stdout
