"""Cron schedules: parsing, matching, the next fire time, and the local scheduler.

Standard five fields (minute hour day-of-month month day-of-week) in UTC, like EventBridge:
`*`, `*/n`, `a-b`, `a-b/n`, `a/n`, lists, month and weekday names, `7` for Sunday, and the
`@hourly` family. When both day fields are restricted a day matching either one fires, as in
Vixie cron.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .queue import TaskHandle, TaskQueue
    from .task import Task

logger = logging.getLogger("holdfast.tasks")

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# (low, high, names) per field, in expression order.
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (0, 7, _WEEKDAYS),
)
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower()) if names else None
    if value is None:
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"bad cron value {text!r}")
        value = int(text)
    if not low <= value <= high:
        raise ValueError(f"cron value {value} outside {low}-{high}")
    return value


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = _value(step_text, 1, high - low + 1, {}) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = _value(first_text, low, high, names), _value(last_text, low, high, names)
        else:
            first = _value(span, low, high, names)
            last = high if step_text else first  # "a/n" means a, a+n, ... up to the maximum
        if first > last:
            raise ValueError(f"bad cron range {span!r}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _utc_minute(moment: datetime) -> datetime:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(second=0, microsecond=0)


class Cron:
    """A parsed cron expression; naive datetimes are taken as UTC."""

    __slots__ = (
        "_any_dom",
        "_any_dow",
        "_days",
        "_hours",
        "_minutes",
        "_months",
        "_weekdays",
        "expression",
    )

    def __init__(self, expression: str) -> None:
        self.expression = expression
        text = _MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"cron needs 5 fields (minute hour day month weekday): {expression!r}")
        fields = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        self._minutes, self._hours, self._days, self._months, weekdays = fields
        self._weekdays = frozenset(day % 7 for day in weekdays)
        self._any_dom, self._any_dow = parts[2].startswith("*"), parts[4].startswith("*")
        if self._any_dow and not any(min(self._days) <= _MAX_DAYS[m - 1] for m in self._months):
            raise ValueError(f"cron never fires: {expression!r}")

    def __repr__(self) -> str:
        return f"Cron({self.expression!r})"

    def _day_matches(self, moment: datetime) -> bool:
        in_dom = moment.day in self._days
        in_dow = (moment.weekday() + 1) % 7 in self._weekdays
        if not self._any_dom and not self._any_dow:
            return in_dom or in_dow
        return in_dom and in_dow

    def matches(self, moment: datetime) -> bool:
        """True when the schedule fires in `moment`'s minute."""
        moment = _utc_minute(moment)
        return (
            moment.minute in self._minutes
            and moment.hour in self._hours
            and moment.month in self._months
            and self._day_matches(moment)
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (UTC, on a whole minute)."""
        t = _utc_minute(moment) + timedelta(minutes=1)
        while True:
            # Skip whole months, days and hours that cannot match before walking minutes.
            if t.month not in self._months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in self._hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
            elif t.minute not in self._minutes:
                t += timedelta(minutes=1)
            else:
                return t


@dataclass(frozen=True, slots=True)
class Periodic:
    """A task registered with `@queue.periodic` and its schedule."""

    task: Task[Any, Any]
    cron: Cron

    @property
    def name(self) -> str:
        return self.task.name


async def fire(queue: TaskQueue, periodic: Periodic, slot: datetime) -> TaskHandle | None:
    """Queue one run of `periodic` for `slot`, unless some scheduler already did."""
    slot = _utc_minute(slot)
    if not await queue.async_backend.claim_slot(periodic.name, slot.timestamp()):
        return None
    logger.info("periodic task %s queued for %s", periodic.name, slot.isoformat())
    return await queue.enqueue(periodic.name)


async def fire_due(queue: TaskQueue, moment: datetime) -> list[TaskHandle]:
    """Queue every periodic task of `queue` whose schedule matches `moment`'s minute."""
    handles = []
    for periodic in queue.periodic_tasks:
        if periodic.cron.matches(moment):
            handle = await fire(queue, periodic, moment)
            if handle is not None:
                handles.append(handle)
    return handles


class Scheduler:
    """Queues a queue's periodic tasks on time; for local workers (AWS uses EventBridge).

    Several schedulers (one per worker process) may run: the backend's slot claim lets only
    one of them queue each run. Slots missed while nothing ran are not caught up.
    """

    def __init__(
        self,
        queue: TaskQueue,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.queue = queue
        self._clock = clock
        self._sleep = sleep

    async def run(self) -> None:
        """Run until cancelled."""
        if not self.queue.periodic_tasks:
            return
        after = self._clock()
        while True:
            slot = min(p.cron.next_after(after) for p in self.queue.periodic_tasks)
            await self._sleep_until(slot)
            try:
                await fire_due(self.queue, slot)
            except Exception:
                logger.exception("scheduler could not queue the runs of %s", slot.isoformat())
            now = self._clock()
            # After a suspension, resume from now instead of replaying every missed slot.
            after = slot if now - slot < timedelta(minutes=1) else now

    async def _sleep_until(self, moment: datetime) -> None:
        while (remaining := (moment - self._clock()).total_seconds()) > 0:
            await self._sleep(min(remaining, 60.0))
