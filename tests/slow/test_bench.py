"""bench/run.py on both event loops: every row says its loop, the guards come with verdicts, and
the servers it starts keep their conversation files out of the home directory."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUARDED = ("per call (ms)", "HTTP modern, 1 conn: calls per s", "slow calls over HTTP: completed")


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed here")
def test_a_quick_stdio_run_measures_both_loops_and_leaves_home_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "bench.json"
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_STATE_HOME", None)  # what a developer's shell has: the benchmark must set its own
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "stdio", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| per call (ms) |")]
    assert [row[1] for row in rows] == ["asyncio", "uvloop"]
    assert all(row[3] != "-" and row[4] != "-" for row in rows), rows  # the floor and ours, each loop
    assert rows[0][-1].startswith("<= 1.1 x floor: ") and rows[0][-1].split(": ")[1] in ("met |", "not met |")
    verdicts = done.stdout.split("never fatal:", 1)[1]
    for figure in GUARDED:
        assert f"- {figure}: " in verdicts
    assert "HTTP modern, 1 conn: calls per s: >= 1.0 x floor: not measured in this run" in verdicts
    labels = set(json.loads(out.read_text())["results"])
    assert {"floor server [asyncio]", "grok-chat-mcp [asyncio]", "grok-chat-mcp [uvloop]"} <= labels
    assert not (home / ".local").exists(), sorted(str(p) for p in home.rglob("*"))
