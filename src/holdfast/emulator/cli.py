"""`holdfast emulate [options] -- COMMAND [ARGS...]`: run COMMAND as a local Lambda runtime."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys

from holdfast.cli import env_variable

from .config import DEFAULT_CONCURRENCY, EVENT_FORMATS, INVOKE_MODES, EmulatorConfig
from .service import Emulator

_EPILOG = """\
examples:
  holdfast emulate -- holdfast run app:app
  holdfast emulate --event-format v1 --timeout 10 -- python -m awslambdaric app.handler
  holdfast emulate --max-concurrency 4 -- python -m awslambdaric app.handler
  holdfast emulate --snap-start --snapshot-age 5 -- holdfast run app:app
  curl localhost:9000/hello                    # an HTTP request, as a Function URL event
  curl -d '{}' localhost:9000/2015-03-31/functions/function/invocations   # the Invoke API
"""


def parse_config(argv: list[str]) -> EmulatorConfig:
    """The settings `argv` asks for; a usage error exits with status 2 and a one-line message."""
    parser = _parser()
    options, command = _split(argv)
    args = parser.parse_args(options)
    if not command:
        parser.error("a runtime command is required after --")
    try:
        config = EmulatorConfig(
            command=command,
            host=args.host,
            port=args.port,
            event_format=args.event_format,
            timeout=args.timeout,
            memory=args.memory,
            concurrency=_concurrency(args),
            throttle=True,
            invoke_mode=args.invoke_mode,
            function_name=args.function_name,
            alb_multi_value=args.alb_multi_value,
            init_timeout=args.init_timeout,
            async_retry_delays=args.async_retry_delays,
            extensions=[shlex.split(e) for e in args.extension],
            env=dict(args.env),
            handler=args.handler,
            max_concurrency=args.max_concurrency,
            snap_start=args.snap_start,
            snapshot_age=args.snapshot_age,
        )
    except ValueError as exc:
        parser.error(str(exc))
    return config


def main(argv: list[str]) -> int:
    """Run the emulator until Ctrl-C or SIGTERM; returns the exit status."""
    config = parse_config(argv)
    try:
        asyncio.run(_serve(config))
    except OSError as exc:
        print(f"holdfast emulate: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: EmulatorConfig) -> None:
    emulator = Emulator(config=config)
    await emulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    _say(
        f"function {config.function_name!r} listening on {emulator.url}\n"
        f"  invoke:  POST {emulator.invoke_url}\n"
        f"  http:    any other request, as {config.event_format} events ({config.invoke_mode})"
    )
    try:
        await stop.wait()
    finally:
        _say("shutting down")
        await emulator.close()


def _say(message: str) -> None:
    print(f"holdfast emulate: {message}", file=sys.stderr, flush=True)


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" not in argv:
        return argv, []
    index = argv.index("--")
    return argv[:index], argv[index + 1 :]


def _delays(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 1,2 — got {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="holdfast emulate",
        usage="%(prog)s [options] -- COMMAND [ARGS...]",
        description="Run COMMAND as the runtime of a local Lambda function that really freezes.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address of the front listener (default 127.0.0.1)")
    add("--port", type=int, default=9000, help="port of the front listener (default 9000)")
    add("--event-format", choices=EVENT_FORMATS, default="v2", help="HTTP event shape")
    add("--timeout", type=float, default=30.0, help="function timeout in seconds (default 30)")
    add("--memory", type=int, default=512, help="memory size in MB (default 512)")
    add(
        "--concurrency",
        type=int,
        help=f"max execution environments; past them a request gets 429 as on Lambda "
        f"(default {DEFAULT_CONCURRENCY}, or 1 for Managed Instances)",
    )
    add(
        "--max-concurrency",
        type=int,
        metavar="N",
        help="Managed Instances: one environment, N invokes at once, no freeze",
    )
    add("--invoke-mode", choices=INVOKE_MODES, default="buffered", help="function URL mode")
    add("--function-name", default="function", help="function name (default 'function')")
    add("--alb-multi-value", action="store_true", help="ALB multi-value headers mode")
    add("--init-timeout", type=float, default=10.0, help="init phase limit (default 10 s)")
    add(
        "--async-retry-delays",
        type=_delays,
        default=(1.0, 2.0),
        help="seconds before each async retry (default 1,2)",
    )
    add(
        "--extension",
        action="append",
        default=[],
        metavar="COMMAND",
        help="an external extension to start before the runtime (repeatable)",
    )
    add(
        "--snap-start",
        action="store_true",
        help="SnapStart: snapshot after init (at start), restore on the first invocation",
    )
    add(
        "--snapshot-age",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="SnapStart: keep the snapshot frozen at least this long before a restore",
    )
    add("--env", type=env_variable, action="append", default=[], metavar="NAME=VALUE")
    add("--handler", help="value of _HANDLER (default: the command's last word)")
    return parser


def _concurrency(args: argparse.Namespace) -> int:
    if args.concurrency is not None:
        return int(args.concurrency)
    return 1 if args.max_concurrency is not None else DEFAULT_CONCURRENCY
