"""Conversations in this process's memory: the default, nothing written to disk."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import anyio

from grok_chat_mcp.store._base import (
    Busy,
    Conversation,
    Limits,
    Record,
    Signals,
    UnknownConversation,
    new_id,
    store_full,
    valid_id,
)


class MemoryStore:
    """A :class:`~grok_chat_mcp.store.Store` in a dict, least recently used first.

    Every method runs without awaiting between reading and writing, so each is atomic on the
    event loop without a lock. ``wait`` sleeps on an event that ``finish`` and ``fail`` set.
    """

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.time) -> None:
        self._limits = limits or Limits()
        self._clock = clock
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._total = 0
        self._signals = Signals()
        #: Budget spend in ticks per (owner, window), with the time it may be forgotten.
        self._spend: dict[tuple[str, str], tuple[int, float]] = {}

    @property
    def total_bytes(self) -> int:
        """Bytes counted against ``max_total_bytes``."""
        return self._total

    def __len__(self) -> int:
        return len(self._records)

    async def begin(
        self, owner: str, conversation_id: str | None, new_messages: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        now = self._clock()
        self._expire(now)
        if conversation_id is None:
            record = Record(id=new_id(), owner=owner, updated_at=now)
            history = record.start(new_messages, now, self._limits)
            self._make_room(now, 1, record.size)
            self._records[record.id] = record
            self._total += record.size
            return record.id, history
        record = self._owned(owner, conversation_id, now)
        if record.busy(now, self._limits):
            raise Busy(conversation_id)
        before = record.size
        history = record.start(new_messages, now, self._limits)
        self._total += record.size - before
        self._records.move_to_end(conversation_id)
        return conversation_id, history

    async def progress(self, conversation_id: str, chars: int) -> None:
        record = self._records.get(conversation_id)
        if record is not None and record.running:
            record.chars, record.lease_until = chars, self._clock() + self._limits.lease

    async def finish(
        self,
        conversation_id: str,
        new_messages: list[dict[str, Any]],
        reply: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        record = self._records.get(conversation_id)
        if record is None or not record.running:
            return
        before = record.size
        record.complete(new_messages, reply, answer, self._clock())
        self._total += record.size - before
        self._records.move_to_end(conversation_id)
        self._signals.fire(conversation_id)
        self._make_room(record.updated_at, 0, 0, keep=conversation_id)

    async def fail(self, conversation_id: str, error: str) -> None:
        record = self._records.get(conversation_id)
        if record is None or not record.running:
            return
        before = record.size
        record.failed(error, self._clock())
        self._total += record.size - before
        self._records.move_to_end(conversation_id)
        self._signals.fire(conversation_id)
        self._make_room(record.updated_at, 0, 0, keep=conversation_id)

    async def get(self, owner: str, conversation_id: str) -> Conversation:
        now = self._clock()
        record = self._owned(owner, conversation_id, now)
        record.updated_at = max(record.updated_at, now)
        self._records.move_to_end(conversation_id)
        return record.view(now, self._limits)

    async def wait(self, owner: str, conversation_id: str, timeout: float) -> Conversation:  # noqa: ASYNC109
        with self._signals.listening(conversation_id):
            conversation = await self.get(owner, conversation_id)
            if conversation.running:
                with anyio.move_on_after(timeout):
                    await self._signals.event(conversation_id).wait()
                conversation = await self.get(owner, conversation_id)
        return conversation

    async def cancel(self, conversation_id: str) -> None:
        """Nothing to pass on: the call runs in the process that holds the client's connection."""

    async def listen_cancels(self, cancel: Callable[[str], object]) -> None:
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self._signals.fire_all()

    async def spent(self, owner: str, window: str) -> int:
        return self._spend.get((owner, window), (0, 0.0))[0]

    async def spend(self, owner: str, window: str, ticks: int, expires_at: float) -> int:
        now = self._clock()
        for key in [key for key, (_, until) in self._spend.items() if until < now]:
            del self._spend[key]
        total = self._spend.get((owner, window), (0, 0.0))[0] + ticks
        self._spend[(owner, window)] = (total, expires_at)
        return total

    def _owned(self, owner: str, conversation_id: str, now: float) -> Record:
        record = self._records.get(conversation_id) if valid_id(conversation_id) else None
        if record is not None and record.expired(now, self._limits):
            self._remove(record)
            record = None
        if record is None or record.owner != owner:
            raise UnknownConversation(conversation_id)
        return record

    def _remove(self, record: Record) -> None:
        del self._records[record.id]
        self._total -= record.size
        self._signals.fire(record.id)

    def _expire(self, now: float) -> None:
        """Remove expired conversations, oldest first. Records are kept in the order they were last
        updated, so the walk stops at the first idle record that has not expired: every later one
        was updated after it (running ones are passed over, however old)."""
        expired = []
        for record in self._records.values():
            if record.busy(now, self._limits):
                continue
            if not record.expired(now, self._limits):
                break
            expired.append(record)
        for record in expired:
            self._remove(record)

    def _make_room(self, now: float, count: int, size: int, keep: str | None = None) -> None:
        """Evict the least recently used until ``count`` more conversations of ``size`` fit."""
        limits = self._limits
        records, total = len(self._records), self._total

        def over() -> bool:
            return records + count > limits.max_conversations or total + size > limits.max_total_bytes

        if not over():
            return
        victims: list[Record] = []
        for record in self._records.values():  # least recently used first: usually the first will do
            if record.id != keep and not record.busy(now, limits):
                victims.append(record)
                records, total = records - 1, total - record.size
                if not over():
                    break
        for victim in victims:
            self._remove(victim)
        if over() and count:
            raise store_full(sum(r.busy(now, limits) for r in self._records.values()))
