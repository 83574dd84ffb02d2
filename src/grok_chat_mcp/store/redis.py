"""Conversations in Redis: shared by every replica; a running answer can be collected through any."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import redis.asyncio
import redis.exceptions

from grok_chat_mcp.store._base import (
    VALUE_BYTES,
    Busy,
    Conversation,
    Damaged,
    Limits,
    Record,
    Unavailable,
    UnknownConversation,
    damaged_record,
    dumps,
    held_size,
    inner_values,
    new_id,
    store_full,
    too_large,
    valid_id,
)

#: Every key starts with this; the braces keep them in one Redis Cluster hash slot.
PREFIX = "grok-chat-mcp:{conversations}:"

# Shared by every script. ARGV[1..8] are the prefix, now, and the limits; the scripts' own
# arguments follow. A conversation is the hash <prefix>c:<id>; <prefix>index is a sorted set of
# ids scored by last use; <prefix>sizes a hash of id -> bytes; <prefix>total their sum.
_COMMON = """
local P = ARGV[1]
local now_s = ARGV[2]
local now = tonumber(now_s)
local ttl = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local max_n = tonumber(ARGV[5])
local max_total = tonumber(ARGV[6])
local max_conv = tonumber(ARGV[7])
local expire_ms = ARGV[8]
local index, sizes, totalk = P .. 'index', P .. 'sizes', P .. 'total'

local function ckey(id) return P .. 'c:' .. id end

local function busy(running, lease_end)
  return running == '1' and lease_end and tonumber(lease_end) >= now
end

local function joined(a, b)
  if a <= 2 then return b end
  if b <= 2 then return a end
  return a + b - 1
end

local function remove(id)
  local s = tonumber(redis.call('HGET', sizes, id) or '0')
  redis.call('HDEL', sizes, id)
  redis.call('ZREM', index, id)
  redis.call('DEL', ckey(id))
  redis.call('DECRBY', totalk, s)
  redis.call('PUBLISH', P .. 'done:' .. id, 'gone')
end

local function set_size(id, s)
  local old = tonumber(redis.call('HGET', sizes, id) or '0')
  redis.call('HSET', sizes, id, s)
  redis.call('INCRBY', totalk, s - old)
end

local function touch(id)
  redis.call('ZADD', index, now_s, id)
  redis.call('PEXPIRE', ckey(id), expire_ms)
end

local function idle(id)
  local f = redis.call('HMGET', ckey(id), 'running', 'lease')
  return not busy(f[1], f[2])
end

local function expire()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. (now - ttl))) do
    if idle(id) then remove(id) end
  end
end

local function fits(count, size)
  local total = tonumber(redis.call('GET', totalk) or '0')
  return redis.call('ZCARD', index) + count <= max_n and total + size <= max_total
end

-- Evict the least recently used idle conversations (not keep) until count more of size fit;
-- returns how many are left when they cannot (all running), else 0.
local function make_room(count, size, keep)
  if fits(count, size) then return 0 end
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if id ~= keep and idle(id) then
      remove(id)
      if fits(count, size) then return 0 end
    end
  end
  return redis.call('ZCARD', index)
end
"""

# ARGV[9] id, [10] owner, [11] held_size of the new messages, [12] '1' for a new conversation.
_BEGIN = """
local id, owner, new_bytes = ARGV[9], ARGV[10], tonumber(ARGV[11])
local k = ckey(id)
expire()
if ARGV[12] == '1' then
  if new_bytes > max_conv then return {'large', new_bytes, 2} end
  local left = make_room(1, 2, '')
  if left > 0 then return {'full', left} end
  redis.call('HSET', k, 'owner', owner, 'messages', '[]', 'mbytes', 2, 'abytes', 0,
    'running', 1, 'started', now_s, 'lease', tostring(now + lease), 'chars', 0, 'updated', now_s)
  set_size(id, 2)
  touch(id)
  return {'ok', '[]'}
