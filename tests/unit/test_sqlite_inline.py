"""The SQLite store's short transactions run on the event loop and never wait there: a file locked
by another connection sends them to the worker thread while the loop goes on. Its totals (count
and bytes, kept by triggers) agree with the table, whoever writes it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from grok_chat_mcp.store import sqlite_file
from grok_chat_mcp.store._base import Limits, UnknownConversation, held_size
from grok_chat_mcp.store.sqlite import INLINE_BYTES, SQLiteStore

pytestmark = pytest.mark.anyio

OWNER = "owner"
MESSAGES = [{"role": "user", "content": "ping"}]
REPLY = {"role": "assistant", "content": "pong"}
#: A guard against a hang, never an assertion about speed.
GUARD = 10.0


def answer(text: str) -> dict[str, Any]:
    return {"status": "completed", "content": text}


class Threads:
    """Counts the transactions run in the worker thread."""

    def __init__(self, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        transaction = store._file.transaction

        def counted(fn: Any) -> Any:
            self.count += 1
            return transaction(fn)

        monkeypatch.setattr(store._file, "transaction", counted)


def totals(path: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """The kept totals and the table's own count and sum."""
    with sqlite3.connect(path) as db:
        kept = db.execute("SELECT conversations, bytes FROM totals").fetchone()
        counted = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM conversations").fetchone()
    return kept, counted


async def test_a_call_on_a_free_file_makes_no_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    threads = Threads(store, monkeypatch)
    conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
    await store.progress(conversation_id, 10)
    await store.finish(conversation_id, MESSAGES, REPLY, answer("pong"))
    assert threads.count == 0
    conversation = await store.get(OWNER, conversation_id)  # reads a stored history: the thread
    assert threads.count == 1
    assert conversation.messages == [*MESSAGES, REPLY]
    assert conversation.answer == answer("pong")
    await store.aclose()


async def test_a_large_answer_is_written_in_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    threads = Threads(store, monkeypatch)
    conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
    await store.finish(conversation_id, MESSAGES, REPLY, answer("x" * INLINE_BYTES))
    assert threads.count == 1
    assert (await store.get(OWNER, conversation_id)).answer == answer("x" * INLINE_BYTES)
    await store.aclose()


async def test_a_locked_file_sends_the_transaction_to_the_thread_and_the_loop_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    threads = Threads(store, monkeypatch)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    begun: list[str] = []

    async def begin() -> None:
        conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
        begun.append(conversation_id)

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as group:
            group.start_soon(begin)
            await anyio.wait_all_tasks_blocked()
            # This task runs while the begin waits for the lock: the loop is not blocked.
            assert not begun
            other.execute("COMMIT")
    other.close()
    assert threads.count == 1  # the begin ran in the worker thread, once the lock was free
    assert (await store.get(OWNER, begun[0])).running
    await store.aclose()


async def test_the_loop_connection_leaves_checkpoints_to_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_file, "CHECKPOINT_BYTES", 3 * sqlite_file.COMMIT_BYTES)
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    ids = []
    for _ in range(3):
        conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
        ids.append(conversation_id)
    assert not any(i.encode() in path.read_bytes() for i in ids)  # in the WAL only
    await store.begin(OWNER, None, MESSAGES)  # past CHECKPOINT_BYTES
    assert all(i.encode() in path.read_bytes() for i in ids)  # checkpointed into the file
    await store.aclose()


