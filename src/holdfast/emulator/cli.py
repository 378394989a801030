"""`holdfast emulate [options] -- COMMAND [ARGS...]`: run COMMAND as a local Lambda runtime."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import errno
import importlib.machinery
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from holdfast.appcode import is_app_file
from holdfast.cli import CommandParser, env_variable, fail

from .config import (
    DEFAULT_CONCURRENCY,
    EVENT_FORMATS,
    INVOKE_MODES,
    EmulatorConfig,
    InvokeMode,
)
from .invoke import RuntimeResponse
from .service import Emulator

# A long init is said to be running after this many seconds, then again every PROGRESS_EVERY.
PROGRESS_AFTER = 2.0
PROGRESS_EVERY = 5.0
# An init overrun is answered with this error type (see `Environment.initialize`).
INIT_TIMEOUT = "Sandbox.Timedout"

_EPILOG = """\
examples:
  holdfast emulate -- holdfast run app:handler   # handler = holdfast.Adapter(app, ...) in app.py
  holdfast emulate -- holdfast run app:app       # the same Adapter (the module's), or a default one
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
    args, extra = parser.parse_known_args(options)
    if extra and not extra[0].startswith("-") and not command:
        fail(
            parser.prog,
            f"the runtime command must follow `--`, got {shlex.join(extra)!r}",
            f"holdfast emulate [options] -- {shlex.join(extra)}",
        )
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not command:
        fail(
            parser.prog,
            "a runtime command is required after --",
            "holdfast emulate -- holdfast run app:handler",
        )
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
            invoke_mode=invoke_mode(args.invoke_mode, dict(args.env)),
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
    problem = missing_handler_module(config)
    if problem is not None:
        fail("holdfast emulate", *problem)
    try:
        return asyncio.run(_serve(config))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            _say(f"port {config.port} is already in use on {config.host}")
            print(
                f"  hint: stop what listens there, or pick another port: --port {config.port + 1}",
                file=sys.stderr,
            )
        else:
            _say(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}")
        return 1


def invoke_mode(given: InvokeMode | None, env: dict[str, str]) -> InvokeMode:
    """The function URL's mode: ``--invoke-mode``, else the mode the function's own
    environment asks holdfast for (so ``AWS_LWA_INVOKE_MODE=response_stream`` streams here as
    on Lambda). When both are given and differ, ``--invoke-mode`` wins, and a line names the
    variable it overrides (the emulator sets ``HOLDFAST_INVOKE_MODE`` for the runtime)."""
    environment = {**os.environ, **env}
    for name in ("HOLDFAST_INVOKE_MODE", "AWS_LWA_INVOKE_MODE"):
        value = environment.get(name, "").strip().lower()
        if value:
            break
    else:
        return given or "buffered"
    if value not in INVOKE_MODES:
        _say(f"{name}={environment[name]!r} is not buffered or response_stream: using buffered")
        value = "buffered"
    if given is None:
        return cast(InvokeMode, value)
    if given != value and name == "AWS_LWA_INVOKE_MODE":
        _say(f"--invoke-mode {given} overrides {name}={environment[name]} for the function")
    elif given != value:  # the emulator does not override the function's own variable
        _say(
            f"--invoke-mode {given} is the URL's mode, but the function's {name}="
            f"{environment[name]} stays: the runtime answers {value}"
        )
    return given


def missing_handler_module(config: EmulatorConfig) -> tuple[str, str] | None:
    """``(message, hint)`` when the command names a handler whose module does not exist.

    Checked before "listening" is announced, without importing anything (the app's import runs
    once, in the function's init): only whether the top-level module can be found in the
    function's directory or on this interpreter's path.
    """
    spec = handler_spec(config.command) or config.handler
    if not spec:
        return None
    module = spec.partition(":")[0] if ":" in spec else spec.rpartition(".")[0]
    top = module.replace("/", ".").split(".")[0]
    if not top.isidentifier():
        return None
    directory = config.cwd or os.getcwd()
    if importlib.machinery.PathFinder.find_spec(top, [directory, *sys.path]) is not None:
        return None
    if top in sys.builtin_module_names:
        return None
    close = _close_module(directory, top)
    hint = f"did you mean {close!r}?" if close else f"run it from the directory that holds {top}.py"
    return f"the handler {spec!r} names module {top!r}, which is not in {directory}", hint


def _close_module(directory: str, name: str) -> str | None:
    """The module in `directory` whose name is closest to `name`, if one is close."""
    try:
        nearby = [entry.removesuffix(".py") for entry in os.listdir(directory)]
    except OSError:
        return None
    close = difflib.get_close_matches(name, [n for n in nearby if n.isidentifier()], n=1)
    return close[0] if close else None


def handler_spec(command: Sequence[str]) -> str | None:
    """The handler a runtime command names: ``holdfast run SPEC`` (also ``python -m holdfast
    run SPEC``) or ``python -m awslambdaric SPEC``; None for any other command."""
    words = [os.path.basename(command[0]), *command[1:]] if command else []
    for start, runner in (
        ("holdfast", ["run"]),
        ("-m", ["holdfast", "run"]),
        ("-m", ["awslambdaric"]),
    ):
        for index, word in enumerate(words):
            if word != start:
                continue
            rest = words[index + 1 :]
            if rest[: len(runner)] == runner and len(rest) > len(runner):
                spec = rest[len(runner)]
                return None if spec.startswith("-") else spec
    return None


