"""Up to N execution environments: created on demand, reused warm; when all are busy a
synchronous request is refused (429, as Lambda throttles) and an asynchronous one waits."""

from __future__ import annotations

import asyncio
from collections import deque

from .attempt import Attempt
from .config import EmulatorConfig
from .environment import Environment
from .invoke import InvokeRequest, RuntimeResponse, TooManyRequests
from .report import Journal


class Pool:
    """Hands each invocation to an idle environment, preferring one that is already warm.

    An environment is busy from the dispatch until its freeze (or reset), not merely until the
    response: the work after the response still occupies it, as it does on Lambda. A request
    that finds every environment busy gets a new one, up to `concurrency`; past that it waits
    for the first environment released, or with `throttle` a synchronous request raises
    `TooManyRequests`, as Lambda's Invoke API answers 429 (asynchronous ones, which Lambda
    queues, still wait).
    """

    def __init__(self, config: EmulatorConfig, journal: Journal) -> None:
        self._config = config
        self._journal = journal
        self._environments: list[Environment] = []
        # An environment with a free slot appears here once per free slot (Managed Instances
        # environments have `max_concurrency` slots, the others one).
        self._idle: list[Environment] = []
        self._waiters: deque[tuple[InvokeRequest, asyncio.Future[Attempt]]] = deque()
        # Managed Instances: slots of an environment still starting, promised to whoever waits.
        self._promised = 0
        self._in_flight: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def environments(self) -> list[Environment]:
        """Every environment created so far."""
        return list(self._environments)

    async def submit(self, request: InvokeRequest, *, queue: bool = False) -> Attempt:
        """Start `request` in an environment; when all are busy and no other may start, wait
        for the first one released, or (`config.throttle`, unless `queue`) raise
        `TooManyRequests`."""
        if self._closed:
            raise RuntimeError("the emulator is shut down")
        if self._idle:
            warm = [e for e in self._idle if e.warm]
            environment = (warm or self._idle)[-1]
            self._idle.remove(environment)
            return self._start(environment, request)
        if len(self._environments) < self._config.concurrency:
            environment = Environment(len(self._environments) + 1, self._config, self._journal)
            self._environments.append(environment)
            extra_slots = (self._config.max_concurrency or 1) - 1
            self._promised += extra_slots
            try:
                await environment.start()
            finally:
                self._promised -= extra_slots
            attempt = self._start(environment, request)
            # Its other slots are free once its Runtime API listens: requests that queued
            # meanwhile take them.
            for _ in range(extra_slots):
                self._offer(environment)
            return attempt
        if self._config.throttle and not queue and self._promised <= len(self._waiters):
            raise TooManyRequests(self._config.concurrency)
        # The request starts in the first environment released, the moment it is.
        waiter: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
        self._waiters.append((request, waiter))
        return await waiter

    async def prepare(self) -> None:
        """SnapStart: create the first environment and take its snapshot now (in the
        background), as publishing a version does, rather than on the first invocation."""
        if self._environments or not self._config.snap_start:
            return
        environment = Environment(1, self._config, self._journal)
        self._environments.append(environment)
        await environment.start()
        environment.prepare()
        self._idle.append(environment)

    async def initialize(self) -> RuntimeResponse | None:
        """Init an environment now and wait for it (see `Environment.initialize`): the first
        invocation then finds it warm. None once it is, else the init's failure. With SnapStart
        it is the environment `prepare` started; a request that arrived first (or a full pool)
        leaves nothing to do."""
        if self._config.snap_start:
            await self.prepare()
            return await self._environments[0].initialize()
        if self._environments:
            return None
        environment = Environment(1, self._config, self._journal)
        self._environments.append(environment)
        await environment.start()
        try:
            return await environment.initialize()
        finally:  # a request that waited for it meanwhile takes it now
            for _ in range(self._config.max_concurrency or 1):
                self._offer(environment)

    async def wait_idle(self) -> None:
        """Return once every invocation submitted so far has ended (frozen or reset)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def close(self) -> None:
        """Shut every environment down (concurrently, each with its own shutdown window)."""
        self._closed = True
        for _, waiter in self._waiters:
            waiter.cancel()
        await asyncio.gather(*(e.close() for e in self._environments))

    def _start(self, environment: Environment, request: InvokeRequest) -> Attempt:
        attempt = environment.submit(request, on_finished=self._release)
        self._in_flight.add(attempt.finished)
        return attempt

    def _release(self, environment: Environment, finished: asyncio.Future[None]) -> None:
        # Called as the invocation ends: the next request waiting starts at once, in this
        # same step, rather than after its caller's task has been woken to start it.
        self._in_flight.discard(finished)
        self._offer(environment)

    def _offer(self, environment: Environment) -> None:
        """A slot of `environment` is free: the first request waiting takes it, else it idles."""
        while self._waiters:
            request, waiter = self._waiters.popleft()
            if waiter.done():  # a caller that gave up while waiting is skipped
                continue
            try:
                waiter.set_result(self._start(environment, request))
            except Exception as exc:  # the caller hears of it; the environment stays usable
                waiter.set_exception(exc)
                break
            return
        self._idle.append(environment)
