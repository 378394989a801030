"""Up to N execution environments: created on demand, reused warm, waited for when all are busy."""

from __future__ import annotations

import asyncio
from collections import deque

from .config import EmulatorConfig
from .environment import Environment
from .invocation import Invocation, InvokeRequest
from .report import Journal


class Pool:
    """Hands each invocation to an idle environment, preferring one that is already warm.

    An environment is busy from the dispatch until its freeze (or reset), not merely until the
    response: the work after the response still occupies it, as it does on Lambda.
    """

    def __init__(self, config: EmulatorConfig, journal: Journal) -> None:
        self._config = config
        self._journal = journal
        self._environments: list[Environment] = []
        self._idle: list[Environment] = []
        self._waiters: deque[asyncio.Future[Environment]] = deque()
        self._in_flight: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def environments(self) -> list[Environment]:
        """Every environment created so far."""
        return list(self._environments)

    async def submit(self, request: InvokeRequest) -> Invocation:
        """Start `request` in an environment (waiting for one if all are busy)."""
        environment = await self._acquire()
        invocation = environment.submit(request)
        self._in_flight.add(invocation.finished)
        invocation.finished.add_done_callback(lambda done: self._release(environment, done))
        return invocation

    async def wait_idle(self) -> None:
        """Return once every invocation submitted so far has ended (frozen or reset)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def close(self) -> None:
        """Shut every environment down (concurrently, each with its own shutdown window)."""
        self._closed = True
        for waiter in self._waiters:
            waiter.cancel()
        await asyncio.gather(*(e.close() for e in self._environments))

    async def _acquire(self) -> Environment:
        if self._closed:
            raise RuntimeError("the emulator is shut down")
        if self._idle:
            warm = [e for e in self._idle if e.warm]
            environment = (warm or self._idle)[-1]
            self._idle.remove(environment)
            return environment
        if len(self._environments) < self._config.concurrency:
            environment = Environment(len(self._environments) + 1, self._config, self._journal)
            self._environments.append(environment)
            await environment.start()
            return environment
        waiter: asyncio.Future[Environment] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Handed an environment just as the caller gave up: pass it on, do not lose it.
            if waiter.done() and not waiter.cancelled():
                self._hand_over(waiter.result())
            raise

    def _release(self, environment: Environment, finished: asyncio.Future[None]) -> None:
        self._in_flight.discard(finished)
        self._hand_over(environment)

    def _hand_over(self, environment: Environment) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(environment)
                return
        self._idle.append(environment)
