"""Sign-ins of ``--auth oauth``: registered clients, pending consents, codes, tokens and grants.

A small keyed store with expiry, in the backend ``GROK_STORE`` names: memory (one process),
SQLite (a table in the same file as the conversations) or Redis (shared by every replica, so a
user signed in through one replica is signed in on all). Records are JSON objects; each has a
kind (``client``, ``code``, ...) and a key, and ``expires_at`` on the store's clock. Keys of
tokens are hashes; the AceDataCloud token inside a grant is encrypted before it gets here
(``transports/oauth.py``), so no backend ever holds a usable credential.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from grok_chat_mcp.store.sqlite_file import SQLiteFile

T = TypeVar("T")

#: Beyond this many records a memory store drops the ones closest to expiry (a bound, not a quota).
MAX_MEMORY_RECORDS = 100_000
#: Every Redis key starts with this; the braces keep them in one Redis Cluster hash slot.
REDIS_PREFIX = "grok-chat-mcp:{logins}:"


class LoginStoreError(Exception):
    """The store could not be reached; ``str()`` is one line without any secret."""


class Logins(Protocol):
    """What ``transports/oauth.py`` needs from a store."""

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds, replacing any record under the same key."""

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record, or None if there is none or it expired."""

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        """Remove and return the record in one step: of two concurrent takes, one gets it."""

    async def delete(self, kind: str, key: str) -> None:
        """Remove the record if there is one."""

    async def count(self, kind: str, key: str, ttl: float, step: int = 1) -> int:
        """Add ``step`` to a counter that lives ``ttl`` seconds from its first count; the new value
        (``step=0`` only reads it)."""

    async def aclose(self) -> None:
        """Release the connection."""


def open_logins(url: str, clock: Callable[[], float] = time.time) -> Logins:
    """The login store for ``GROK_STORE`` (``off`` keeps logins in memory: they must live somewhere).

    Raises ``ValueError`` with a one-line message for a store that cannot be opened.
    """
    value = url.strip()
    scheme = value.split(":", 1)[0].lower()
    if scheme == "sqlite":
        path = value[len("sqlite://") :]
        if not path.startswith("/") or path == "/":
            raise ValueError(f"GROK_STORE: use sqlite:///absolute/path/to/file.db, got {url!r}")
        try:
            return SQLiteLogins(path, clock)
        except (OSError, sqlite3.Error) as exc:
            raise ValueError(f"GROK_STORE: cannot open {path} for logins: {exc}") from exc
    if scheme in ("redis", "rediss"):
        try:
            return RedisLogins.from_url(value, clock)
        except ImportError as exc:
            raise ValueError(
                "GROK_STORE: a redis:// store needs the redis package: pip install 'grok-chat-mcp[redis]'"
            ) from exc
    return MemoryLogins(clock)


def _live(record: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    if record is None or record.get("expires_at", 0) <= now:
        return None
    return record


class MemoryLogins:
    """Logins in this process: lost at restart, not shared with replicas."""

    def __init__(self, clock: Callable[[], float] = time.time, capacity: int = MAX_MEMORY_RECORDS) -> None:
        self._clock = clock
        self._capacity = capacity
        self._records: dict[tuple[str, str], dict[str, Any]] = {}

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: float) -> None:
        now = self._clock()
        if len(self._records) >= self._capacity:
            self._records = {k: v for k, v in self._records.items() if v["expires_at"] > now}
        while len(self._records) >= self._capacity:
            del self._records[min(self._records, key=lambda k: self._records[k]["expires_at"])]
        self._records[kind, key] = {**json.loads(json.dumps(value)), "expires_at": now + ttl}

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        record = _live(self._records.get((kind, key)), self._clock())
        return json.loads(json.dumps(record)) if record is not None else None  # a copy, as other stores

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        return _live(self._records.pop((kind, key), None), self._clock())

    async def delete(self, kind: str, key: str) -> None:
        self._records.pop((kind, key), None)

    async def count(self, kind: str, key: str, ttl: float, step: int = 1) -> int:
        now = self._clock()
        record = _live(self._records.get((kind, key)), now) or {"n": 0, "expires_at": now + ttl}
        if step:
            record["n"] += step
            self._records[kind, key] = record
        return int(record["n"])

    async def aclose(self) -> None:
        self._records.clear()


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS logins (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS logins_by_expiry ON logins (expires_at);
"""


