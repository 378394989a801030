"""``holdfast proxy [--port PORT] -- COMMAND [ARGS...]``: run COMMAND's web server as a Lambda
function, the way the AWS Lambda Web Adapter does, with holdfast as the runtime in front.

Exit status: 0 after SIGTERM, 1 when the app could not be started or made ready (reported to
Lambda as an init error), 2 for a usage error.
"""

from __future__ import annotations

import sys

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


def main(argv: list[str]) -> int:
    """Run the proxy; returns the process exit status."""
    port, command = _parse(argv)
    if command is None:
        return 0
    if not command:
        print(_USAGE, end="", file=sys.stderr)
        return 2
    from holdfast import config

    lambda_settings = config.LambdaSettings()
    address = lambda_settings.runtime_loop_api
    if not address:
        print("holdfast proxy: AWS_LAMBDA_RUNTIME_API is not set", file=sys.stderr)
        return 2
    try:
        settings = config.proxy_settings(port)
    except ValueError as exc:
        print(f"holdfast proxy: {exc}", file=sys.stderr)
        return 2
    from holdfast.hosts.proxy import serve
    from holdfast.runtime.bootstrap import prepare_process

    prepare_process(lambda_settings)
    return serve(command, settings, lambda_settings, address)


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