end
local f = redis.call('HMGET', k, 'owner', 'running', 'lease', 'updated', 'mbytes')
if f[1] ~= owner then return {'unknown'} end
local is_busy = busy(f[2], f[3])
if not is_busy and now - tonumber(f[4]) > ttl then
  remove(id)
  return {'unknown'}
end
if is_busy then return {'busy'} end
local mbytes = tonumber(f[5])
local size = joined(mbytes, new_bytes)
if size > max_conv then return {'large', size, mbytes} end
redis.call('HSET', k, 'running', 1, 'started', now_s, 'lease', tostring(now + lease), 'chars', 0, 'abytes', 0,
  'updated', now_s)
redis.call('HDEL', k, 'answer', 'error')
set_size(id, mbytes)
touch(id)
return {'ok', redis.call('HGET', k, 'messages')}
"""

# ARGV[9] id, [10] JSON array of the turns to append, [11] its size, [12] the answer's JSON, [13] its size.
_FINISH = """
local id, added, added_bytes, answer = ARGV[9], ARGV[10], tonumber(ARGV[11]), ARGV[12]
local abytes = tonumber(ARGV[13])
local k = ckey(id)
local f = redis.call('HMGET', k, 'running', 'messages', 'mbytes')
if f[1] ~= '1' then return 0 end
local mbytes = tonumber(f[3])
local merged = added
if mbytes > 2 then merged = string.sub(f[2], 1, -2) .. ',' .. string.sub(added, 2) end
mbytes = joined(mbytes, added_bytes)
redis.call('HSET', k, 'messages', merged, 'mbytes', mbytes, 'answer', answer, 'abytes', abytes,
  'running', 0, 'updated', now_s)
