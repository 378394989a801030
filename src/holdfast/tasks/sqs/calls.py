"""Independent AWS calls made at once, each guarded so one failure spares the others."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger("holdfast.tasks")


class ParallelCalls:
    """A small thread pool, started on first need (boto3 clients are thread-safe)."""

    def __init__(self, threads: int = 10) -> None:
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, calls: Sequence[Callable[[], Any]], default: Any = None) -> list[Any]:
        """Each call's result, or `default` (logged) for a call that raised."""

        def guarded(call: Callable[[], Any]) -> Any:
            try:
                return call()
            except Exception:
                # Left in flight: the message comes back and the task runs again.
                logger.exception("task backend call failed")
                return default

        if len(calls) <= 1:
            return [guarded(call) for call in calls]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="holdfast-sqs")
            pool = self._pool
        return list(pool.map(guarded, calls))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
