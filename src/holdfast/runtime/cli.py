"""``holdfast run MODULE:ATTR``: the custom runtime a function's ``bootstrap`` starts.

Reads the environment Lambda sets (``AWS_LAMBDA_RUNTIME_API``, ``AWS_LAMBDA_MAX_CONCURRENCY``,
``AWS_LAMBDA_INITIALIZATION_TYPE``) and holdfast's own ``HOLDFAST_INVOKE_MODE`` (or Lambda Web
Adapter's ``AWS_LWA_INVOKE_MODE``), loads the app, and serves invocations until Lambda ends the
process. Exit status: 0 after SIGTERM, 1 after an init failure or a broken Runtime API, 2 for a
usage error, 64/65 for SnapStart hook failures.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holdfast.config import LambdaSettings

_USAGE = """\
usage: holdfast run MODULE:ATTR

Run ATTR of MODULE as an AWS Lambda custom runtime (a provided.al2023 `bootstrap` or a container
image's entrypoint). ATTR is an ASGI app, a WSGI app, a holdfast.Adapter, or a plain
handler(event, context) function. MODULE:ATTR defaults to $_HANDLER.

environment:
  AWS_LAMBDA_RUNTIME_API        host:port of the Runtime API (set by Lambda)
  AWS_LAMBDA_MAX_CONCURRENCY    invocations at once (Lambda Managed Instances), default 1
  AWS_LAMBDA_LOG_FORMAT         TEXT (default) or JSON: log records as the managed runtime's JSON
  AWS_LAMBDA_LOG_LEVEL          the root logger's level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL)
  HOLDFAST_INVOKE_MODE          buffered (default) or response_stream (AWS_LWA_INVOKE_MODE too)
"""


def main(argv: list[str]) -> int:
    """Run the custom runtime; returns the process exit status."""
    if argv[:1] in (["-h"], ["--help"]):
        print(_USAGE, end="")
        return 0
    if argv and argv[0].startswith("-"):
        from holdfast.cli import fail

        fail("holdfast run", f"unknown option {argv[0]!r}", "usage: holdfast run MODULE:ATTR")
    from holdfast.config import LambdaSettings

    settings = LambdaSettings()
    spec = argv[0] if argv else settings.handler
    address = settings.runtime_api
    if len(argv) > 1 or not spec:
        print(_USAGE, end="", file=sys.stderr)
        return 2
    if not address:
        print(
            "holdfast run: AWS_LAMBDA_RUNTIME_API is not set (this is not Lambda)", file=sys.stderr
        )
        print(f"  hint: to run it locally: holdfast dev {spec}", file=sys.stderr)
        return 2
    from holdfast.runtime.bootstrap import prepare_process

    prepare_process(settings)
    return _run(spec, address, settings)


def _run(spec: str, address: str, settings: LambdaSettings) -> int:
    # Imported here so `holdfast --help` and usage errors stay cheap.
    from holdfast import config, pending
    from holdfast.engine import Engine
    from holdfast.hosts.custom import CustomRuntime
    from holdfast.runtime.bootstrap import fail_init
    from holdfast.runtime.loader import InitError, load

    try:
        target = load(spec)
    except InitError as exc:
        return fail_init(address, exc.report)
    runtime = CustomRuntime(
        target,
        address,
        concurrency=settings.max_concurrency,
        streaming=config.invoke_mode() == "response_stream",
        snapstart=settings.snapstart,
    )
    engine = target.adapter.engine if target.adapter is not None else Engine()
    status = engine.run(runtime.run())
    if pending.name_cut_threads("shutdown"):
        # The interpreter would join those threads at exit, past the shutdown budget.
        logging.shutdown()
        os._exit(status)
    return status