redis.call('HDEL', k, 'error')
set_size(id, mbytes + abytes)
touch(id)
make_room(0, 0, id)
redis.call('PUBLISH', P .. 'done:' .. id, 'done')
return 1
"""

# ARGV[9] id, [10] error.
_FAIL = """
local id, err = ARGV[9], ARGV[10]
local k = ckey(id)
local f = redis.call('HMGET', k, 'running', 'mbytes', 'abytes')
if f[1] ~= '1' then return 0 end
redis.call('HSET', k, 'running', 0, 'error', err, 'updated', now_s)
set_size(id, tonumber(f[2]) + tonumber(f[3]) + #err)
touch(id)
make_room(0, 0, id)
redis.call('PUBLISH', P .. 'done:' .. id, 'done')
return 1
"""

# ARGV[9] id, [10] chars.
_PROGRESS = """
local k = ckey(ARGV[9])
if redis.call('HGET', k, 'running') == '1' then
  redis.call('HSET', k, 'chars', ARGV[10], 'lease', tostring(now + lease))
end
return 0
"""

# ARGV[9] id, [10] owner. Touches the conversation and returns its fields, or {} if unknown.
_GET = """
local id, owner = ARGV[9], ARGV[10]
local k = ckey(id)
local f = redis.call('HMGET', k, 'owner', 'running', 'lease', 'updated')
if f[1] ~= owner then return {} end
if not busy(f[2], f[3]) and now - tonumber(f[4]) > ttl then
  remove(id)
  return {}
end
if now > tonumber(f[4]) then redis.call('HSET', k, 'updated', now_s) end
touch(id)
return redis.call('HMGET', k, 'messages', 'mbytes', 'running', 'started', 'lease', 'chars', 'answer',
  'error', 'updated')
"""


def _where(client: redis.asyncio.Redis, prefix: str) -> str:
    """The store as errors name it: server, database and key prefix, never credentials."""
    options: dict[str, Any] = client.connection_pool.connection_kwargs
    server = options.get("path") or f"{options.get('host', '?')}:{options.get('port', '?')}"
    return f"redis {server} db {options.get('db', 0)} keys {prefix}*"


def damaged_keys(where: str, prefix: str) -> Damaged:
    """A conversation's fields are not what the scripts write (a field that should be a number)."""
    return Damaged(
        f"the conversation store {where} holds a conversation this server did not write (a field is not a "
        f"number); delete the keys {prefix}* to start afresh, then send the full history in messages "
        "without conversation_id"
    )


class RedisStore:
    """A :class:`~grok_chat_mcp.store.Store` in Redis, for several replicas.

    Each operation is one Lua script, which Redis runs atomically, so two replicas beginning a
    call in one conversation cannot both succeed. ``wait`` subscribes to the conversation's
    ``done`` channel (``finish`` publishes on it from any replica) and re-reads its state every
    ``poll_interval`` seconds in case a message is missed. The client must decode responses.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        *,
        prefix: str = PREFIX,
        poll_interval: float = 1.0,
    ) -> None:
        self._redis = client
        self.where = _where(client, prefix)
        self._limits = limits or Limits()
        self._clock = clock
        self._prefix = prefix
        self._poll = poll_interval
        self._scripts = {
            name: client.register_script(_COMMON + body)
            for name, body in (
                ("begin", _BEGIN),
                ("finish", _FINISH),
                ("fail", _FAIL),
                ("progress", _PROGRESS),
                ("get", _GET),
            )
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        *,
        prefix: str = PREFIX,
        poll_interval: float = 1.0,
    ) -> RedisStore:
        """A store on the Redis server at ``url`` (connected on first use)."""
        client = redis.asyncio.Redis.from_url(url, decode_responses=True)
        return cls(client, limits, clock, prefix=prefix, poll_interval=poll_interval)

    async def _call(self, name: str, *args: str | int | float) -> Any:
        limits = self._limits
        key_ttl = max(limits.ttl, limits.lease) + 60.0
        common = (
            self._prefix,
            repr(self._clock()),
            repr(float(limits.ttl)),
            repr(float(limits.lease)),
            limits.max_conversations,
            limits.max_total_bytes,
            limits.max_conversation_bytes,
            int(key_ttl * 1000),
        )
        try:
            return await self._scripts[name](keys=[self._prefix + "index"], args=[*common, *args])
        except redis.exceptions.ResponseError as exc:
            if "user_script" in str(exc) and "attempt to" in str(exc):  # a Lua type error: a damaged field
                raise damaged_keys(self.where, self._prefix) from exc
            raise Unavailable(exc) from exc
        except redis.exceptions.RedisError as exc:
            raise Unavailable(exc) from exc

    async def begin(
        self, owner: str, conversation_id: str | None, new_messages: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        if conversation_id is not None and not valid_id(conversation_id):
            raise UnknownConversation(conversation_id)
        cid = conversation_id or new_id()
        new_bytes = held_size(new_messages)
        result = await self._call("begin", cid, owner, new_bytes, int(conversation_id is None))
        status = result[0]
        if status == "unknown":
            raise UnknownConversation(cid)
        if status == "busy":
            raise Busy(cid)
        if status == "large":
            raise too_large(
                cid if int(result[2]) > 2 else None, int(result[1]), self._limits.max_conversation_bytes
            )
        if status == "full":
            raise store_full(int(result[1]))
        stored: list[dict[str, Any]] = self._decoded(cid, result[1], list)
        return cid, stored

    async def progress(self, conversation_id: str, chars: int) -> None:
        await self._call("progress", conversation_id, chars)

    async def finish(
        self,
        conversation_id: str,
        new_messages: list[dict[str, Any]],
        reply: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        turns = [*new_messages, reply]
        added, text = dumps(turns), dumps(answer)
        added_size = len(added.encode()) + VALUE_BYTES * inner_values(turns)
        answer_size = len(text.encode()) + VALUE_BYTES * inner_values(answer)
        await self._call("finish", conversation_id, added, added_size, text, answer_size)

    async def fail(self, conversation_id: str, error: str) -> None:
        await self._call("fail", conversation_id, error)

    async def get(self, owner: str, conversation_id: str) -> Conversation:
        if not valid_id(conversation_id):
            raise UnknownConversation(conversation_id)
        fields = await self._call("get", conversation_id, owner)
        if not fields:
            raise UnknownConversation(conversation_id)
        messages, mbytes, running, started, lease, chars, answer, error, updated = fields
        try:
            record = Record(
                id=conversation_id,
                owner=owner,
                messages=self._decoded(conversation_id, messages, list),
                messages_bytes=int(mbytes),
                running=running == "1",
                started_at=float(started) if started is not None else None,
                lease_until=float(lease) if lease is not None else None,
                chars=int(chars or 0),
                answer=self._decoded(conversation_id, answer, dict) if answer is not None else None,
                error=error,
                updated_at=float(updated),
            )
        except (ValueError, TypeError) as exc:  # a number field that is not one, or missing
            raise damaged_record(self.where, conversation_id, "a field is not a number") from exc
        return record.view(self._clock(), self._limits)

    def _decoded(self, conversation_id: str, text: Any, kind: type[list[Any]] | type[dict[str, Any]]) -> Any:
        """Stored JSON text as a ``kind``; :class:`Damaged` if it is not what this store writes."""
        try:
            value = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise damaged_record(self.where, conversation_id, "its JSON does not parse") from exc
        if not isinstance(value, kind) or (
            isinstance(value, list) and not all(isinstance(m, dict) for m in value)
        ):
            raise damaged_record(self.where, conversation_id, "its JSON is not what was stored")
        return value

    async def wait(self, owner: str, conversation_id: str, timeout: float) -> Conversation:  # noqa: ASYNC109
        conversation = await self.get(owner, conversation_id)
        if not conversation.running:
            return conversation
        deadline = anyio.current_time() + timeout
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._prefix + "done:" + conversation_id)
            while await self._busy(conversation_id):
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    break
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, self._poll))
        except redis.exceptions.RedisError as exc:
            raise Unavailable(exc) from exc
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()
        return await self.get(owner, conversation_id)

    async def _busy(self, conversation_id: str) -> bool:
        running, lease = await self._redis.hmget(self._prefix + "c:" + conversation_id, ["running", "lease"])
        if running != "1" or lease is None:
            return False
        try:
            return float(lease) >= self._clock()
        except ValueError as exc:
            raise damaged_record(self.where, conversation_id, "its lease is not a number") from exc

    async def cancel(self, conversation_id: str) -> None:
        try:
            await self._redis.publish(self._prefix + "cancel", conversation_id)
        except redis.exceptions.RedisError as exc:
            raise Unavailable(exc) from exc

    async def listen_cancels(self, cancel: Callable[[str], object]) -> None:
        """Subscribed to the cancel channel; reconnects after a failure, a second later."""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._prefix + "cancel")
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None and isinstance(message.get("data"), str):
                        cancel(message["data"])
            except redis.exceptions.RedisError:
                await anyio.sleep(1.0)
            finally:
                with anyio.CancelScope(shield=True):
                    await pubsub.aclose()

    async def spent(self, owner: str, window: str) -> int:
        try:
            value = await self._redis.get(self._spend_key(owner, window))
        except redis.exceptions.RedisError as exc:
            raise Unavailable(exc) from exc
        return int(value or 0)

    async def spend(self, owner: str, window: str, ticks: int, expires_at: float) -> int:
        key = self._spend_key(owner, window)
        seconds = max(1, int(expires_at - self._clock()) + 1)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, ticks)
                pipe.expire(key, seconds)
                total, _ = await pipe.execute()
        except redis.exceptions.RedisError as exc:
            raise Unavailable(exc) from exc
        return int(total)

    def _spend_key(self, owner: str, window: str) -> str:
        return f"{self._prefix}spend:{owner}:{window}"

    async def aclose(self) -> None:
        await self._redis.aclose()
