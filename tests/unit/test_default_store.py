"""The default store: a per-user SQLite file in the platform's state directory, or memory if it
cannot be opened (said once on stderr and by --check)."""

from __future__ import annotations

import logging
import stat
import sys
from pathlib import Path

import pytest

from grok_chat_mcp import cli
from grok_chat_mcp.config import Settings, load_settings, state_dir
from grok_chat_mcp.server import _open_store
from grok_chat_mcp.store.memory import MemoryStore
from grok_chat_mcp.store.sqlite import SQLiteStore


def settings_with_state_home(home: Path, tmp_path: Path, **env: str) -> Settings:
    return load_settings({"XDG_STATE_HOME": str(home), **env}, env_file=tmp_path / "no.env")


@pytest.mark.anyio
@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG applies on Linux and BSDs")
async def test_the_default_is_an_owner_only_file_in_the_state_directory(tmp_path: Path) -> None:
    settings = settings_with_state_home(tmp_path / "state", tmp_path)
    path = tmp_path / "state" / "grok-chat-mcp" / "conversations.db"
    assert settings.store == f"sqlite://{path}"
    assert settings.sources["GROK_STORE"] == "default"
    store = _open_store(settings)
    assert isinstance(store, SQLiteStore)
    await store.aclose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_memory_keeps_nothing_on_disk(tmp_path: Path) -> None:
    settings = settings_with_state_home(tmp_path / "state", tmp_path, GROK_STORE="memory")
    assert isinstance(_open_store(settings), MemoryStore)
    assert not (tmp_path / "state").exists()


def test_the_state_directory_of_each_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    monkeypatch.setattr(sys, "platform", "linux")
    assert state_dir({}) == tmp_path / ".local" / "state" / "grok-chat-mcp"
    assert state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/grok-chat-mcp")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert (
        state_dir({"XDG_STATE_HOME": "/x"}) == tmp_path / "Library" / "Application Support" / "grok-chat-mcp"
    )
    monkeypatch.setattr(sys, "platform", "win32")
    assert state_dir({"LOCALAPPDATA": "/appdata"}) == Path("/appdata/grok-chat-mcp")
    assert state_dir({}) == tmp_path / "AppData" / "Local" / "grok-chat-mcp"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG applies on Linux and BSDs")
def test_a_file_that_cannot_be_opened_falls_back_to_memory_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # as a read-only home or a full disk would, the file cannot be created
    settings = settings_with_state_home(blocker, tmp_path, ACEDATACLOUD_API_TOKEN="sk-0123456789abcdef")
    with caplog.at_level(logging.ERROR, logger="grok_chat_mcp"):
        store = _open_store(settings)
    assert isinstance(store, MemoryStore)
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("GROK_STORE: cannot open ")
    assert said.endswith("conversations are kept in memory instead, and lost when the server stops")
    assert cli.check(settings) == 0  # calls still work
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert "cannot open" in warning and "kept in memory instead" in warning
