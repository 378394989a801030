"""What a process that serves the Runtime API itself does around the app's init, shared by the
two commands a function's ``bootstrap`` starts (``holdfast run`` and ``holdfast proxy``):
prepare the process before the app loads, read how many invocations Lambda sends at once, and
report an init failure.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holdfast.runtime.report import ErrorReport

logger = logging.getLogger("holdfast")


def prepare_process() -> None:
    """Make this process a runtime host, before the app is imported."""
    # This process drains pending work itself: an Adapter created while the app is imported must
    # not start the managed runtime's after-response extension (see holdfast.extension).
    os.environ["HOLDFAST_HOST"] = "runtime"
    # SIGTERM watched before the app's import, so a SIGTERM during a slow import still ends us.
    from holdfast.runtime import sigterm

    sigterm.watch()
    # The function's code lives in the task root (the working directory on Lambda), whichever
    # way this process was started.
    for path in (os.getcwd(), os.environ.get("LAMBDA_TASK_ROOT")):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    # Lambda may freeze or kill the process at any moment: buffered log lines would be late or
    # lost, so write each line as it is complete.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    # Lambda's advanced logging controls, before the app's import logs anything.
    from holdfast.runtime import logs

    logs.configure(os.environ.get("AWS_LAMBDA_LOG_FORMAT"), os.environ.get("AWS_LAMBDA_LOG_LEVEL"))


def max_concurrency(environ: Mapping[str, str] | None = None) -> int:
    """``AWS_LAMBDA_MAX_CONCURRENCY`` (Lambda Managed Instances): invocations at once, 1 when it
    is unset or not a positive integer (with a warning)."""
    value = (os.environ if environ is None else environ).get("AWS_LAMBDA_MAX_CONCURRENCY")
    if not value:
        return 1
    try:
        concurrency = int(value)
    except ValueError:
        concurrency = 0
    if concurrency < 1:
        logger.warning("ignoring AWS_LAMBDA_MAX_CONCURRENCY=%r: not a positive integer", value)
        return 1
    return concurrency


def fail_init(address: str, report: ErrorReport) -> int:
    """Post ``report`` to ``/runtime/init/error`` and return the exit status (1)."""
    from holdfast.runtime.client import RuntimeClient

    logger.error("init failed: %s: %s", report.error_type, report.message)
    try:
        asyncio.run(RuntimeClient(address).init_error(report))
    except Exception as post_error:
        logger.error("could not report the init error to the Runtime API: %s", post_error)
    return 1
