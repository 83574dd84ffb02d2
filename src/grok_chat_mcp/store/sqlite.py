"""Conversations in an SQLite file: they survive restarts; the file is readable by its owner only."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from grok_chat_mcp.store._base import (
    VALUE_BYTES,
    Busy,
    Conversation,
    Limits,
    Record,
    Signals,
    Unavailable,
    UnknownConversation,
    damaged_record,
    damaged_store,
    dumps,
    inner_values,
    new_id,
    store_full,
    valid_id,
    wait_polling,
)
from grok_chat_mcp.store.sqlite_file import SQLiteFile, ToThread

T = TypeVar("T")

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    messages TEXT NOT NULL,
    messages_bytes INTEGER NOT NULL,
    running INTEGER NOT NULL,
    started_at REAL,
    lease REAL,
    chars INTEGER NOT NULL,
    answer TEXT,
    answer_bytes INTEGER NOT NULL,
    error TEXT,
    updated_at REAL NOT NULL,
    size INTEGER NOT NULL
);
DROP INDEX IF EXISTS conversations_by_use;
CREATE INDEX IF NOT EXISTS conversations_by_use_and_size
    ON conversations (updated_at, running, lease, size, id);
CREATE TABLE IF NOT EXISTS totals (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    conversations INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS totals_insert BEFORE INSERT ON conversations BEGIN
    UPDATE totals SET conversations = conversations - 1,
        bytes = bytes - (SELECT size FROM conversations WHERE id = new.id)
        WHERE EXISTS (SELECT 1 FROM conversations WHERE id = new.id);
    UPDATE totals SET conversations = conversations + 1, bytes = bytes + new.size;
END;
CREATE TRIGGER IF NOT EXISTS totals_delete AFTER DELETE ON conversations BEGIN
    UPDATE totals SET conversations = conversations - 1, bytes = bytes - old.size;
END;
CREATE TRIGGER IF NOT EXISTS totals_update AFTER UPDATE OF size ON conversations BEGIN
    UPDATE totals SET bytes = bytes - old.size + new.size;
END;
INSERT OR IGNORE INTO totals SELECT 1, count(*), coalesce(sum(size), 0) FROM conversations;
CREATE TABLE IF NOT EXISTS spend (
    owner TEXT NOT NULL,
    window_key TEXT NOT NULL,
    ticks INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (owner, window_key)
);
"""
#: ``finish``: the history grows by splicing its JSON text (``messages`` ends in ``}]``), sized as
#: ``joined_size`` counts it; it is never parsed here. ?1, ?2: the added messages' text and size;
#: ?3, ?4: the answer's; ?5: now; ?6: the id.
_FINISH = """
UPDATE conversations SET
    messages = CASE WHEN messages = '[]' THEN ?1 ELSE rtrim(messages, ']') || ',' || substr(?1, 2) END,
    messages_bytes = CASE WHEN messages_bytes <= 2 THEN ?2 ELSE messages_bytes + ?2 - 1 END,
    size = CASE WHEN messages_bytes <= 2 THEN ?2 ELSE messages_bytes + ?2 - 1 END + ?4,
    answer = ?3, answer_bytes = ?4, error = NULL, running = 0, updated_at = ?5
WHERE id = ?6 AND running = 1
"""
#: Text a transaction may write and still run on the event loop (larger ones go to the worker thread).
INLINE_BYTES = 256 * 1024
#: Version 1 had no lease: its running marks read as abandoned.
_MIGRATIONS = {1: "ALTER TABLE conversations ADD COLUMN lease REAL"}
# In the queries below, "not busy" is (running = 0 OR lease IS NULL OR lease < ?) with ? = now:
# not running, or a lease that its call stopped renewing.


def _record(row: tuple[Any, ...], where: str) -> Record:
    """A row as a record; :class:`Damaged` if it is not what :meth:`SQLiteStore._save` writes."""
    try:
        messages = json.loads(row[2])
        answer = json.loads(row[8]) if row[8] is not None else None
    except (ValueError, TypeError) as exc:  # TypeError: a number where JSON text was written
        raise damaged_record(where, row[0], "its JSON does not parse") from exc
    if not (_well_typed(row) and _objects(messages) and (answer is None or isinstance(answer, dict))):
        raise damaged_record(where, row[0], "a column holds a value of the wrong type")
    return Record(
        id=row[0],
        owner=row[1],
        messages=messages,
        messages_bytes=row[3],
        running=bool(row[4]),
        started_at=row[5],
        lease_until=row[6],
        chars=row[7],
        answer=answer,
        answer_bytes=row[9],
        error=row[10],
        updated_at=row[11],
    )


def _text_and_size(value: Any) -> tuple[str, int]:
    """``value``'s stored JSON and its :func:`~grok_chat_mcp.store._base.held_size`, serialised once."""
    text = dumps(value)
    return text, len(text.encode()) + VALUE_BYTES * inner_values(value)


