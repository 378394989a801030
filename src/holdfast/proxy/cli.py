"""``holdfast proxy [--port PORT] -- COMMAND [ARGS...]``: run COMMAND's web server as a Lambda
function, the way the AWS Lambda Web Adapter does, with holdfast as the runtime in front.

Exit status: 0 after SIGTERM, 1 when the app could not be started or made ready (reported to
Lambda as an init error), 2 for a usage error.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holdfast.config import ProxySettings

_USAGE = """\
usage: holdfast proxy [--port PORT] -- COMMAND [ARGS...]

Start COMMAND (a web server listening on 127.0.0.1:PORT), wait until it is ready, then serve
Lambda invocations by forwarding each event to it as an HTTP request, as the AWS Lambda Web
Adapter does. Add holdfast.completion.CompletionMiddleware to the app (one line) and work after
the response (FastAPI BackgroundTasks) finishes before Lambda freezes the environment.

environment (HOLDFAST_<NAME>, or the Lambda Web Adapter's AWS_LWA_<NAME>):
  PORT (8080), HOST (127.0.0.1), READINESS_CHECK_PORT, READINESS_CHECK_PATH (/),
  READINESS_CHECK_PROTOCOL (http|tcp), READINESS_CHECK_HEALTHY_STATUS (100-499),
  READINESS_CHECK_TIMEOUT_SECONDS, ASYNC_INIT, INVOKE_MODE (buffered|response_stream),
  ERROR_STATUS_CODES, REMOVE_BASE_PATH, PASS_THROUGH_PATH (/events), ENABLE_COMPRESSION,
  AUTHORIZATION_SOURCE, POOL_IDLE_TIMEOUT_SECONDS, LAMBDA_RUNTIME_API_PROXY
  (see docs/migrating-from-lwa.md)
"""

logger = logging.getLogger("holdfast")

# Under SnapStart and provisioned concurrency, init is not on the request path: async init is
# pointless there and ignored, as LWA 1.1 does.
_PREINITIALIZED = ("snap-start", "provisioned-concurrency")


def main(argv: list[str]) -> int:
    """Run the proxy; returns the process exit status."""
    port, command = _parse(argv)
    if command is None:
        return 0
    if not command:
        print(_USAGE, end="", file=sys.stderr)
        return 2
    from holdfast import config

    address = config.runtime_api()
    if not address:
        print("holdfast proxy: AWS_LAMBDA_RUNTIME_API is not set", file=sys.stderr)
        return 2
    try:
        settings = config.proxy_settings(port)
    except ValueError as exc:
        print(f"holdfast proxy: {exc}", file=sys.stderr)
        return 2
    from holdfast.runtime.bootstrap import prepare_process

    prepare_process()
    return _run(command, settings, address)


def _parse(argv: list[str]) -> tuple[int | None, list[str] | None]:
    """``(port, command)``; ``command`` is ``None`` after ``--help``, ``[]`` on a usage error."""
    port: int | None = None
    args = list(argv)
    while args and args[0] != "--":
        option = args.pop(0)
        if option in ("-h", "--help"):
            print(_USAGE, end="")
            return None, None
        value = None
        if option.startswith("--port="):
            value = option.partition("=")[2]
        elif option == "--port" and args:
            value = args.pop(0)
        if value is None or not value.isdigit() or not 0 < int(value) < 65536:
            print(f"holdfast proxy: bad option {option!r}", file=sys.stderr)
            return None, []
        port = int(value)
    return port, args[1:]


def _run(command: list[str], settings: ProxySettings, address: str) -> int:
    from holdfast import config
    from holdfast.adapter import Adapter
    from holdfast.errors import LifespanError
    from holdfast.proxy.app import ProxyApp
    from holdfast.runtime.bootstrap import fail_init, max_concurrency
    from holdfast.runtime.loader import Target
    from holdfast.runtime.loop import Runtime
    from holdfast.runtime.report import ErrorReport

    concurrency = max_concurrency()
    initialization = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "")
    async_init = settings.async_init
    if async_init and initialization in _PREINITIALIZED:
        logger.warning("ASYNC_INIT is ignored under %s: init waits for the app", initialization)
        async_init = False
    app = ProxyApp(
        command,
        settings,
        # Several invocations at once means Lambda Managed Instances: no freeze, pooling is safe.
        reuse=concurrency > 1 and initialization != "snap-start",
        async_init=async_init,
    )
    try:
        adapter = Adapter(app, lifespan="on")
    except LifespanError as exc:
        report = ErrorReport.runtime(
            "ProxyAppNotReady", str(exc).removeprefix("lifespan startup failed: ")
        )
        return fail_init(address, report)
    runtime = Runtime(
        Target(adapter=adapter),
        address,
        concurrency=concurrency,
        streaming=config.invoke_mode() == "response_stream",
        snapstart=initialization == "snap-start",
    )
    # SIGTERM: before Runtime.run takes it over, holdfast.runtime.sigterm ends the process (the
    # watch started by prepare_process); from then on the runtime winds down as holdfast run's.
    return adapter.engine.run(runtime.run())
