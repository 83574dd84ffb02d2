"""The store's data model, errors and the rules every implementation shares."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import pydantic_core

MiB = 1024 * 1024

#: What an id looks like; anything else is unknown without asking the backend.
ID_PATTERN = re.compile(r"conv_[A-Za-z0-9_-]{8,64}")
_OWNER_DOMAIN = b"grok-chat-mcp/conversation-owner/v1\0"


@dataclass(frozen=True)
class Limits:
    """Bounds on what a store keeps (docs/conversations-store.md says why these values)."""

    #: Beyond this, the least recently used conversation is evicted.
    max_conversations: int = 1000
    #: JSON size of one conversation's messages; a call whose history would pass it is refused.
    max_conversation_bytes: int = 64 * MiB
    #: Everything stored (messages, answers, errors); least recently used conversations are evicted.
    max_total_bytes: int = 512 * MiB
    #: Idle time to live, in seconds.
    ttl: float = 24 * 3600.0
    #: Seconds a running call's lease lasts; the call renews it while it runs (``Store.progress``),
    #: so a running mark not renewed for this long belongs to a process that died.
    lease: float = 60.0

    def __post_init__(self) -> None:
        for name in (
            "max_conversations",
            "max_conversation_bytes",
            "max_total_bytes",
            "ttl",
            "lease",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")
        if self.max_conversation_bytes > self.max_total_bytes:
            raise ValueError("Limits.max_conversation_bytes must not exceed Limits.max_total_bytes")


@dataclass(frozen=True)
class Conversation:
    """One conversation as the tool sees it."""

    id: str
    owner: str
    #: The history sent upstream: the caller's turns and the assistant replies, tool calls included.
    messages: list[dict[str, Any]]
    running: bool
    started_at: float | None
    #: Characters of the answer received so far by the running call.
    chars: int
    #: The last completed result, replayed as-is.
    answer: dict[str, Any] | None
    #: Why the last call failed, if it did (also set when a running call was abandoned).
    error: str | None
    updated_at: float


class StoreError(Exception):
    """A refusal; ``str()`` is one line telling the agent what to do."""


class UnknownConversation(StoreError):
    """Unknown, expired, or another owner's: all three read the same."""

    def __init__(self, conversation_id: str) -> None:
        shown = conversation_id if len(conversation_id) <= 80 else conversation_id[:77] + "..."
        super().__init__(
            f"unknown or expired conversation_id {shown!r}; send the full history in messages "
            "(without conversation_id) to start a new conversation"
        )


class Busy(StoreError):
    """A call is already running in the conversation."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"a call is still running in conversation {conversation_id}; collect it first: "
            "call again with only conversation_id"
        )


class LimitExceeded(StoreError):
    """A bound would be passed; the message says which and what to do instead."""


class Unavailable(StoreError):
    """The backend failed (Redis unreachable, disk full...); the cause is chained."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            f"the conversation store is unavailable ({type(cause).__name__}); try again later, or send "
            "the full history in messages without conversation_id"
        )


class Damaged(StoreError):
    """Stored data that cannot be read (a corrupt file or record); the message says where and what to do."""


def damaged_store(where: str, detail: str) -> Damaged:
    """The whole store cannot be read (a corrupt or foreign file)."""
    return Damaged(
        f"the conversation store {where} is damaged ({detail}); stop the server and move that file aside "
        "(the server creates a new one when it starts), then send the full history in messages without "
        "conversation_id"
    )


def damaged_record(where: str, conversation_id: str, detail: str) -> Damaged:
    """One conversation's record cannot be read; the rest of the store can."""
    return Damaged(
        f"conversation {conversation_id} in the conversation store {where} is damaged ({detail}); send the "
        "full history in messages without conversation_id to start a new conversation (the damaged record "
        "expires like any other)"
    )


def too_large(conversation_id: str | None, size: int, limit: int) -> LimitExceeded:
    if conversation_id is None:
        return LimitExceeded(
            f"the messages are {human_size(size)}, over the {human_size(limit)} a conversation may hold; "
            "send fewer or shorter messages"
        )
    return LimitExceeded(
        f"conversation {conversation_id} would grow to {human_size(size)}, over its {human_size(limit)} "
        "limit; start a new conversation: send a summary of it and your new message in messages, "
        "without conversation_id"
    )


def store_full(running: int) -> LimitExceeded:
    return LimitExceeded(
        f"the conversation store is full of running calls ({running}); try again when one has finished"
    )


ABANDONED = (
    "the server that ran this call stopped before it finished; nothing was returned and nothing was "
    "billed for an answer you can see; ask again"
)
#: The error kept for a call cancelled by its client (a task then reads ``cancelled``).
CANCELLED = "The call was cancelled before it finished; send the message again."


