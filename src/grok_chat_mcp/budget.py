"""Spend budgets: ``GROK_BUDGET=<amount>usd/<hour|day|month>``, counted per owner in the store.

A call is refused before anything is sent once its owner's spend in the current window (UTC
hour, day or month) has reached the cap; a call already sent is never cut, so the spend can pass the
cap by what the calls in flight cost. Spend is counted in ticks of 10^-10 USD, the unit of xAI's
``usage.cost_in_usd_ticks``. docs/tool.md#budgets says what an agent and an operator see.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, cast

import anyio

from grok_chat_mcp.capabilities import USD_PER_TICK
from grok_chat_mcp.store import Store, StoreError

if TYPE_CHECKING:
    from grok_chat_mcp.results import Cost

logger = logging.getLogger(__name__)

VARIABLE = "GROK_BUDGET"
Period = Literal["hour", "day", "month"]
_SETTING = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*usd\s*/\s*(hour|day|month)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """A spend cap per owner and window."""

    usd: float
    period: Period

    @property
    def ticks(self) -> int:
        return round(self.usd / USD_PER_TICK)

    def __str__(self) -> str:
        return f"{usd(self.usd)} per {self.period}"


def parse(text: str) -> Budget:
    """``5usd/day`` -> ``Budget(5.0, "day")``; raises ``ValueError`` with a one-line message."""
    match = _SETTING.fullmatch(text)
    if match is None:
        raise ValueError(f"{VARIABLE}={text!r} is not <amount>usd/<hour|day|month> (for example 5usd/day)")
    return Budget(float(match.group(1)), cast(Period, match.group(2).lower()))


@dataclass(frozen=True)
class Window:
    """One budget window: its name in the store, and when it ends (UTC)."""

    key: str
    reset: datetime


def window(period: Period, now: float) -> Window:
    """The window of ``period`` that contains the moment ``now`` (seconds since the epoch)."""
    at = datetime.fromtimestamp(now, UTC)
    if period == "hour":
        start = at.replace(minute=0, second=0, microsecond=0)
        return Window(f"hour:{start:%Y-%m-%dT%H}", start + timedelta(hours=1))
    if period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(f"day:{start:%Y-%m-%d}", start + timedelta(days=1))
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return Window(f"month:{start:%Y-%m}", following)


def usd(amount: float) -> str:
    """``$0.003776``: dollars to six decimals, trailing zeros dropped (``$5``, ``$0.05``)."""
    return "$" + f"{amount:.6f}".rstrip("0").rstrip(".")


def _resets(reset: datetime, now: float) -> str:
    """``2026-12-08T00:00:00Z (in 3 h 39 min)``."""
    seconds = max(0, round(reset.timestamp() - now))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    if not days:
        parts.append(f"{minutes} min" if hours or minutes else f"{seconds} s")
    return f"{reset:%Y-%m-%dT%H:%M:%SZ} (in {' '.join(parts)})"


def _why(exc: StoreError) -> str:
    """What failed in the store, without the conversation-specific advice of its message."""
    return type(exc.__cause__).__name__ if exc.__cause__ is not None else str(exc)


def wall_clock() -> float:
    """Now, in seconds since the epoch: what windows are cut from (tests replace it)."""
    return time.time()


class Budgets:
    """The budget of one server process: checks before a call, records after it.

    ``problem``: why the setting could not be read; every call is then refused, so a mistyped cap
    never means no cap.
    """

    def __init__(
        self,
        budget: Budget | None,
        store: Store | None,
        clock: Callable[[], float] | None = None,
        *,
        problem: str | None = None,
    ) -> None:
        clock = clock or wall_clock
        if (budget is not None or problem) and store is None:  # GROK_STORE=off: counted in this process
            from grok_chat_mcp.store.memory import MemoryStore

            store = MemoryStore(clock=clock)
        self.budget = budget
        self._store = store
        self._clock = clock
        self._problem = problem

    @classmethod
    def from_setting(
        cls, setting: str | None, store: Store | None, clock: Callable[[], float] | None = None
    ) -> Budgets:
        """The budget ``GROK_BUDGET`` names (None: no budget)."""
        if setting is None:
            return cls(None, store, clock)
        try:
            return cls(parse(setting), store, clock)
        except ValueError as exc:
            return cls(None, store, clock, problem=str(exc))

    async def refusal(self, owner: str) -> str | None:
        """Why a call of ``owner`` must not be sent, or None if it may go."""
        if self._problem:
            return (
                f"Budget setting error: {self._problem}. Nothing was sent: no call goes out until "
                "whoever runs this server fixes it."
            )
        if self.budget is None or self._store is None:
            return None
        now = self._clock()
        current = window(self.budget.period, now)
        try:
            spent = await self._store.spent(owner, current.key)
        except StoreError as exc:
            return (
                f"Budget check failed: the store that counts spend did not answer ({_why(exc)}). Nothing was "
                "sent; try again in a minute."
            )
        if spent < self.budget.ticks:
            return None
        return (
            f"Budget reached: this server allows {self.budget} per token ({VARIABLE}="
            f"{self.budget.usd:g}usd/{self.budget.period}), and {usd(spent * USD_PER_TICK)} has been spent "
            f"in the current {self.budget.period}. Nothing was sent. The budget resets at "
            f"{_resets(current.reset, now)}: do not retry before then, or ask whoever runs this server "
            f"to raise {VARIABLE}."
        )

    async def record(self, owner: str, cost: Cost | None) -> list[str]:
        """Count a call's cost for ``owner``; the note saying what is left (best effort)."""
        if self.budget is None or self._store is None:
            return []
        now = self._clock()
        current = window(self.budget.period, now)
        try:
            with anyio.CancelScope(shield=True):  # the call is paid: counted even if its caller left
                if cost is None or cost.ticks <= 0:
                    spent = await self._store.spent(owner, current.key)
                else:
                    spent = await self._store.spend(owner, current.key, cost.ticks, current.reset.timestamp())
        except StoreError as exc:
            logger.warning("the call's cost could not be counted against the budget: %s", _why(exc))
            return [f"budget: this call's cost could not be counted ({_why(exc)})."]
        return [self._left(spent, current, now)]

    async def status(self, owner: str) -> str:
        """The budget and what is left of it, for ``--check``."""
        if self._problem:
            return f"{self._problem}: every call is refused until it is fixed"
        if self.budget is None or self._store is None:
            return "none"
        now = self._clock()
        current = window(self.budget.period, now)
        try:
            spent = await self._store.spent(owner, current.key)
        except StoreError as exc:
            return f"{self.budget}; the spend could not be read ({_why(exc)})"
        return self._left(spent, current, now).removeprefix("budget: ").removesuffix(".")

    def _left(self, spent: int, current: Window, now: float) -> str:
        assert self.budget is not None
        if spent >= self.budget.ticks:
            return (
                f"budget: {self.budget} reached ({usd(spent * USD_PER_TICK)} spent); further calls are "
                f"refused until {_resets(current.reset, now)}."
            )
        left = (self.budget.ticks - spent) * USD_PER_TICK
        return f"budget: {usd(left)} of {self.budget} left; resets {_resets(current.reset, now)}."
