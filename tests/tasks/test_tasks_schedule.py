"""Cron parsing and matching, and the local scheduler."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holdfast.tasks import Cron, TaskQueue
from holdfast.tasks.schedule import Scheduler, fire, fire_due


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", "2024-01-01T00:00:30", "2024-01-01T00:01"),
        ("*/15 * * * *", "2024-01-01T00:15", "2024-01-01T00:30"),
        ("5 4 * * *", "2024-01-01T04:05", "2024-01-02T04:05"),
        ("0 9-17/4 * * mon-fri", "2024-01-05T17:00", "2024-01-08T09:00"),  # Fri -> Mon
        ("0 0 1 * 1", "2024-01-01T00:00", "2024-01-08T00:00"),  # 1st OR Monday
        ("0 0 29 2 *", "2024-03-01T00:00", "2028-02-29T00:00"),
        ("30 23 31 * *", "2024-04-01T00:00", "2024-05-31T23:30"),
        ("0 12 * JAN,jul sun", "2024-02-01T00:00", "2024-07-07T12:00"),
        ("0 0 * * 7", "2024-01-01T00:00", "2024-01-07T00:00"),  # 7 is Sunday too
        ("10/20 * * * *", "2024-01-01T00:31", "2024-01-01T00:50"),
        ("@hourly", "2024-01-01T10:00", "2024-01-01T11:00"),
        ("@weekly", "2024-01-01T00:00", "2024-01-07T00:00"),
        ("@yearly", "2024-06-01T00:00", "2025-01-01T00:00"),
        ("0 0 1,15 * *", "2024-12-15T00:00", "2025-01-01T00:00"),
    ],
)
def test_next_after(expression, after, expected):
    cron = Cron(expression)
    result = cron.next_after(at(after))
    assert result == at(expected)
    assert cron.matches(result)


@pytest.mark.parametrize(
    "expression",
    [
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "a * * * *",
        "* * * foo *",
        "0 0 30 2 *",  # never fires
    ],
)
def test_invalid_expressions(expression):
    with pytest.raises(ValueError):
        Cron(expression)


def test_a_digit_int_cannot_read_is_a_bad_value():
    with pytest.raises(ValueError, match="bad cron value"):
        Cron("² * * * *")  # "²".isdigit() is true


def test_naive_times_are_utc_and_aware_ones_are_converted():
    cron = Cron("0 12 * * *")
    assert cron.matches(datetime(2024, 1, 1, 12, 0, 59))
    plus_two = datetime.fromisoformat("2024-01-01T14:00:00+02:00")
    assert cron.matches(plus_two)
    assert cron.next_after(plus_two) == at("2024-01-02T12:00")


field = st.one_of(
    st.just("*"),
    st.integers(2, 20).map(lambda step: f"*/{step}"),
    st.lists(st.integers(0, 59), min_size=1, max_size=4).map(lambda xs: ",".join(map(str, xs))),
)
hours = st.one_of(
    st.just("*"),
    st.tuples(st.integers(0, 23), st.integers(0, 23)).map(lambda t: f"{min(t)}-{max(t)}"),
)
weekdays = st.one_of(
    st.just("*"),
    st.sets(st.integers(0, 6), min_size=1).map(lambda xs: ",".join(map(str, sorted(xs)))),
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1))


@settings(max_examples=60, deadline=None)
@given(minute=field, hour=hours, weekday=weekdays, start=moments)
def test_next_after_is_the_first_matching_minute(minute, hour, weekday, start):
    cron = Cron(f"{minute} {hour} * * {weekday}")
    found = cron.next_after(start)
    assert found > start.replace(tzinfo=UTC) and found.second == 0 and cron.matches(found)
    # Brute force: no minute in between matches (at most a week apart with these fields).
    moment = start.replace(tzinfo=UTC, second=0, microsecond=0) + timedelta(minutes=1)
    while moment < found:
        assert not cron.matches(moment)
        moment += timedelta(minutes=1)


@settings(max_examples=80, deadline=None)
@given(
    day=st.sets(st.integers(1, 31), min_size=1, max_size=3),
    month=st.sets(st.integers(1, 12), min_size=1, max_size=3),
    weekday=weekdays,
    start=moments,
)
def test_next_after_with_day_and_month_fields(day, month, weekday, start):
    expression = f"0 0 {','.join(map(str, day))} {','.join(map(str, month))} {weekday}"
    try:
        cron = Cron(expression)
    except ValueError:
        return  # e.g. the 31st of February only
    found = cron.next_after(start)
    assert found > start.replace(tzinfo=UTC) and cron.matches(found)
    # Every day between start and found fails to match at midnight.
    day_start = start.replace(tzinfo=UTC, hour=0, minute=0, second=0, microsecond=0)
    probe = day_start + timedelta(days=1)
    while probe < found:
        assert not cron.matches(probe)
        probe += timedelta(days=1)


def test_periodic_tasks_take_no_arguments():
    queue = TaskQueue("memory://")
    with pytest.raises(Exception, match="missing"):
        queue.periodic("* * * * *")(lambda needed: None)
    with pytest.raises(ValueError):
        queue.periodic("not cron")(lambda: None)


def test_each_slot_runs_once_across_schedulers(sqlite_url):
    # Two processes' queues on one database: only one of them queues each slot.
    queues = [TaskQueue(sqlite_url, name="shared", register=False) for _ in range(2)]
    for queue in queues:
        queue.periodic("*/10 * * * *", name="report")(lambda: "ok")
    slot = at("2024-01-01T10:20")

    async def main():
        first = [await fire_due(q, slot) for q in queues]
        again = await fire(queues[0], queues[0].periodic_tasks[0], slot + timedelta(seconds=30))
        later = await fire_due(queues[1], slot + timedelta(minutes=10))
        return first, again, later

    first, again, later = asyncio.run(main())
    assert [len(handles) for handles in first] == [1, 0]
    assert again is None
    assert len(later) == 1
    assert len(queues[0].list_sync(task="report")) == 2


def test_scheduler_queues_runs_on_time(any_url):
    queue = TaskQueue(any_url)
    queue.periodic("*/2 * * * *", name="every-two")(lambda: "tick")
    queue.periodic("1 * * * *", name="at-one")(lambda: "one")
    clock = [at("2024-01-01T00:00:30")]
    sleeps = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += timedelta(seconds=seconds)
        if clock[0] >= at("2024-01-01T00:06:10"):
            raise asyncio.CancelledError

    scheduler = Scheduler(queue, clock=lambda: clock[0], sleep=fake_sleep)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scheduler.run())
    assert [s.task for s in reversed(queue.list_sync())] == [
        "at-one",  # 00:01
        "every-two",  # 00:02
        "every-two",  # 00:04
        "every-two",  # 00:06
    ]
    assert sleeps[:2] == [30, 60]  # from 00:00:30 to 00:01, then to 00:02


def test_worker_runs_its_scheduler(any_url):
    queue = TaskQueue(any_url)
    queue.periodic("* * * * *", name="minutely")(lambda: None)

    async def main():
        worker = queue.worker()
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.05)
        started = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Scheduler.run"]
        worker.stop()
        await running
        return started

    assert len(asyncio.run(main())) == 1
