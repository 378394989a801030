"""SnapStart: the snapshot/restore handshake and ``snapshot_restore_py``'s hooks around it.

With ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` Lambda snapshots the environment while the
runtime waits in ``GET /runtime/restore/next``. Before it, the before-snapshot hooks run (last
registered first); after it, the after-restore hooks (first registered first). Failures are
reported as AWS's Python runtime reports them and end the process: ``Runtime.BeforeSnapshotError``
to ``/init/error`` (exit 64), ``Runtime.AfterRestoreError`` to ``/restore/error`` (exit 65).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from holdfast.runtime.client import RuntimeClient
from holdfast.runtime.report import ErrorReport

logger = logging.getLogger("holdfast")

BEFORE_SNAPSHOT_EXIT = 64
AFTER_RESTORE_EXIT = 65

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


async def snapshot_and_restore(client: RuntimeClient) -> int:
    """Run the handshake; 0 when the runtime may go on to ``/next``, else the exit status."""
    before, after = _registered_hooks()
    try:
        # Last registered first, and consumed: a hook never runs twice.
        while before:
            await _call(before.pop())
        await client.restore_next()
    except Exception as exc:
        await _report(client.init_error, exc, "Runtime.BeforeSnapshotError")
        return BEFORE_SNAPSHOT_EXIT
    try:
        for hook in after:
            await _call(hook)
    except Exception as exc:
        await _report(client.restore_error, exc, "Runtime.AfterRestoreError")
        return AFTER_RESTORE_EXIT
    return 0


def _registered_hooks() -> tuple[list[Hook], list[Hook]]:
    try:
        import snapshot_restore_py as hooks  # type: ignore[import-untyped]
    except ImportError:
        return [], []  # nobody can have registered any
    before: list[Hook] = hooks.get_before_snapshot()
    after: list[Hook] = hooks.get_after_restore()
    return before, after


async def _call(hook: Hook) -> None:
    fn, args, kwargs = hook
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        await result


async def _report(post: Callable[[ErrorReport], Any], exc: Exception, category: str) -> None:
    logger.error("SnapStart: %s", category, exc_info=exc)
    report = ErrorReport.from_exception(exc).with_category(category)
    try:
        await post(report)
    except Exception:
        logger.exception("SnapStart: could not report %s to the Runtime API", category)
