"""The local worker: claims due tasks, runs them concurrently, records their settlements.

Async tasks run as coroutines on the worker's event loop, sync ones on its threads. Claims
use short adaptive polling, and a producer in the same process wakes the worker at once. On
SQLite the settlements of finished tasks are written in the same transaction that claims the
next ones (at concurrency 1 an untimed sync task does that itself, from its thread, and runs
the next such task there: no thread hop per task); remote backends settle on a loop of their
own. The leases of running tasks are
renewed every third of the visibility timeout. `stop()` lets running tasks finish;
`stop(force=True)` abandons them, and their leases lapse so another worker runs them again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from .executor import Call, LeaseKeeper, prepare, run_here, start
from .models import Delivery, Settlement
from .schedule import Scheduler
from .threads import ThreadRunner

if TYPE_CHECKING:
    from .queue import TaskQueue

logger = logging.getLogger("holdfast.tasks")

_MIN_POLL = 0.001
_ERROR_PAUSE = 0.5
_T = TypeVar("_T")


class Worker:
    """Runs a queue's tasks in this process.

    `concurrency` bounds the tasks running at once (sync ones each take a thread);
    `poll_interval` is the longest idle wait between two looks at the backend; `scheduler`
    also queues the periodic tasks on time.
    """

    def __init__(
        self,
        queue: TaskQueue,
        *,
        concurrency: int = 10,
        poll_interval: float = 0.005,
        scheduler: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.queue = queue
        self.concurrency = concurrency
        self.poll_interval = max(poll_interval, _MIN_POLL)
        self.scheduler = scheduler
        self._active = 0  # deliveries started and not finished
        self._coroutines: set[asyncio.Task[None]] = set()
        self._settlements: list[Settlement] = []
        self._stopping = self._forced = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._settle_wake = asyncio.Event()
        self._settle_lock = asyncio.Lock()
        self._backend = queue.async_backend
        self._keeper = LeaseKeeper(self._backend, queue.visibility_timeout)
        self._threads = ThreadRunner()  # a fresh pool per run()
        # Local backends record settlements and claim more in one transaction; remote ones
        # settle on their own loop, so that a long poll never holds results back.
        self._local = not queue.backend.blocking
        # One slot: its sync tasks chain on their thread. Several: the loop settles many at
        # once in one transaction, cheaper than each thread committing its own.
        self._chain_sync = self._local and concurrency == 1

    # -- control ----------------------------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Stop claiming; let running tasks finish (or abandon them with `force`)."""
        self._stopping = True
        if force:
            self._forced = True
            for coroutine in self._coroutines:
                coroutine.cancel()
            self._idle.set()  # threads cannot be cancelled: stop waiting for them
        self._notify()

    def _notify(self) -> None:
        """Wake the claim loop; safe from any thread."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or wake.done():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set_result(None)
        else:
            loop.call_soon_threadsafe(_resolve, wake)

    # -- running ----------------------------------------------------------------------------

    async def run(self, *, burst: bool = False) -> None:
        """Work until `stop()`; with `burst`, also return once nothing is due or running."""
        self._loop = asyncio.get_running_loop()
        self._stopping = self._forced = False
        self._threads = ThreadRunner()
        unsubscribe = self.queue.backend.subscribe(self._notify)
        helpers = [
            asyncio.create_task(self._keeper.run()),
            asyncio.create_task(self._settle_loop()),
        ]
        if self.scheduler and not burst and self.queue.periodic_tasks:
            helpers.append(asyncio.create_task(Scheduler(self.queue).run()))
        try:
            await self._claim_loop(burst)
        finally:
            unsubscribe()
            await self._drain()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._flush()
            self._threads.shutdown()

    async def _claim_loop(self, burst: bool) -> None:
        queue, delay = self.queue, _MIN_POLL
        maintain_every = min(queue.visibility_timeout / 4, 1.0)
        next_maintenance = 0.0
        while not self._stopping:
            if time.monotonic() >= next_maintenance:
                await self._guard(self._backend.maintain(), None)
                next_maintenance = time.monotonic() + maintain_every
            free = self.concurrency - self._active
            claimed: list[Delivery] = []
            if free > 0:
                found = await self._claim(free)
                if found is None:  # the backend failed (and _guard waited): try again
                    continue
                claimed = found
                for delivery in claimed:
                    self._start(delivery)
            if claimed:
                delay = _MIN_POLL
                continue
            if burst and not self._active:
                if not self._settlements and not self._settle_lock.locked():
                    return
                await self._flush()  # a retry may become due once it is recorded
                continue
            # Full: a finishing task wakes the loop; the timeout only brings maintenance.
            await self._sleep(delay if free > 0 else maintain_every)
            delay = min(delay * 2, self.poll_interval)

    async def _claim(self, limit: int) -> list[Delivery] | None:
        lease = self.queue.visibility_timeout
        if not self._local:
            return await self._guard(self._backend.claim(limit, lease), None)
        batch, self._settlements = self._settlements, []
        found = await self._guard(self._backend.settle_and_claim(batch, limit, lease), None)
        if found is None:
            self._settlements[:0] = batch  # rolled back: record them next time
        return found

    async def _guard(self, call: Awaitable[_T], default: _T) -> _T:
        # A backend hiccup (locked database, throttled API) must not kill the worker.
        try:
            return await call
        except Exception:
            logger.exception("task backend call failed; retrying")
            await asyncio.sleep(_ERROR_PAUSE)
            return default

    async def _sleep(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_later(timeout, _resolve, wake)
        try:
            await wake
        finally:
            self._wake = None
            timer.cancel()

    # -- one delivery -----------------------------------------------------------------------

    def _start(self, delivery: Delivery) -> None:
        self._active += 1
        self._idle.clear()
        plan = prepare(self.queue.tasks, delivery)
        if isinstance(plan, Settlement):
            self._finish(delivery, plan)
            return
        self._keeper.add(delivery)
        if self._chain_sync and _chainable(plan):
            self._threads.submit(self._chain, (plan, delivery), {}, self._chain_ended)
            return
        coroutine = start(plan, delivery, self._threads, functools.partial(self._finish, delivery))
        if coroutine is not None:
            self._coroutines.add(coroutine)
            coroutine.add_done_callback(self._coroutines.discard)

    def _chain(self, call: Call, delivery: Delivery) -> _ChainEnd:
        """On a task thread: run untimed sync tasks back to back, each settled and the next
        claimed in one transaction from this thread, as long as the next is of the same kind.

        The slot stays taken throughout, so concurrency holds; the event loop hears only of
        the chain's end. Each settlement is recorded (and the next attempt counted) before the
        next task runs, exactly as on the loop: a crash loses nothing more.
        """
        backend, lease = self.queue.backend, self.queue.visibility_timeout
        while True:
            settlement = run_here(call, delivery)
            if self._stopping:
                return _ChainEnd(delivery, settlement)
            try:
                claimed = backend.settle_and_claim([settlement], 1, lease)
            except Exception:
                logger.exception("task backend call failed; retrying")
                return _ChainEnd(delivery, settlement)  # the loop records it
            self._keeper.discard(delivery)
            plan = prepare(self.queue.tasks, claimed[0]) if claimed else None
            if not isinstance(plan, Call) or not _chainable(plan):
                return _ChainEnd(delivery, None, claimed)
            call, delivery = plan, claimed[0]
            self._keeper.add(delivery)

    def _chain_ended(self, end: _ChainEnd | None, error: BaseException | None) -> None:
        if end is None:  # a bug of the chain itself: the lease lapses and the task runs again
            logger.error("a task thread failed", exc_info=error)
            return
        self._finish(end.delivery, end.settlement)
        for delivery in end.claimed:
            self._start(delivery)

    def _finish(self, delivery: Delivery, settlement: Settlement | None) -> None:
        """`delivery` has ended; `settlement` is to be recorded (None: recorded already, or
        abandoned)."""
        self._keeper.discard(delivery)
        self._active -= 1
        if settlement is not None:
            self._settlements.append(settlement)
            if not self._local or self._stopping:
                self._settle_wake.set()
        if not self._active:
            self._idle.set()
        self._notify()

    # -- settling ---------------------------------------------------------------------------

    async def _settle_loop(self) -> None:
        while True:
            await self._settle_wake.wait()
            self._settle_wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        async with self._settle_lock:
            while self._settlements:
                # Everything that finished since the last write goes in one transaction.
                batch, self._settlements = self._settlements, []
                try:
                    await self._backend.settle(batch)
                except Exception:
                    # Not recorded: the leases lapse and the tasks run again (at least once).
                    logger.exception("could not record %d settlement(s)", len(batch))

    async def _drain(self) -> None:
        if self._active and not self._forced:
            await self._idle.wait()
        await asyncio.gather(*self._coroutines, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _ChainEnd:
    """How a chain of sync tasks on a thread ended: its last delivery (with the settlement
    still to record, or None), and deliveries claimed that the loop must start."""

    delivery: Delivery
    settlement: Settlement | None
    claimed: list[Delivery] = field(default_factory=list)


def _chainable(call: Call) -> bool:
    # A timed task needs the loop's timer; an async one the loop itself.
    return not call.task.is_async and call.task.timeout is None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
