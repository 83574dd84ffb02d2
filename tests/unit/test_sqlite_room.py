"""The SQLite store makes room without reading stored conversations whole: no query it runs for a
new conversation walks the table itself (each answer's overflow pages), only an index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio

from grok_chat_mcp.store._base import Limits
from grok_chat_mcp.store.sqlite import SQLiteStore

MESSAGES = [{"role": "user", "content": "ping"}]
REPLY = {"role": "assistant", "content": "pong"}


def answer(text: str) -> dict[str, object]:
    message = {"role": "assistant", "content": text}
    return {"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": message}]}


def test_a_new_conversation_at_the_cap_reads_indexes_not_the_table(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db", Limits(max_conversations=3))
    statements: list[str] = []

    async def run() -> None:
        for text in ("x" * 200_000, "pong", "pong"):  # full: the next one evicts the oldest
            conversation_id, _ = await store.begin("owner", None, MESSAGES)
            await store.finish(conversation_id, MESSAGES, REPLY, answer(text))
        connections = [db for db in (store._file.db, store._file._loop_db) if db is not None]
        assert len(connections) == 2  # the worker thread's and the loop's
        for db in connections:
            db.set_trace_callback(statements.append)
        conversation_id, _ = await store.begin("owner", None, MESSAGES)
        await store.finish(conversation_id, MESSAGES, REPLY, answer("pong"))
        for db in connections:
            db.set_trace_callback(None)
        await store.aclose()

    anyio.run(run)
    plans = {}
    with sqlite3.connect(tmp_path / "c.db") as db:
        for statement in statements:
            if "conversations" in statement and statement.lstrip().upper().startswith(("SELECT", "DELETE")):
                plans[statement] = [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + statement)]
    assert any("ORDER BY updated_at" in statement for statement in plans), plans  # a victim was chosen
    assert any("FROM totals" in statement for statement in statements), statements  # not count(*)
    scans = {s: plan for s, plan in plans.items() if any(step == "SCAN conversations" for step in plan)}
    assert not scans, scans
