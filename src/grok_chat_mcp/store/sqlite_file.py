"""One SQLite file as the stores use it: created readable by its owner only, in WAL mode, each
transaction run in a worker thread, one at a time."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")


class SQLiteFile:
    """A connection to ``path`` (made, with its folder, owner-only); :meth:`run` is one
    ``BEGIN IMMEDIATE`` transaction, so processes sharing the file are serialised too."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)
        self._lock = threading.Lock()
        self.db: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one transaction, in a worker thread; ``sqlite3.Error`` as raised."""
        return await anyio.to_thread.run_sync(partial(self.transaction, fn))

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self.db is None:
                raise sqlite3.ProgrammingError(f"{self.path} is closed")
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self.db is not None:
                    self.db.close()
                    self.db = None

        await anyio.to_thread.run_sync(close)