def human_size(n: int) -> str:
    if n < 10 * 1024:
        return f"{n} bytes"
    if n < MiB:
        return f"{n // 1024} KiB"
    return f"{n / MiB:.1f} MiB"


def dumps(value: Any) -> str:
    """The JSON text stored and measured: compact, UTF-8 as is (what ``json.dumps`` writes with
    compact separators and ``ensure_ascii=False``, but for floats under 1e-4, which it writes in
    exponent form; see docs/benchmarks.md for why not ``json``)."""
    return pydantic_core.to_json(value).decode()


def json_size(value: Any) -> int:
    """Bytes of ``value`` as stored JSON."""
    return len(pydantic_core.to_json(value))


#: What one JSON value (an object key counts as one) costs in memory beyond its JSON bytes, at most:
#: a Python object's header and its slot in the container (docs/conversations-store.md, measured).
VALUE_BYTES = 128


def held_size(value: Any) -> int:
    """Bytes ``value`` counts against the store's limits: its JSON bytes plus :data:`VALUE_BYTES` for
    each value it holds, so that many small values count for the memory they take, not their text."""
    return json_size(value) + VALUE_BYTES * inner_values(value)


def inner_values(value: Any) -> int:
    """JSON values inside ``value``, object keys included, ``value`` itself not (so the counts of two
    arrays add up to the count of the array joining them)."""
    count = 0
    stack = [value] if type(value) is dict or type(value) is list else []
    while stack:  # exact types, and only containers pushed (docs/conversations-store.md)
        item = stack.pop()
        if type(item) is dict:
            count += 2 * len(item)
            children: Iterable[Any] = item.values()
        else:
            count += len(item)
            children = item
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append(child)
    return count


def joined_size(a: int, b: int) -> int:
    """Size of the JSON array joining two JSON arrays of sizes ``a`` and ``b`` (bytes, or
    :func:`held_size`: an empty array is 2 either way)."""
    if a <= 2:
        return b
    if b <= 2:
        return a
    return a + b - 1


def owner_of(token: str | None) -> str:
    """The owner key for a token: a domain-separated SHA-256, never the token itself."""
    data = _OWNER_DOMAIN + (b"\1" + token.encode() if token is not None else b"\0")
    return hashlib.sha256(data).hexdigest()


def new_id() -> str:
    """An unguessable conversation id (144 random bits)."""
    return "conv_" + secrets.token_urlsafe(18)


def valid_id(conversation_id: str) -> bool:
    return ID_PATTERN.fullmatch(conversation_id) is not None


