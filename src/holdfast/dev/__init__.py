"""`holdfast dev [MODULE:ATTR]`: your app on a local Lambda that really freezes, with its task
workers, reloads on save, a line per invocation and a dashboard at /_holdfast.

Modules: `server` (what runs), `timeline` (what was seen), `console` (the lines), `dashboard`
(the page and its feed), `probe` (inside the function: threads and tasks left running at the
freeze), `leftovers` (reading the probe's notes), `worker` (the queues' worker process).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING

from holdfast.cli import CommandParser, env_variable

from .console import Console

if TYPE_CHECKING:  # the server (and the emulator) load only once the command runs
    from .server import Options

DEFAULT_APP = "holdfast.demo:handler"

_DESCRIPTION = """\
Run MODULE:ATTR (an ASGI or WSGI app, a holdfast.Adapter, or a handler function) as Lambda runs
it: a custom runtime in a local execution environment that is frozen (SIGSTOP) between
invocations. Also runs a worker and the scheduler for every TaskQueue the app defines, reloads
when a .py file changes, prints a line per invocation and serves a dashboard at /_holdfast.
Without MODULE:ATTR it serves holdfast's demo app."""

_EPILOG = """\
examples:
  holdfast dev app:app                   # app.py's `app`, on http://127.0.0.1:8000
  holdfast dev app:app --port 9000 --timeout 5
  holdfast dev                           # the demo: curl -X POST localhost:8000/work
"""


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="holdfast dev",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "app",
        nargs="?",
        default=DEFAULT_APP,
        metavar="MODULE:ATTR",
        help="the app (default: the demo)",
    )
    add("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000)")
    add("--no-worker", action="store_true", help="do not run the app's task queues locally")
    add("--no-reload", action="store_true", help="do not restart the app when code changes")
    add(
        "--watch",
        action="append",
        metavar="DIR",
        help="directory to watch for changes (repeatable; default: the current one)",
    )
    add("--timeout", type=float, default=30.0, help="function timeout, seconds (default 30)")
    add("--memory", type=int, default=512, help="memory size in MB (default 512)")
    add("--concurrency", type=int, default=1, help="execution environments at most (default 1)")
    add("--event-format", choices=("v2", "v1", "alb"), default="v2", help="HTTP event shape")
    add(
        "--invoke-mode",
        choices=("buffered", "response_stream"),
        default="buffered",
        help="function URL invoke mode (default buffered)",
    )
    add("--env", type=env_variable, action="append", default=[], metavar="NAME=VALUE")
    add(
        "--grace",
        type=float,
        default=10.0,
        help="seconds running work may take to finish at Ctrl-C or a reload (default 10)",
    )
    add("--color", choices=("auto", "always", "never"), default="auto", help="coloured output")
    return parser


def main(argv: list[str]) -> int:
    """Run `holdfast dev`; returns the exit status (1 when the app cannot start)."""
    from .server import Options

    parser = _parser()
    args = parser.parse_args(argv)
    if ":" not in args.app and "." not in args.app:
        parser.error(f"expected MODULE:ATTR (e.g. app:app), got {args.app!r}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if args.timeout <= 0 or args.grace < 0 or args.concurrency < 1 or args.memory < 128:
        parser.error("--timeout must be > 0, --grace >= 0, --concurrency >= 1, --memory >= 128")
    options = Options(
        app=args.app,
        port=args.port,
        worker=not args.no_worker,
        reload=not args.no_reload,
        watch=tuple(args.watch or ["."]),
        timeout=args.timeout,
        memory=args.memory,
        concurrency=args.concurrency,
        event_format=args.event_format,
        invoke_mode=args.invoke_mode,
        env=dict(args.env),
        grace=args.grace,
    )
    console = Console(colour=args.color)
    try:
        return asyncio.run(_run(options, console))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        console.say("stopped")
        return 130


async def _run(options: Options, console: Console) -> int:
    from .server import DevServer, StartError

    console.say(f"starting {options.app} on a local Lambda ...", "dim")
    server = DevServer(options, console)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            console.say("stopping now")
            server.hurry()  # what still runs is ended, and the environments are shut down
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await server.start()
    except StartError as failure:
        console.error(failure.message)
        for line in failure.details:
            console.say(line, "dim")
        if failure.hint:
            console.say(f"hint: {failure.hint}", "yellow")
        return 1
    console.say(f"{options.app} listening on {server.url}", "green", "bold")
    if not options.worker:
        console.say("--no-worker: deferred tasks wait in their queue", "dim")
    console.say(f"dashboard: {server.url}/_holdfast   Ctrl-C stops", "green")
    await server.serve_until(stop)
    console.say(f"stopping: running work has {options.grace:g} s to finish (Ctrl-C again: now)")
    await server.close()
    console.say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
