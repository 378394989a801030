"""What a process that serves the Runtime API itself does around the app's init, shared by the
two commands a function's ``bootstrap`` starts (``holdfast run`` and ``holdfast proxy``):
prepare the process before the app loads, and report an init failure.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holdfast.config import LambdaSettings
    from holdfast.runtime.report import ErrorReport

logger = logging.getLogger("holdfast")


def prepare_process(settings: LambdaSettings) -> None:
    """Make this process a custom runtime, before the app is imported: an Adapter the app's
    import creates then starts no other host (see :func:`holdfast.hosts.install`)."""
    from holdfast import hosts

    hosts.install("custom")
    # SIGTERM watched before the app's import, so a SIGTERM during a slow import still ends us.
    # This process's main thread runs the event loop: it takes the signal itself.
    from holdfast.hosts import shutdown

    shutdown.watch(in_thread=False)
    # The function's code lives in the task root (the working directory on Lambda), whichever
    # way this process was started.
    for path in (os.getcwd(), settings.task_root):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    # Lambda may freeze or kill the process at any moment: buffered log lines would be late or
    # lost, so write each line as it is complete.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    # Lambda's advanced logging controls, before the app's import logs anything.
    from holdfast.runtime import logs

    logs.configure(settings.log_format, settings.log_level)


def fail_init(address: str, report: ErrorReport) -> int:
    """Post ``report`` to ``/runtime/init/error`` and return the exit status (1)."""
    from holdfast.runtime.client import RuntimeClient

    logger.error("init failed: %s: %s", report.error_type, report.message)
    try:
        asyncio.run(RuntimeClient(address).init_error(report))
    except Exception as post_error:
        logger.error("could not report the init error to the Runtime API: %s", post_error)
    return 1
