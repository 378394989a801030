"""``holdfast proxy [--port PORT] -- COMMAND [ARGS...]``: run COMMAND's web server as a Lambda
function, the way the AWS Lambda Web Adapter does, with holdfast as the runtime in front.

Exit status: 0 after SIGTERM, 1 when the app could not be started or made ready (reported to
Lambda as an init error), 2 for a usage error.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING

from holdfast.cli import did_you_mean, fail
from holdfast.config import is_tcp_port

if TYPE_CHECKING:
    from holdfast.config import ProxySettings

_PROG = "holdfast proxy"
_USAGE = """\
usage: holdfast proxy [--port PORT] -- COMMAND [ARGS...]

Start COMMAND (a web server listening on 127.0.0.1:PORT), wait until it is ready, then serve
Lambda invocations by forwarding each event to it as an HTTP request, as the AWS Lambda Web
Adapter does. Add holdfast.CompletionMiddleware to the app (one line) and work after
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

    for line in readiness_lines(command, settings):
        print(line, file=sys.stderr, flush=True)
    prepare_process(lambda_settings)
    return serve(command, settings, lambda_settings, address)


# The port a server listens on when its command does not say (uvicorn, gunicorn: 8000; ...).
_DEFAULT_PORTS = {
    "uvicorn": 8000,
    "gunicorn": 8000,
    "hypercorn": 8000,
    "granian": 8000,
    "daphne": 8000,
    "flask": 5000,
    "waitress-serve": 8080,
}
_PORT_OPTIONS = ("--port", "-p", "--bind", "-b", "--listen")


def readiness_lines(command: list[str], settings: ProxySettings) -> list[str]:
    """What the proxy says at once: where it waits for the app, and, when the command's server
    listens elsewhere by default, the fix."""
    where = f"{settings.host}:{settings.readiness_port}"
    probe = (
        f"a TCP connection to {where}"
        if settings.readiness_protocol == "tcp"
        else f"GET http://{where}{settings.readiness_path}"
    )
    lines = [f"holdfast proxy: starting {shlex.join(command)}; ready once {probe} answers"]
    server = next(
        (os.path.basename(word) for word in command if os.path.basename(word) in _DEFAULT_PORTS),
        None,
    )
    says_port = any(word.partition("=")[0] in _PORT_OPTIONS for word in command)
    if server is not None and not says_port and _DEFAULT_PORTS[server] != settings.port:
        default = _DEFAULT_PORTS[server]
        lines.append(
            f"  hint: {server} listens on {default} unless told; holdfast polls {settings.port}: "
            f"add `--port {settings.port}` to the command, or set AWS_LWA_PORT={default} "
            f"(or holdfast proxy --port {default})"
        )
    return lines


def _parse(argv: list[str]) -> tuple[int | None, list[str] | None]:
    """``(port, command)``; ``command`` is ``None`` after ``--help``; a usage error exits (2)."""
    port: int | None = None
    args = list(argv)
    while args and args[0] != "--":
        option = args.pop(0)
        if option in ("-h", "--help"):
            print(_USAGE, end="")
            return None, None
        if not option.startswith("-"):
            fail(
                _PROG,
                f"the server's command must follow `--`, got {shlex.join([option, *args])!r}",
                f"holdfast proxy -- {shlex.join([option, *args])}",
            )
        value = None
        if option.startswith("--port="):
            value = option.partition("=")[2]
        elif option == "--port" and args:
            value = args.pop(0)
        elif option != "--port":
            hint = did_you_mean(option, ["--port", "--help"]) or _USAGE.splitlines()[0]
            fail(_PROG, f"unknown option {option!r}", hint)
        if value is None or not is_tcp_port(value):
            fail(_PROG, f"--port expects a port number (1-65535), got {value!r}", "--port 8000")
        port = int(value)
    return port, args[1:]