class Store(Protocol):
    """Where conversations live. All methods are safe to call concurrently."""

    async def begin(
        self, owner: str, conversation_id: str | None, new_messages: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        """Mark a call running (with a lease) and return its id and the stored history.

        Atomic: of two begins on one id, one gets :class:`Busy`. ``None`` starts a new
        conversation. The stored history goes upstream before ``new_messages``; a history that
        would pass ``max_conversation_bytes`` with them raises :class:`LimitExceeded`. Clears the
        last answer and error.
        """
        ...

    async def progress(self, conversation_id: str, chars: int) -> None:
        """Renew the running call's lease and record how many characters it has received."""
        ...

    async def finish(
        self,
        conversation_id: str,
        new_messages: list[dict[str, Any]],
        reply: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        """Append ``new_messages`` and the assistant ``reply``, keep ``answer``, end the run."""
        ...

    async def fail(self, conversation_id: str, error: str) -> None:
        """End the run without touching the history; keep ``error`` for the collector."""
        ...

    async def get(self, owner: str, conversation_id: str) -> Conversation:
        """The conversation, which counts as a use (LRU, TTL).

        :class:`UnknownConversation` if it is not ``owner``'s, or is unknown, expired or evicted.
        """
        ...

    async def wait(self, owner: str, conversation_id: str, timeout: float) -> Conversation:  # noqa: ASYNC109
        """The conversation once it is not running, or after ``timeout`` seconds (still running).

        Raises :class:`UnknownConversation` as :meth:`get` does, also if it is evicted meanwhile.
        """
        ...

    async def cancel(self, conversation_id: str) -> None:
        """Ask the replica running ``conversation_id``'s call to cancel it (see :meth:`listen_cancels`)."""
        ...

    async def listen_cancels(self, cancel: Callable[[str], object]) -> None:
        """Call ``cancel`` with each conversation id some replica asked to cancel, until cancelled.

        Only a store that replicas share passes cancels on; the others wait for ever.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...

    async def spent(self, owner: str, window: str) -> int:
        """What ``owner`` spent in the budget window named ``window``, in ticks (10^-10 USD)."""
        ...

    async def spend(self, owner: str, window: str, ticks: int, expires_at: float) -> int:
        """Add ``ticks`` to ``owner``'s spend in ``window`` atomically and return the new total.

        The count may be forgotten after ``expires_at`` (seconds since the epoch: the window's end).
        """
        ...


@dataclass
class Record:
    """A conversation as memory and SQLite keep it."""

    id: str
    owner: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: :func:`held_size` of ``messages``.
    messages_bytes: int = 2
    running: bool = False
    started_at: float | None = None
    #: Until when the running mark holds without a renewal.
    lease_until: float | None = None
    chars: int = 0
    answer: dict[str, Any] | None = None
    #: :func:`held_size` of ``answer`` (0 when there is none).
    answer_bytes: int = 0
    error: str | None = None
    updated_at: float = 0.0

    @property
    def size(self) -> int:
        """Bytes this conversation counts against ``max_total_bytes``."""
        return self.messages_bytes + self.answer_bytes + len((self.error or "").encode())

    def busy(self, now: float, limits: Limits) -> bool:
        """Running, and its lease still holds (the process running it renews it)."""
        return self.running and self.lease_until is not None and now <= self.lease_until

    def expired(self, now: float, limits: Limits) -> bool:
        return not self.busy(now, limits) and now - self.updated_at > limits.ttl

    def start(self, new_messages: list[dict[str, Any]], now: float, limits: Limits) -> list[dict[str, Any]]:
        """Check and mark the start of a call; the stored history."""
        size = joined_size(self.messages_bytes, held_size(new_messages))
        if size > limits.max_conversation_bytes:
            raise too_large(self.id if self.messages else None, size, limits.max_conversation_bytes)
        self.running, self.started_at, self.lease_until, self.chars = True, now, now + limits.lease, 0
        self.answer, self.answer_bytes, self.error = None, 0, None
        self.updated_at = now
        return list(self.messages)

    def complete(
        self, new_messages: list[dict[str, Any]], reply: dict[str, Any], answer: dict[str, Any], now: float
    ) -> None:
        added = [*new_messages, reply]
        self.messages = [*self.messages, *added]
        self.messages_bytes = joined_size(self.messages_bytes, held_size(added))
        self.answer, self.answer_bytes = answer, held_size(answer)
        self.error, self.running, self.updated_at = None, False, now

    def failed(self, error: str, now: float) -> None:
        self.error, self.running, self.updated_at = error, False, now

    def view(self, now: float, limits: Limits) -> Conversation:
        running = self.busy(now, limits)
        error = self.error
        if self.running and not running and error is None:
            error = ABANDONED
        return Conversation(
            id=self.id,
            owner=self.owner,
            messages=list(self.messages),
            running=running,
            started_at=self.started_at,
            chars=self.chars,
            answer=self.answer,
            error=error,
            updated_at=self.updated_at,
        )


class Signals:
    """In-process wake-ups for :meth:`Store.wait`, for the conversations someone is waiting on."""

    def __init__(self) -> None:
        self._events: dict[str, anyio.Event] = {}
        self._listeners: dict[str, int] = {}

    @contextmanager
    def listening(self, conversation_id: str) -> Iterator[None]:
        """While inside, :meth:`event` gives events that :meth:`fire` sets."""
        self._listeners[conversation_id] = self._listeners.get(conversation_id, 0) + 1
        try:
            yield
        finally:
            left = self._listeners.pop(conversation_id) - 1
            if left:
                self._listeners[conversation_id] = left
            else:
                self._events.pop(conversation_id, None)

    def event(self, conversation_id: str) -> anyio.Event:
        """The event the next :meth:`fire` sets (call inside :meth:`listening`)."""
        return self._events.setdefault(conversation_id, anyio.Event())

    def fire(self, conversation_id: str) -> None:
        event = self._events.pop(conversation_id, None)
        if event is not None:
            event.set()

    def fire_all(self) -> None:
        for conversation_id in list(self._events):
            self.fire(conversation_id)


async def wait_polling(
    store: Store,
    signals: Signals,
    owner: str,
    conversation_id: str,
    seconds: float,
    poll_interval: float,
    busy: Callable[[str], Awaitable[bool]],
) -> Conversation:
    """``Store.wait`` for a store other processes may write: wake on a local signal, else re-check.

    The event is taken before the first read, so a ``finish`` in between is not missed.
    """
    with signals.listening(conversation_id):
        event = signals.event(conversation_id)
        conversation = await store.get(owner, conversation_id)
        if not conversation.running:
            return conversation
        deadline = anyio.current_time() + seconds
        while (remaining := deadline - anyio.current_time()) > 0:
            with anyio.move_on_after(min(remaining, poll_interval)):
                await event.wait()
            event = signals.event(conversation_id)
            if not await busy(conversation_id):
                break
    return await store.get(owner, conversation_id)
