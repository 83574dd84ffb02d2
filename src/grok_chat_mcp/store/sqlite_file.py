"""One SQLite file as the stores use it: created readable by its owner only, in WAL mode, each
transaction run in a worker thread, one at a time, or on the event loop when it cannot wait."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: SQLite's primary result codes for "another connection holds the lock".
_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: WAL bytes written on the loop's connection after which a checkpoint runs in the worker thread
#: (about SQLite's own 1,000-page automatic checkpoint).
CHECKPOINT_BYTES = 4 * 1024 * 1024
#: What one commit is counted as besides the text it writes: the pages of the row, its indexes,
#: the totals and an evicted row (docs/conversations-store.md: about 11 at the cap).
COMMIT_BYTES = 8 * 4096


class SQLiteFile:
    """Connections to ``path`` (made, with its folder, owner-only); :meth:`run` is one
    ``BEGIN IMMEDIATE`` transaction, so processes sharing the file are serialised too.

    Two connections: the worker thread's waits up to ``busy_timeout`` for another's lock; the
    loop's (``inline=True``) never waits, and a transaction it finds locked runs in the worker
    thread instead. The loop's connection leaves checkpoints (the fsyncs) to the worker thread.
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)
        self._lock = threading.Lock()
        self._loop_lock = threading.Lock()
        self.db: sqlite3.Connection | None = self._connect(busy_timeout)
        self.db.execute("PRAGMA journal_mode=WAL")
        self._loop_db: sqlite3.Connection | None = None
        self._unchecked = 0

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False, size: int = 0) -> T:
        """``fn`` in one transaction; ``sqlite3.Error`` as raised. In a worker thread, or with
        ``inline`` on the event loop unless the file is locked (then in the worker thread);
        ``size``: the bytes of text it writes, counted towards the next checkpoint."""
        if inline:
            try:
                result = self._inline(fn, size)
            except (_Locked, ToThread):
                pass
            else:
                if self._unchecked > CHECKPOINT_BYTES:
                    self._unchecked = 0
                    with anyio.CancelScope(shield=True):  # the transaction is committed: return it
                        await anyio.to_thread.run_sync(self._checkpoint)
                return result
        return await anyio.to_thread.run_sync(partial(self.transaction, fn))

    def _inline(self, fn: Callable[[sqlite3.Connection], T], size: int) -> T:
        """``fn`` on the loop's connection, which never waits: :class:`_Locked` if it would."""
        if not self._loop_lock.acquire(blocking=False):
            raise _Locked
        try:
            if self.db is None:
                raise sqlite3.ProgrammingError(f"{self.path} is closed")
            if self._loop_db is None:
                self._loop_db = self._connect(0.0)
                self._loop_db.execute("PRAGMA wal_autocheckpoint=0")
            try:
                result = _transaction(self._loop_db, fn)
            except sqlite3.OperationalError as exc:
                if (exc.sqlite_errorcode & 0xFF) in _LOCKED:
                    raise _Locked from exc
                raise
            self._unchecked += COMMIT_BYTES + size
            return result
        finally:
            self._loop_lock.release()

    def on_loop(self, db: sqlite3.Connection) -> bool:
        """Whether ``db`` is the loop's connection (where a long transaction raises :class:`ToThread`)."""
        return db is self._loop_db

    def _checkpoint(self) -> None:
        """Copy the WAL into the file as far as readers allow; a failure waits for the next one."""
        with self._lock:
            try:
                if self.db is not None:
                    self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                logger.warning("checkpointing %s failed (the next one retries): %s", self.path, exc)

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self.db is None:
                raise sqlite3.ProgrammingError(f"{self.path} is closed")
            return _transaction(self.db, fn)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock, self._loop_lock:
                for db in (self.db, self._loop_db):
                    if db is not None:
                        db.close()
                self.db = self._loop_db = None

        await anyio.to_thread.run_sync(close)


class ToThread(Exception):
    """Raised by a transaction on the loop's connection that has found long work to do (freeing a
    large row's pages): it is rolled back and run again in the worker thread."""


class _Locked(Exception):
    """Another connection holds the file's write lock."""


def _transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result