async def test_the_totals_agree_with_the_table_through_every_write(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    now = [1_800_000_000.0]
    store = SQLiteStore(path, Limits(max_conversations=4, ttl=100), lambda: now[0])
    first, _ = await store.begin(OWNER, None, MESSAGES)
    await store.finish(first, MESSAGES, REPLY, answer("a" * 1000))
    await store.begin(OWNER, first, MESSAGES)
    await store.fail(first, "upstream failed")
    await store.begin(OWNER, first, MESSAGES)
    await store.finish(first, MESSAGES, REPLY, answer("b"))
    for _ in range(5):  # past the cap: the oldest are evicted
        conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
        await store.finish(conversation_id, MESSAGES, REPLY, answer("c"))
    kept, counted = totals(path)
    assert kept == counted
    assert kept[0] == 4
    now[0] += 1000  # all expire on the next begin
    await store.begin(OWNER, None, MESSAGES)
    kept, counted = totals(path)
    assert kept == counted == (1, counted[1])
    await store.aclose()


async def test_an_older_release_writing_the_file_keeps_the_totals_right(tmp_path: Path) -> None:
    """Releases before the totals replace a row whole (``INSERT OR REPLACE``), count with
    ``count(*)`` and know nothing of the totals table; a file they wrote gains it when opened."""
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
    await store.finish(conversation_id, MESSAGES, REPLY, answer("pong"))
    await store.aclose()
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        columns = ", ".join("?" * len(row))
        db.execute(f"INSERT OR REPLACE INTO conversations VALUES ({columns})", (*row[:-1], row[-1] + 500))
    kept, counted = totals(path)
    assert kept == counted
    with sqlite3.connect(path) as db:
        db.executescript(
            "DROP TRIGGER totals_insert; DROP TRIGGER totals_delete; DROP TRIGGER totals_update; "
            "DROP TABLE totals;"
        )
        db.execute(
            "INSERT INTO conversations SELECT 'conv_older_release_row', * FROM (SELECT owner, messages, "
            "messages_bytes, running, started_at, lease, chars, answer, answer_bytes, error, updated_at, "
            "size FROM conversations)"
        )
    store = SQLiteStore(path)
    await store.aclose()
    kept, counted = totals(path)
    assert kept == counted
    assert kept[0] == 2


async def test_a_follow_up_appends_to_the_stored_history_text(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
    await store.finish(conversation_id, MESSAGES, REPLY, answer("pong"))
    second = [{"role": "user", "content": 'é ] and "quoted"'}]
    reply = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    _, history = await store.begin(OWNER, conversation_id, second)
    assert history == [*MESSAGES, REPLY]
    await store.finish(conversation_id, second, reply, answer("done"))
    conversation = await store.get(OWNER, conversation_id)
    assert conversation.messages == [*MESSAGES, REPLY, *second, reply]
    with sqlite3.connect(path) as db:
        messages_bytes, size = db.execute(
            "SELECT messages_bytes, size FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
    assert messages_bytes == held_size(conversation.messages)
    assert size == messages_bytes + held_size(answer("done"))
    await store.aclose()
    reopened = SQLiteStore(path)
    _, history = await reopened.begin(OWNER, conversation_id, MESSAGES)
    assert history == [*MESSAGES, REPLY, *second, reply]
    await reopened.aclose()


async def test_freeing_a_large_conversation_runs_in_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_800_000_000.0]
    store = SQLiteStore(tmp_path / "c.db", Limits(max_conversations=2, ttl=100), lambda: now[0])
    threads = Threads(store, monkeypatch)
    large, _ = await store.begin(OWNER, None, MESSAGES)
    await store.finish(large, MESSAGES, REPLY, answer("x" * INLINE_BYTES))  # a large write: the thread
    now[0] += 1
    small, _ = await store.begin(OWNER, None, MESSAGES)
    await store.finish(small, MESSAGES, REPLY, answer("pong"))
    assert threads.count == 1
    now[0] += 1
    third, _ = await store.begin(OWNER, None, MESSAGES)  # evicts the large one: the thread
    assert threads.count == 2
    await store.begin(OWNER, None, MESSAGES)  # evicts the small one: on the loop
    assert threads.count == 2
    with pytest.raises(UnknownConversation):
        await store.get(OWNER, large)
    await store.finish(third, MESSAGES, REPLY, answer("y" * INLINE_BYTES))
    count = threads.count
    now[0] += 1000
    await store.begin(OWNER, None, MESSAGES)  # expires the large one: the thread
    assert threads.count == count + 1
    await store.aclose()


class FailingCheckpoints:
    """The worker thread's connection, whose checkpoints fail (a disk error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if "wal_checkpoint" in sql:
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(sql, *args)

    def close(self) -> None:
        self.db.close()


async def test_a_failed_checkpoint_is_logged_and_the_call_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_file, "CHECKPOINT_BYTES", sqlite_file.COMMIT_BYTES)
    store = SQLiteStore(tmp_path / "c.db")
    assert store._file.db is not None
    monkeypatch.setattr(store._file, "db", FailingCheckpoints(store._file.db))
    conversation_id, _ = await store.begin(OWNER, None, MESSAGES)
    await store.finish(conversation_id, MESSAGES, REPLY, answer("pong"))  # past CHECKPOINT_BYTES
    assert "checkpointing" in caplog.text and "disk I/O error" in caplog.text
    assert (await store.get(OWNER, conversation_id)).answer == answer("pong")
    await store.aclose()