class SQLiteLogins:
    """Logins in a table of an SQLite file (the conversations' file): they survive restarts, and
    processes sharing the file share them. The file is created readable by its owner only."""

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._file = SQLiteFile(path, busy_timeout=30.0)
        self.path = self._file.path
        assert self._file.db is not None
        self._file.db.executescript(_SQLITE_SCHEMA)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._file.run(fn)
        except sqlite3.Error as exc:
            raise LoginStoreError(f"the login store ({self.path}) failed: {exc}") from exc

    def _read(self, db: sqlite3.Connection, kind: str, key: str) -> dict[str, Any] | None:
        row = db.execute(
            "SELECT value FROM logins WHERE kind = ? AND key = ? AND expires_at > ?",
            (kind, key, self._clock()),
        ).fetchone()
        return json.loads(row[0]) if row is not None else None

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: float) -> None:
        def put(db: sqlite3.Connection) -> None:
            now = self._clock()
            db.execute("DELETE FROM logins WHERE expires_at <= ?", (now,))
            record = {**value, "expires_at": now + ttl}
            db.execute(
                "INSERT OR REPLACE INTO logins (kind, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (kind, key, json.dumps(record), record["expires_at"]),
            )

        await self._run(put)

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return await self._run(lambda db: self._read(db, kind, key))

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        def take(db: sqlite3.Connection) -> dict[str, Any] | None:
            record = self._read(db, kind, key)
            db.execute("DELETE FROM logins WHERE kind = ? AND key = ?", (kind, key))
            return record

        return await self._run(take)

    async def delete(self, kind: str, key: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM logins WHERE kind = ? AND key = ?", (kind, key)))

    async def count(self, kind: str, key: str, ttl: float, step: int = 1) -> int:
        def count(db: sqlite3.Connection) -> int:
            record = self._read(db, kind, key) or {"n": 0, "expires_at": self._clock() + ttl}
            if not step:
                return int(record["n"])
            record["n"] += step
            db.execute(
                "INSERT OR REPLACE INTO logins (kind, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (kind, key, json.dumps(record), record["expires_at"]),
            )
            return int(record["n"])

        return await self._run(count)

    async def aclose(self) -> None:
        await self._file.aclose()


class RedisLogins:
    """Logins in Redis, shared by every replica. Each record is a string key that Redis expires
    (``PX``); ``expires_at`` in the record is checked against the store's clock as well."""

    def __init__(
        self, client: Any, clock: Callable[[], float] = time.time, prefix: str = REDIS_PREFIX
    ) -> None:
        self._redis = client
        self._clock = clock
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float] = time.time) -> RedisLogins:
        """Logins on the Redis server at ``url`` (connected on first use)."""
        import redis.asyncio

        return cls(redis.asyncio.Redis.from_url(url, decode_responses=True), clock)

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    async def _do(self, fn: Callable[[], Any]) -> Any:
        import redis.exceptions

        try:
            return await fn()
        except redis.exceptions.RedisError as exc:
            raise LoginStoreError(f"the login store (Redis) failed: {type(exc).__name__}") from exc

    def _parse(self, raw: str | None) -> dict[str, Any] | None:
        return _live(json.loads(raw), self._clock()) if raw is not None else None

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: float) -> None:
        record = {**value, "expires_at": self._clock() + ttl}
        await self._do(
            lambda: self._redis.set(self._key(kind, key), json.dumps(record), px=max(1, int(ttl * 1000)))
        )

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self._parse(await self._do(lambda: self._redis.get(self._key(kind, key))))

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        return self._parse(await self._do(lambda: self._redis.getdel(self._key(kind, key))))

    async def delete(self, kind: str, key: str) -> None:
        await self._do(lambda: self._redis.delete(self._key(kind, key)))

    async def count(self, kind: str, key: str, ttl: float, step: int = 1) -> int:
        name = self._key(kind, key)
        if not step:
            return int(await self._do(lambda: self._redis.get(name)) or 0)

        async def count() -> int:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(name, 0, nx=True, px=max(1, int(ttl * 1000)))
                pipe.incrby(name, step)
                results = await pipe.execute()
            return int(results[1])

        return int(await self._do(count))

    async def aclose(self) -> None:
        await self._redis.aclose()
