"""The Lambda Managed Instances host under awslambdaric: several invocations at once.

With ``AWS_LAMBDA_MAX_CONCURRENCY`` set, awslambdaric forks one worker process per slot, each
importing the handler; nothing is frozen between invocations and an extension cannot be
registered from several workers. :class:`ManagedInstancesHost` drains each handed-over
invocation in a thread of the worker (``holdfast-drain``) instead, and on SIGTERM (sent to the
worker, or passed on when awslambdaric's parent process dies of it) lets what is in flight
finish within the one shutdown budget, then runs lifespan shutdown.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
from typing import TYPE_CHECKING

from holdfast.hosts import shutdown
from holdfast.hosts.managed import drain_in_background

if TYPE_CHECKING:
    from holdfast.adapter import Adapter
    from holdfast.invocation import Invocation


class ManagedInstancesHost:
    """Lambda Managed Instances under awslambdaric: one forked worker process per slot, no
    freeze, no extension. Handed-over invocations drain in a thread of the worker; SIGTERM
    finishes them (within the shutdown budget) and runs lifespan shutdown."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapters = [adapter]
        self._queue: queue.SimpleQueue[Invocation | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()

    def start(self) -> None:
        shutdown.handle(self.terminate)
        shutdown.watch()
        _term_with_parent()
        threading.Thread(target=self._drain_forever, name="holdfast-drain", daemon=True).start()

    def hand_over(self, invocation: Invocation) -> None:
        if not invocation.idle:
            self._idle.clear()
            self._queue.put(invocation)

    def _drain_forever(self) -> None:
        while True:
            invocation = self._queue.get()
            if invocation is None:
                return
            drain_in_background(invocation, invocation.adapter.drain_timeout(invocation.context))
            if self._queue.empty():
                self._idle.set()

    def terminate(self) -> None:
        """SIGTERM (in the watch thread): the drains in flight get their share of the budget,
        lifespan shutdown the rest; then exit."""
        budget = shutdown.Budget()
        self._idle.wait(budget.for_in_flight())
        shutdown.shut_down(self.adapters, budget)


def _term_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies.

    awslambdaric's multi-concurrent parent only waits for its workers: SIGTERM kills it by its
    default action and would leave the workers to the SIGKILL that follows. Linux only.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
