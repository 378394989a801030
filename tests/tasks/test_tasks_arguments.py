"""Hostile task arguments: however deep the nesting, defer answers InvalidArguments or stores
the call, never a RecursionError or a stray ValueError (issue 19, item 7)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holdfast.tasks import InvalidArguments, TaskQueue, TaskState
from holdfast.tasks.codec import MAX_DEPTH


def nest(depth: int, kinds: list[bool], leaf: object = 1) -> object:
    """`leaf` inside `depth` lists and objects (alternating as `kinds` says)."""
    value = leaf
    for level in range(depth):
        value = [value] if kinds[level % len(kinds)] else {"k": value}
    return value


def make_queue(url: str) -> TaskQueue:
    queue = TaskQueue(url, name="deep")

    @queue.task(name="plain")
    def plain(value):
        return None

    @queue.task(name="typed")
    def typed(value: list | dict | int) -> None:
        return None

    @queue.task(name="spread")
    def spread(*values, **named):
        return None

    return queue


def defer_each_way(queue: TaskQueue, value: object) -> list[str]:
    """Defer `value` every way a caller can; the task ids of the calls that were stored."""
    calls = [
        lambda: queue.tasks["plain"].defer_sync(value),
        lambda: queue.tasks["typed"].defer_sync(value),
        lambda: queue.tasks["spread"].defer_sync(value, named=value),
        lambda: queue.enqueue_sync("unregistered", [value], {"named": value}),
        lambda: asyncio.run(queue.tasks["plain"].defer(value)),
    ]
    stored = []
    for call in calls:
        try:
            stored.append(call().id)
        except InvalidArguments as exc:
            assert "nested deeper than" in str(exc) or "cannot be encoded" in str(exc)
    return stored


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    depth=st.one_of(
        st.integers(0, MAX_DEPTH + 5), st.integers(MAX_DEPTH, 1200), st.integers(1200, 60_000)
    ),
    kinds=st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_any_nesting_is_stored_or_refused_with_invalid_arguments(sqlite_url, depth, kinds):
    queue = make_queue(sqlite_url)
    try:
        stored = defer_each_way(queue, nest(depth, kinds))
        if depth <= MAX_DEPTH - 1:  # "spread" wraps nothing: every way stores it
            assert len(stored) == 5
        if depth > MAX_DEPTH:
            assert stored == []
        for task_id in stored:
            assert queue.status_sync(task_id).state is TaskState.QUEUED
    finally:
        queue.close()


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1])
def test_the_depth_limit_is_exact_and_named(sqlite_url, depth):
    queue = make_queue(sqlite_url)
    value = nest(depth, [True, False])
    if depth <= MAX_DEPTH:
        assert queue.tasks["plain"].defer_sync(value).created
        assert queue.enqueue_sync("unregistered", [value]).created
        return
    with pytest.raises(
        InvalidArguments, match=f"argument 'value' is nested deeper than {MAX_DEPTH}"
    ):
        queue.tasks["plain"].defer_sync(value)
    with pytest.raises(InvalidArguments, match=f"args is nested deeper than {MAX_DEPTH}"):
        queue.enqueue_sync("unregistered", [value])


def test_a_deep_argument_that_was_stored_runs(sqlite_url):
    queue = make_queue(sqlite_url)
    handle = queue.tasks["plain"].defer_sync(nest(MAX_DEPTH, [True]))
    asyncio.run(queue.worker().run(burst=True))
    assert handle.status_sync().state is TaskState.SUCCEEDED
