"""Several processes writing one SQLite file at once, each on the event loop where the file is free
and in its worker thread where another holds the lock: every call completes, and the totals that
eviction reads agree with the table."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

WRITER = """
import sys
import anyio
from grok_chat_mcp.store import Limits
from grok_chat_mcp.store.sqlite import SQLiteStore

async def main() -> None:
    store = SQLiteStore(sys.argv[1], Limits(max_conversations=40))
    for n in range(150):
        messages = [{"role": "user", "content": f"ping {n}"}]
        conversation_id, _ = await store.begin("owner", None, messages)
        text = "x" * (300_000 if n % 30 == 0 else 10)  # now and then, one for the worker thread
        await store.finish(conversation_id, messages, {"role": "assistant", "content": text}, {"text": text})
    await store.aclose()
    print("done", flush=True)

anyio.run(main)
"""


def test_processes_sharing_a_file_keep_it_consistent(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert out.strip() == "done"
    with sqlite3.connect(path) as db:
        kept = db.execute("SELECT conversations, bytes FROM totals").fetchone()
        counted = db.execute("SELECT count(*), sum(size) FROM conversations").fetchone()
        running = db.execute("SELECT count(*) FROM conversations WHERE running = 1").fetchone()[0]
    assert kept == counted
    assert kept[0] == 40
    assert running == 0