async def _serve(config: EmulatorConfig) -> int:
    """Check that the function starts (its init), then announce it and serve until stopped."""
    emulator = Emulator(config=config)
    await emulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        began = time.monotonic()
        init = asyncio.ensure_future(start_function(emulator))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({init, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not init.done():
            init.cancel()
            await asyncio.gather(init, return_exceptions=True)
            _say("stopped before the function's init finished")
            return 0
        failure = init.result()
        if failure is not None and failure.error_type != INIT_TIMEOUT:
            output = emulator.environments[0].init_output if emulator.environments else ()
            message, hint = describe_init_failure(config, failure, output)
            _say(message)
            print(f"  hint: {hint}", file=sys.stderr, flush=True)
            return 1
        if failure is not None:  # Lambda retries an overrun inside the first invocation
            _say(
                f"the function's init did not finish within {config.init_timeout:g} s "
                f"(--init-timeout): the first request runs it again, on its own timeout"
            )
        _announce(emulator, None if failure else (time.monotonic() - began) * 1000)
        await stop.wait()
        _say("shutting down")
        return 0
    finally:
        await emulator.close()


async def start_function(
    emulator: Emulator, *, after: float = PROGRESS_AFTER, every: float = PROGRESS_EVERY
) -> RuntimeResponse | None:
    """`emulator.initialize()`, saying it is still running when it takes over `after` seconds
    (and every `every` seconds after that): a slow init must not look like a hang."""
    began = time.monotonic()
    init = asyncio.ensure_future(emulator.initialize())
    try:
        wait = after
        while not (await asyncio.wait({init}, timeout=wait))[0]:
            _say(
                f"the function's init is still running: {time.monotonic() - began:.0f} s so far "
                f"(the limit is {emulator.config.init_timeout:g} s: --init-timeout)"
            )
            wait = every
        return init.result()
    finally:
        if not init.done():
            init.cancel()
            await asyncio.gather(init, return_exceptions=True)


def _announce(emulator: Emulator, init_ms: float | None) -> None:
    config = emulator.config
    lines = [
        f"function {config.function_name!r} listening on {emulator.url}",
        f"  invoke:  POST {emulator.invoke_url}",
        f"  http:    any other request, as {config.event_format} events ({config.invoke_mode})",
    ]
    if init_ms is not None:
        first = "restores the snapshot" if config.snap_start else "finds it warm"
        lines.append(f"  init:    done in {init_ms:.0f} ms (the first request {first})")
    _say("\n".join(lines))


def describe_init_failure(
    config: EmulatorConfig, failure: RuntimeResponse, output: Iterable[str]
) -> tuple[str, str]:
    """``(message, hint)`` for an init that failed before "listening": the error once (not
    repeated when the function's own output, `output`, said it already) and what to do."""
    try:
        body = json.loads(failure.body) if isinstance(failure.body, bytes) else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error_type = str(body.get("errorType") or failure.error_type or "Runtime.Unknown")
    text = " ".join(str(body.get("errorMessage") or "").split())
    said = bool(text) and text in " ".join(" ".join(output).split())
    if said:
        message = f"the function's init failed with {error_type} (its output above says why)"
    else:
        message = f"the function's init failed: {error_type}" + (f": {text[:500]}" if text else "")
    return message, _init_hint(config, error_type, body, said)


def _init_hint(config: EmulatorConfig, error_type: str, body: dict[str, Any], said: bool) -> str:
    text = str(body.get("errorMessage") or "")
    spec = handler_spec(config.command) or config.handler or ""
    module, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    module = module.replace("/", ".")
    if error_type == "Runtime.ImportModuleError":
        missing = re.search(r"No module named '([^']+)'", text)
        if missing and module and (module + ".").startswith(missing[1] + "."):
            return _module_hint(config, missing[1], spec)
        if missing:
            return f"{missing[1]!r} is not installed where the runtime's Python looks for it"
    if error_type == "Runtime.HandlerNotFound" and attr:
        return f"check the name after the module: {attr!r} in {module!r}"
    if error_type == "Runtime.MalformedHandlerName":
        return "write the handler as MODULE:ATTR (holdfast run) or MODULE.ATTR (awslambdaric)"
    if error_type == "Runtime.InvalidEntrypoint":
        return f"is {config.command[0]!r} installed and on PATH?"
    if error_type == "Runtime.ExitError":
        return (
            f"`{shlex.join(config.command)}` exited before asking for its first event: the "
            "command must be a Lambda runtime (holdfast run, python -m awslambdaric, ...)"
        )
    raised = _raised_at(body.get("stackTrace"))
    if raised:
        return f"it was raised at {raised}: fix that, then start the function again"
    if said:
        return "fix what the function's output above shows, then start the function again"
    return "the function serves once its init succeeds: fix the error, then start it again"


def _module_hint(config: EmulatorConfig, missing: str, spec: str) -> str:
    """For a handler module that is not found: the close name in its package, if any."""
    package, _, name = missing.rpartition(".")
    parts = package.split(".") if package else []
    close = _close_module(os.path.join(config.cwd or os.getcwd(), *parts), name)
    if close:
        return f"did you mean {'.'.join([*parts, close])!r}?"
    return f"check the module in {spec!r}: run from the directory that holds it"


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')


def _raised_at(trace: object) -> str | None:
    """Where the error was raised, as ``file, line N, in F``: the last frame in the app's own
    code (a library's or the runtime's frames say little about the app), else the last one."""
    if not isinstance(trace, list):
        return None
    frames = [m for entry in trace if (m := _FRAME.match(str(entry)))]
    if not frames:
        return None
    own = [m for m in frames if is_app_file(m[1])]
    found = (own or frames)[-1]
    return f"{found[1]}, line {found[2]}, in {found[3]}"


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
    parser = CommandParser(
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
    add(
        "--invoke-mode",
        choices=INVOKE_MODES,
        help="function URL mode (default: the function's HOLDFAST_INVOKE_MODE or "
        "AWS_LWA_INVOKE_MODE, else buffered)",
    )
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
