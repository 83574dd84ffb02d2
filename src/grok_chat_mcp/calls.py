"""Calls whose answers outlive the tool call: run in the background, stored, collected by id.

A call's job runs in the task group the server's lifespan owns. The tool call that started it
waits up to a limit (``GROK_RETURN_AFTER``, or the short task wait for clients that speak the
Tasks extension); past that the tool call returns and the job goes on, bounded by
``GROK_CALL_TIMEOUT``. The job renews its lease in the store while it runs and stores its answer
or its error there, where any replica sharing the store finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
from anyio import TaskHandle
from anyio.abc import TaskGroup
from mcp_types import CallToolResult

from grok_chat_mcp import results
from grok_chat_mcp.errors import GrokError
from grok_chat_mcp.progress import ProgressRelay
from grok_chat_mcp.redaction import Secrets
from grok_chat_mcp.store import Limits, Store, StoreError

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[CallToolResult]]
INTERNAL_ERROR = GrokError(
    "Internal error",
    "the server failed while handling this call (its log has the details).",
    "Call again; if it keeps failing, report it with the server's log.",
)
SHUTTING_DOWN = "Cancelled: the server is shutting down."
_UNFINISHED = (TaskHandle.Status.PENDING, TaskHandle.Status.CANCELLING)


@dataclass(frozen=True)
class Call:
    """One tool call: who pays, where its conversation is kept, what to hide, where progress goes."""

    #: The hash of the token that pays (the request's own, else the server's).
    owner: str
    #: The request's own upstream token (None: the server's configured one).
    token: str | None
    secrets: Secrets
    relay: ProgressRelay | None = None
    conversation_id: str | None = None


class Chars:
    """Characters of the answer received so far, for the store's progress and the running result."""

    def __init__(self) -> None:
        self.count = 0


class Calls:
    """Starts calls in the lifespan's task group, collects their answers, cancels them by id."""

    def __init__(
        self,
        store: Store | None,
        tasks: TaskGroup,
        *,
        limits: Limits,
        return_after: float,
        call_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limits = limits
        self.return_after = return_after if store is not None and return_after > 0 else float("inf")
        self._tasks = tasks
        self._call_timeout = call_timeout
        self._clock = clock
        #: The job running in each conversation here, by the call that started it (one per call).
        self._running: dict[str, tuple[Call, TaskHandle[CallToolResult]]] = {}
        self._leases: dict[str, Chars] = {}
        self._jobs = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def start(self, job: Job, call: Call, wait: float) -> CallToolResult | None:
        """Run ``job`` (which stores its own answer); its result, or None once ``wait`` has passed.

        Cancelling the tool call before then cancels the job, which closes the upstream request.
        The job's task handle is its cancel scope and its end (no scope nor event of ours).
        """
        handle = self._tasks.start_soon(self._run, job, call)
        self._jobs += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        if call.conversation_id is not None:
            self._running[call.conversation_id] = (call, handle)
        try:
            with anyio.move_on_after(
                wait if self.store is not None and call.conversation_id else float("inf")
            ):
                await handle.wait()
        except anyio.get_cancelled_exc_class():
            handle.cancel()
            raise
        if handle.status is TaskHandle.Status.FINISHED:
            return handle.return_value
        if handle.status not in _UNFINISHED:  # cancelled with the lifespan's task group
            return results.error(SHUTTING_DOWN)
        if call.relay is not None:
            call.relay.detach()
        logger.debug("call in %s still running; returned early", call.conversation_id)
        return None

    async def _run(self, job: Job, call: Call) -> CallToolResult:
        try:
            return await _guarded(job, call.secrets)
        finally:
            self._jobs -= 1
            key = call.conversation_id
            if key is not None and key in self._running and self._running[key][0] is call:
                del self._running[key]
            if not self._jobs:
                self._idle.set()

    def cancel_here(self, conversation_id: str) -> bool:
        """Cancel the call running in ``conversation_id`` in this process; False if there is none."""
        running = self._running.get(conversation_id)
        if running is None:
            return False
        running[1].cancel()
        logger.info("cancelled a running call at the client's request")
        return True

    def cancel(self, conversation_id: str) -> None:
        """Cancel the call running in ``conversation_id``, here or in the process running it."""
        if not self.cancel_here(conversation_id):
            self.forward_cancel(conversation_id)

    def forward_cancel(self, key: str) -> None:
        """Pass a cancel this process cannot serve to the other replicas sharing the store, from
        the lifespan's task group: the request that brought it may end before it is sent."""
        if self.store is not None:
            logger.debug("passing a cancel for %s on to the other replicas", key)
            self._tasks.start_soon(self._forward, self.store, key)

    @staticmethod
    async def _forward(store: Store, key: str) -> None:
        with best_effort("passing a cancel on to the replica running the call"):
            await store.cancel(key)

    async def drained(self) -> None:
        """Return once no call is running in this process."""
        while not self._idle.is_set():
            await self._idle.wait()

    async def collect(self, call: Call, conversation_id: str) -> CallToolResult:
        """The conversation's answer once its call is done (waiting up to the soft limit)."""
        assert self.store is not None
        conversation = await self.store.get(call.owner, conversation_id)
        if conversation.running:
            wait = min(self.return_after, self._call_timeout)
            if call.relay is None:
                conversation = await self.store.wait(call.owner, conversation_id, wait)
            else:
                async with call.relay.running():
                    conversation = await self.store.wait(call.owner, conversation_id, wait)
        if conversation.running:
            seconds = self._clock() - (conversation.started_at or self._clock())
            return results.running(conversation_id, seconds, conversation.chars)
        if conversation.error is not None:
            return results.error(conversation.error, call.secrets)
        if conversation.answer is None:
            return results.error(f"Conversation {conversation_id} has no answer yet: send a message with it.")
        return results.success(conversation.answer, call.secrets)

    @contextmanager
    def leased(self, conversation_id: str | None, chars: Chars) -> Iterator[None]:
        """While inside, :meth:`renew_leases` renews the call's lease (with the characters
        received so far)."""
        if self.store is None or conversation_id is None:
            yield
            return
        self._leases[conversation_id] = chars
        try:
            yield
        finally:
            if self._leases.get(conversation_id) is chars:
                del self._leases[conversation_id]

    async def renew_leases(self) -> None:
        """Renew the lease of every call running here, a quarter lease apart (until cancelled): one
        task for the process, not one a call. A failure is logged once until a renewal succeeds."""
        store = self.store
        if store is None:
            return
        warned = False
        while True:
            await anyio.sleep(self.limits.lease / 4)
            for conversation_id, chars in list(self._leases.items()):
                try:
                    await store.progress(conversation_id, chars.count)
                    warned = False
                except StoreError as exc:
                    if not warned:
                        logger.warning("could not renew a running call's lease in the store: %s", exc)
                        warned = True


async def _guarded(job: Job, secrets: Secrets) -> CallToolResult:
    """The job's result; a failure as a tool error (a bug must not take the server down)."""
    failure: BaseException = INTERNAL_ERROR
    try:
        return await job()
    except* GrokError as group:
        failure = group.exceptions[0]
    except* Exception:
        logger.exception("a call failed unexpectedly")
    return results.error(str(failure), secrets)


@contextmanager
def best_effort(what: str) -> Iterator[list[str]]:
    """Run a store write whose failure must not cost the caller the answer: the failure is logged
    once and reported in the list yielded (empty when the write succeeded)."""
    failures: list[str] = []
    try:
        yield failures
    except StoreError as exc:
        logger.warning("%s failed: %s", what, exc)
        failures.append(str(exc))
