"""Conversations: stored histories and answers, so follow-ups and late answers need no resending.

``open_store(GROK_STORE)`` picks the implementation: ``sqlite:///abs/path`` (by default a per-user
file, ``config.default_store``), ``memory``,
``redis://...`` / ``rediss://...``, or ``off``. See docs/conversations-store.md.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from grok_chat_mcp.store._base import (
    ABANDONED,
    CANCELLED,
    Busy,
    Conversation,
    LimitExceeded,
    Limits,
    Store,
    StoreError,
    Unavailable,
    UnknownConversation,
    new_id,
    owner_of,
)

__all__ = [
    "ABANDONED",
    "CANCELLED",
    "MEMORY_FALLBACK",
    "Busy",
    "Conversation",
    "LimitExceeded",
    "Limits",
    "Store",
    "StoreError",
    "Unavailable",
    "UnknownConversation",
    "new_id",
    "open_store",
    "owner_of",
]

#: What a store that cannot be opened means (stderr at start-up, ``--check``).
MEMORY_FALLBACK = "conversations are kept in memory instead, and lost when the server stops"

#: How often a waiter re-reads a store that other processes write (SQLite, Redis), in seconds.
POLL_INTERVAL = 1.0


def open_store(
    url: str,
    limits: Limits | None = None,
    clock: Callable[[], float] = time.time,
    *,
    poll_interval: float = POLL_INTERVAL,
) -> Store | None:
    """The store named by ``url`` (the ``GROK_STORE`` setting); ``None`` for ``off``.

    Nothing is connected or opened for Redis until first use; an SQLite file is opened (and
    created owner-only) here. Raises ``ValueError`` with a one-line message for anything else.
    """
    limits = limits or Limits()
    value = url.strip()
    scheme = value.split(":", 1)[0].lower()
    if value.lower() in ("", "memory"):
        from grok_chat_mcp.store.memory import MemoryStore

        return MemoryStore(limits, clock)
    if value.lower() == "off":
        return None
    if scheme == "sqlite":
        from grok_chat_mcp.store.sqlite import SQLiteStore

        path = value[len("sqlite://") :] if value.lower().startswith("sqlite://") else ""
        if not os.path.isabs(path) or path == "/":  # isabs: C:/... too, as the default is on Windows
            raise ValueError(f"GROK_STORE: use sqlite:///absolute/path/to/file.db, got {url!r}")
        try:
            return SQLiteStore(path, limits, clock, poll_interval=poll_interval)
        except (OSError, sqlite3.Error) as exc:
            raise ValueError(f"GROK_STORE: cannot open {path}: {exc}") from exc
    if scheme in ("redis", "rediss"):
        try:
            from grok_chat_mcp.store.redis import RedisStore
        except ImportError as exc:
            raise ValueError(
                "GROK_STORE: a redis:// store needs the redis package: pip install 'grok-chat-mcp[redis]'"
            ) from exc

        return RedisStore.from_url(value, limits, clock, poll_interval=poll_interval)
    shown = url if "@" not in url else scheme + "://..."
    raise ValueError(
        "GROK_STORE: expected memory, off, sqlite:///absolute/path, redis://... or rediss://..., "
        f"got {shown!r}"
    )
