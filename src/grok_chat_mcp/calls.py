"""Calls whose answers outlive the tool call: run in the background, stored, collected by id.

A call runs in a task of its own. The tool call that started it waits up to
``GROK_RETURN_AFTER`` seconds; past that it returns ``status: "running"`` and the call goes on
(bounded by ``GROK_CALL_TIMEOUT``). Its answer, or its error, lands in the store, where any tool
call with the conversation's id (on any replica sharing the store) collects it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import anyio
from mcp_types import CallToolResult

from grok_chat_mcp import results
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.progress import ProgressRelay
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.store import Store

logger = logging.getLogger(__name__)

#: Seconds between progress updates written to the store (seen by collectors on other replicas).
STORE_PROGRESS_EVERY = 2.0

Job = Callable[[], Awaitable[CallToolResult]]
INTERNAL_ERROR = GrokError(
    "Internal error",
    "the server failed while handling this call (its log has the details).",
    "Call again; if it keeps failing, report it with the server's log.",
)


class Calls:
    """Starts calls and collects their answers.

    Each call's job runs in a task of its own, created on the event loop directly rather than in
    an anyio task group (a tenth of the cost per call; the server runs on asyncio or uvloop only):
    the job must be able to outlive the tool call that started it. :meth:`aclose` cancels the jobs
    still running and waits for them, as leaving a task group would.
    """

    def __init__(
        self,
        store: Store | None,
        *,
        return_after: float,
        call_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._return_after = return_after if store is not None and return_after > 0 else math.inf
        self._call_timeout = call_timeout
        self._clock = clock
        self._jobs: dict[asyncio.Task[None], anyio.CancelScope] = {}
        self._closed = False

    async def start(
        self, job: Job, conversation_id: str | None, relay: ProgressRelay | None, secrets: Secrets
    ) -> CallToolResult:
        """Run ``job`` (which stores its own answer); its result, or ``running`` after the soft limit.

        Cancelling the tool call before then cancels the job, which closes the upstream request.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()  # True: the job ended; False: the soft limit
        outcome: list[CallToolResult | GrokError] = []
        scope = anyio.CancelScope()
        started = self._clock()

        async def run() -> None:
            with scope:
                try:
                    outcome.append(await job())
                except GrokError as exc:
                    outcome.append(exc)
                except Exception:  # a bug must not take the server (and every other call) down
                    logger.exception("a call failed unexpectedly")
                    outcome.append(INTERNAL_ERROR)
            if not done.done():
                done.set_result(True)

        if self._closed:
            scope.cancel()
        task = loop.create_task(run())
        self._jobs[task] = scope
        task.add_done_callback(self._forget)
        timer = (
            loop.call_later(self._return_after, _settle, done, False)
            if self._return_after != math.inf
            else None
        )
        try:
            finished = await done
        except anyio.get_cancelled_exc_class():
            scope.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if not finished:
            assert conversation_id is not None  # early returns need a store
            if relay is not None:
                relay.detach()
            chars = relay.chars if relay is not None else 0
            logger.info("call in %s still running; returned early", conversation_id)
            return results.running(conversation_id, self._clock() - started, chars)
        if not outcome:  # the job was cancelled (shutdown)
            return results.error("Cancelled: the server is shutting down.")
        first = outcome[0]
        if isinstance(first, GrokError):
            return results.error(str(first), secrets)
        return first

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._jobs.pop(task, None)

    async def aclose(self) -> None:
        """Cancel the jobs still running and wait for them (they record the cancellation)."""
        self._closed = True
        while self._jobs:
            tasks = list(self._jobs)
            for scope in self._jobs.values():
                scope.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)

    async def collect(
        self, owner: str, conversation_id: str, secrets: Secrets, relay: ProgressRelay | None
    ) -> CallToolResult:
        """The conversation's answer once its call is done (waiting up to the soft limit)."""
        assert self.store is not None
        conversation = await self.store.get(owner, conversation_id)
        if conversation.running:
            wait = min(self._return_after, self._call_timeout)
            if relay is None:
                conversation = await self.store.wait(owner, conversation_id, wait)
            else:
                async with relay.running():
                    conversation = await self.store.wait(owner, conversation_id, wait)
        if conversation.running:
            seconds = self._clock() - (conversation.started_at or self._clock())
            return results.running(conversation_id, seconds, conversation.chars)
        if conversation.error is not None:
            return results.error(conversation.error, secrets)
        if conversation.answer is None:
            return results.error(f"Conversation {conversation_id} has no answer yet: send a message with it.")
        return results.success(conversation.answer, secrets)


def _settle(done: asyncio.Future[bool], finished: bool) -> None:
    if not done.done():
        done.set_result(finished)