def _well_typed(row: tuple[Any, ...]) -> bool:
    owner, error, started, lease, updated = row[1], row[10], row[5], row[6], row[11]
    return (
        isinstance(owner, str)
        and all(type(row[i]) is int for i in (3, 4, 7, 9))
        and all(value is None or isinstance(value, int | float) for value in (started, lease))
        and isinstance(updated, int | float)
        and (error is None or isinstance(error, str))
    )


def _objects(messages: Any) -> bool:
    return isinstance(messages, list) and all(isinstance(message, dict) for message in messages)


#: SQLite's verdicts on a file that is not a sound database (extended codes start with these).
_DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class SQLiteStore:
    """A :class:`~grok_chat_mcp.store.Store` in one SQLite file (WAL mode).

    One connection, used by one worker thread at a time (a lock); each method is one
    ``BEGIN IMMEDIATE`` transaction, so processes sharing the file are serialised too.
    ``wait`` wakes on this process's ``finish``/``fail`` at once and re-reads the file every
    ``poll_interval`` seconds for other processes.
    """

    #: Seconds a write waits for another process's lock before the store reports itself unavailable.
    busy_timeout = 30.0

    def __init__(
        self,
        path: str | os.PathLike[str],
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self._limits = limits or Limits()
        self._clock = clock
        self._poll = poll_interval
        self._signals = Signals()
        self._file = SQLiteFile(path, self.busy_timeout)
        self.path = self._file.path
        db = self._file.db
        assert db is not None
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than {SCHEMA_VERSION}: a newer release wrote it"
            )
        migrations = "".join(
            f"{_MIGRATIONS[step]};\n" for step in range(version or SCHEMA_VERSION, SCHEMA_VERSION)
        )
        db.executescript(
            f"BEGIN IMMEDIATE;\n{migrations}{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
        )

    # The transactions (where each runs: docs/conversations-store.md, SQLite).

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False, size: int = 0) -> T:
        """``fn`` in one transaction; ``inline``: on the event loop when the file is free and the
        transaction reads no stored history and writes under :data:`INLINE_BYTES` (``size``)."""
        try:
            return await self._file.run(fn, inline=inline and size < INLINE_BYTES, size=size)
        except sqlite3.Error as exc:
            if (getattr(exc, "sqlite_errorname", None) or "").startswith(_DAMAGE):
                raise damaged_store(str(self.path), str(exc)) from exc
            raise Unavailable(exc) from exc

    def _load(self, db: sqlite3.Connection, conversation_id: str) -> Record | None:
        row = db.execute(
            "SELECT id, owner, messages, messages_bytes, running, started_at, lease, chars, answer, "
            "answer_bytes, error, updated_at FROM conversations WHERE id = ?",
            (conversation_id,),
        ).fetchone()
        return _record(row, str(self.path)) if row is not None else None

    def _insert(self, db: sqlite3.Connection, r: Record) -> None:
        """A new conversation's running row (its messages are stored by ``finish``)."""
        db.execute(
            "INSERT INTO conversations (id, owner, messages, messages_bytes, running, started_at, "
            "lease, chars, answer, answer_bytes, error, updated_at, size) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                r.id,
                r.owner,
                "[]",
                r.messages_bytes,
                1,
                r.started_at,
                r.lease_until,
                0,
                None,
                0,
                None,
                r.updated_at,
                r.size,
            ),
        )

    def _owned(self, db: sqlite3.Connection, owner: str, conversation_id: str, now: float) -> Record:
        record = self._load(db, conversation_id) if valid_id(conversation_id) else None
        if record is not None and record.expired(now, self._limits):
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            record = None
        if record is None or record.owner != owner:
            raise UnknownConversation(conversation_id)
        return record

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        expired = (now - self._limits.ttl, now)
        where = "FROM conversations WHERE updated_at < ? AND (running = 0 OR lease IS NULL OR lease < ?)"
        (largest,) = db.execute(f"SELECT max(size) {where}", expired).fetchone()
        if largest is not None:  # usually none: no DELETE to run
            self._not_long(db, largest)
            db.execute(f"DELETE {where}", expired)

    def _not_long(self, db: sqlite3.Connection, size: int) -> None:
        """On the loop's connection, :class:`ToThread` before deleting a row of ``size`` bytes whose
        pages would take long to free."""
        if size >= INLINE_BYTES and self._file.on_loop(db):
            raise ToThread

    def _make_room(self, db: sqlite3.Connection, now: float, count: int, size: int, keep: str = "") -> None:
        limits = self._limits
        n, total = db.execute("SELECT conversations, bytes FROM totals").fetchone()
        if n + count <= limits.max_conversations and total + size <= limits.max_total_bytes:
            return
        while True:  # the oldest few at a time: usually the first will do
            victims = db.execute(
                "SELECT id, size FROM conversations WHERE id != ? "
                "AND (running = 0 OR lease IS NULL OR lease < ?) ORDER BY updated_at LIMIT 8",
                (keep, now),
            ).fetchall()
            if not victims:
                break
            for victim, victim_size in victims:
                self._not_long(db, victim_size)
                db.execute("DELETE FROM conversations WHERE id = ?", (victim,))
                n, total = n - 1, total - victim_size
                if n + count <= limits.max_conversations and total + size <= limits.max_total_bytes:
                    return
        if count:
            raise store_full(n)

    # The Store interface.

    async def begin(
        self, owner: str, conversation_id: str | None, new_messages: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        if conversation_id is None:
            return await self._begin_new(owner, new_messages)

        def begin(db: sqlite3.Connection) -> tuple[str, list[dict[str, Any]]]:
            now = self._clock()
            self._expire(db, now)
            record = self._owned(db, owner, conversation_id, now)
            if record.busy(now, self._limits):
                raise Busy(conversation_id)
            history = record.start(new_messages, now, self._limits)
            db.execute(
                "UPDATE conversations SET running = 1, started_at = ?, lease = ?, chars = 0, answer = NULL, "
                "answer_bytes = 0, error = NULL, updated_at = ?, size = ? WHERE id = ?",
                (now, record.lease_until, now, record.size, conversation_id),
            )
            return conversation_id, history

        return await self._run(begin)  # reads the stored history: in the worker thread

    async def _begin_new(
        self, owner: str, new_messages: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        def begin(db: sqlite3.Connection) -> tuple[str, list[dict[str, Any]]]:
            now = self._clock()
            self._expire(db, now)
            record = Record(id=new_id(), owner=owner, updated_at=now)
            history = record.start(new_messages, now, self._limits)
            self._make_room(db, now, 1, record.size)
            self._insert(db, record)
            return record.id, history

        return await self._run(begin, inline=True)

    async def progress(self, conversation_id: str, chars: int) -> None:
        def progress(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE conversations SET chars = ?, lease = ? WHERE id = ? AND running = 1",
                (chars, self._clock() + self._limits.lease, conversation_id),
            )

        await self._run(progress, inline=True)

    async def finish(
        self,
        conversation_id: str,
        new_messages: list[dict[str, Any]],
        reply: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        added_text, added_bytes = _text_and_size([*new_messages, reply])
        answer_text, answer_bytes = _text_and_size(answer)

        def finish(db: sqlite3.Connection) -> None:
            now = self._clock()
            values = (added_text, added_bytes, answer_text, answer_bytes, now, conversation_id)
            done = db.execute(_FINISH, values).rowcount
            if done:
                self._make_room(db, now, 0, 0, keep=conversation_id)

        await self._run(finish, inline=True, size=len(added_text) + len(answer_text))
        self._signals.fire(conversation_id)

    async def fail(self, conversation_id: str, error: str) -> None:
        def fail(db: sqlite3.Connection) -> None:
            now = self._clock()
            db.execute(
                "UPDATE conversations SET running = 0, error = ?, updated_at = ?, "
                "size = messages_bytes + answer_bytes + ? WHERE id = ? AND running = 1",
                (error, now, len(error.encode()), conversation_id),
            )
            self._make_room(db, now, 0, 0, keep=conversation_id)

        await self._run(fail, inline=True, size=len(error))
        self._signals.fire(conversation_id)

    async def get(self, owner: str, conversation_id: str) -> Conversation:
        def get(db: sqlite3.Connection) -> Conversation:
            now = self._clock()
            record = self._owned(db, owner, conversation_id, now)
            if now > record.updated_at:
                record.updated_at = now
                db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
            return record.view(now, self._limits)

        return await self._run(get)

    async def wait(self, owner: str, conversation_id: str, timeout: float) -> Conversation:  # noqa: ASYNC109
        return await wait_polling(
            self, self._signals, owner, conversation_id, timeout, self._poll, self._busy
        )

    async def _busy(self, conversation_id: str) -> bool:
        def busy(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT 1 FROM conversations WHERE id = ? "
                "AND NOT (running = 0 OR lease IS NULL OR lease < ?)",
                (conversation_id, self._clock()),
            ).fetchone()
            return row is not None

        return await self._run(busy, inline=True)

    async def cancel(self, conversation_id: str) -> None:
        """Nothing to pass on: the call runs in the process that holds the client's connection."""

    async def listen_cancels(self, cancel: Callable[[str], object]) -> None:
        await anyio.sleep_forever()

    async def spent(self, owner: str, window: str) -> int:
        def spent(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT ticks FROM spend WHERE owner = ? AND window_key = ?", (owner, window)
            ).fetchone()
            return int(row[0]) if row is not None else 0

        return await self._run(spent, inline=True)

    async def spend(self, owner: str, window: str, ticks: int, expires_at: float) -> int:
        def spend(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM spend WHERE expires_at < ?", (self._clock(),))
            row = db.execute(
                "INSERT INTO spend (owner, window_key, ticks, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (owner, window_key) DO UPDATE SET ticks = ticks + excluded.ticks "
                "RETURNING ticks",
                (owner, window, ticks, expires_at),
            ).fetchone()
            return int(row[0])

        return await self._run(spend, inline=True)

    async def aclose(self) -> None:
        self._signals.fire_all()
        await self._file.aclose()
