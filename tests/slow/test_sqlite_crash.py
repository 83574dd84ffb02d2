"""An answer the SQLite store has taken survives the process being killed right after: the loop's
connection commits to the WAL without a checkpoint, and the next process to open the file reads it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio

from grok_chat_mcp.store import Conversation
from grok_chat_mcp.store.sqlite import SQLiteStore

WRITER = """
import os, signal, sys
import anyio
from grok_chat_mcp.store.sqlite import SQLiteStore

async def main() -> None:
    store = SQLiteStore(sys.argv[1])
    conversation_id, _ = await store.begin("owner", None, [{"role": "user", "content": "ping"}])
    await store.finish(
        conversation_id, [{"role": "user", "content": "ping"}], {"role": "assistant", "content": "pong"},
        {"status": "completed", "content": "pong"},
    )
    print(conversation_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint

anyio.run(main)
"""


def test_a_finished_answer_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    conversation_id = done.stdout.strip()
    assert Path(f"{path}-wal").stat().st_size > 0  # the answer was in the WAL only

    async def read() -> Conversation:
        store = SQLiteStore(path)
        try:
            return await store.get("owner", conversation_id)
        finally:
            await store.aclose()

    conversation = anyio.run(read)
    assert not conversation.running
    assert conversation.answer == {"status": "completed", "content": "pong"}
    assert conversation.messages == [
        {"role": "user", "content": "ping"},
        {"role": "assistant", "content": "pong"},
    ]
