"""The `holdfast dev` server: the app on a local Lambda, its task workers, reloads, the dashboard.

One listener on 127.0.0.1 answers everything: ``/_holdfast...`` is the dashboard, the rest goes
to the emulator's front (HTTP requests become events; the Invoke API works as usual). Behind the
front is the *current* emulator: a reload starts a new one with the new code, and the old one
finishes what it was doing, then shuts down. The queue is durable, so a reload loses no task.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from holdfast.emulator.config import EmulatorConfig, EventFormat, InvokeMode
from holdfast.emulator.front import Front
from holdfast.emulator.invoke import InvokeRequest, RuntimeResponse
from holdfast.emulator.service import Emulator
from holdfast.http11.server import (
    BODY_TIMEOUT,
    HEAD_TIMEOUT,
    IDLE_TIMEOUT,
    HTTPServer,
    Request,
    Response,
)

from .console import Console
from .dashboard import PREFIX, Dashboard
from .leftovers import LeftOvers
from .probe import PROBE_ENV
from .timeline import Timeline
from .worker import FEED_ENV

# What `holdfast dev` invokes once at start (and after each reload) to initialise the app, as a
# provisioned environment would be: a keep-warm ping (holdfast.dispatch answers it without
# running the app); the init is what counts. A plain handler function gets it as its event.
WARM_UP_EVENT = {"warmer": True}
_INVOKE_API = "/2015-03-31/functions/"


class StartError(Exception):
    """`holdfast dev` cannot start: one line, and a hint."""

    def __init__(self, message: str, hint: str | None = None, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details)


@dataclass(frozen=True)
class Options:
    """What `holdfast dev` was asked to do (see `holdfast dev --help`)."""

    app: str
    port: int = 8000
    worker: bool = True
    reload: bool = True
    watch: Sequence[str] = (".",)
    timeout: float = 30.0
    memory: int = 512
    event_format: EventFormat = "v2"
    invoke_mode: InvokeMode = "buffered"
    concurrency: int = 1
    env: dict[str, str] = field(default_factory=dict)
    grace: float = 10.0


@dataclass
class _ServedRequest:
    """One HTTP request on its way through the front: what the timeline needs to know of it."""

    method: str
    path: str
    request_id: str | None = None


_SERVED: ContextVar[_ServedRequest | None] = ContextVar("holdfast_dev_served_request", default=None)


class Switchboard:
    """The front's dispatcher: tells the timeline what each invocation is, then passes it on to
    the current emulator."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline
        self.emulator: Emulator | None = None

    async def call(self, request: InvokeRequest) -> RuntimeResponse:
        served = _SERVED.get()
        if served is not None:
            served.request_id = request.request_id
            self._expect(request, "http", served.method, served.path)
        else:
            self._expect(request, "invoke", None, None)
        assert self.emulator is not None
        return await self.emulator.call(request)

    def call_async(self, request: InvokeRequest) -> None:
        self._expect(request, "invoke", None, None)
        assert self.emulator is not None
        self.emulator.call_async(request)

    def _expect(
        self, request: InvokeRequest, kind: str, method: str | None, path: str | None
    ) -> None:
        self._timeline.expect(request.request_id, kind=kind, method=method, path=path)


class WorkerProcess:
    """`python -m holdfast.dev.worker APP` in its own process group, its feed read into the
    timeline. Ctrl-C in the terminal reaches only `holdfast dev`, which stops it in order."""

    def __init__(self, process: asyncio.subprocess.Process, reader: asyncio.Task[None]) -> None:
        self._process = process
        self._reader = reader

    @classmethod
    async def start(
        cls,
        app: str,
        timeline: Timeline,
        env: dict[str, str],
        on_queues: Callable[[list[dict[str, Any]]], None],
    ) -> WorkerProcess:
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "holdfast.dev.worker",
                app,
                pass_fds=(write_fd,),
                env={**os.environ, **env, FEED_ENV: str(write_fd)},
                process_group=0,
            )
        finally:
            os.close(write_fd)
        reader = asyncio.create_task(_read_feed(read_fd, timeline, on_queues))
        return cls(process, reader)

    def terminate(self) -> None:
        """SIGTERM: the worker claims nothing more and stops once its running tasks finish."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)

    async def wait(self) -> None:
        """Until the worker has exited."""
        await self._process.wait()

    async def stop(self, grace: float) -> None:
        """SIGTERM (running tasks finish), SIGKILL after `grace` seconds."""
        if self._process.returncode is None:
            self.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                await self._process.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def _read_feed(
    fd: int, timeline: Timeline, on_queues: Callable[[list[dict[str, Any]]], None]
) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    with os.fdopen(fd, "rb") as pipe:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if message.get("type") == "task":
                    timeline.task(message["status"])
                elif message.get("type") == "queues":
                    timeline.set_queues(message["queues"])
                    on_queues(message["queues"])
        finally:
            transport.close()


class DevServer:
    """Everything `holdfast dev` runs; `start`, then `serve_until` a stop, then `close`."""

    def __init__(self, options: Options, console: Console) -> None:
        self._options = options
        self._console = console
        self._workdir = tempfile.mkdtemp(prefix="holdfast-dev-")
        self._leftovers = LeftOvers(os.path.join(self._workdir, "probe.jsonl"))
        self.timeline = Timeline(self._leftovers, on_complete=console.invocation)
        self.timeline.app = options.app
        self._switchboard = Switchboard(self.timeline)
        # Made once the listener is bound: events carry the port clients reach.
        self._config: EmulatorConfig | None = None
        self._front: Front | None = None
        self._dashboard = Dashboard(self.timeline)
        self._server = HTTPServer(
            self._handle,
            "127.0.0.1",
            options.port,
            idle_timeout=IDLE_TIMEOUT,
            head_timeout=HEAD_TIMEOUT,
            body_timeout=BODY_TIMEOUT,
        )
        self._emulator: Emulator | None = None
        self._worker: WorkerProcess | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._old: list[Emulator | WorkerProcess] = []  # replaced by a reload, still finishing
        self._hurry = asyncio.Event()
        self._generation = 0

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._server.port}"

    # -- start -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, initialise the app, start its workers; `StartError` if any of it fails."""
        try:
            await self._server.start()
        except OSError as exc:
            shutil.rmtree(self._workdir, ignore_errors=True)
            port = self._options.port
            if exc.errno == errno.EADDRINUSE:
                raise StartError(
                    f"port {port} is already in use",
                    f"stop what listens there, or pick another port: --port {port + 1}",
                ) from None
            raise StartError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        self._config = self._emulator_config(self._server.port)
        self._front = Front(self._config, self._switchboard)
        failure = await self._start_app()
        if failure is not None:
            await self.close(grace=0.0)
            raise failure

    async def _start_app(self) -> StartError | None:
        """A new emulator for the current code, initialised; its worker when init succeeded."""
        assert self._config is not None
        emulator = Emulator(config=self._config, log=self._platform_line, observer=self.timeline)

        def pgid_of(environment_id: int) -> int | None:
            found = [e.pgid for e in emulator.environments if e.id == environment_id]
            return found[0] if found else None

        self.timeline.pgid_of = pgid_of
        self._switchboard.emulator = self._emulator = emulator
        failure = await self._warm_up(emulator)
        if failure is None and self._options.worker:
            self._worker = await WorkerProcess.start(
                self._options.app, self.timeline, dict(self._options.env), self._queues_found
            )
        return failure

    async def _warm_up(self, emulator: Emulator) -> StartError | None:
        request = InvokeRequest(json.dumps(WARM_UP_EVENT).encode())
        self.timeline.expect(request.request_id, kind="init", method=None, path=None)
        response = await (await emulator.call(request)).buffered()
        await emulator.wait_idle()  # frozen: the init line comes before the "listening" one
        entry = self.timeline.entry(request.request_id)
        outcome = entry.record.outcome if entry is not None and entry.record else "running"
        if outcome in ("running", "frozen"):
            return None
        failure = init_failure(self._options.app, outcome, response)
        if not failure.details and response.error_type == "Runtime.ImportModuleError":
            failure.details = await import_trace(self._options.app)
        return failure

    # -- serve -------------------------------------------------------------------------------

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Serve (and reload on code changes) until `stop` is set."""
        watcher = asyncio.create_task(self._watch(stop)) if self._options.reload else None
        try:
            await stop.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    async def _handle(self, request: Request) -> Response:
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            return await self._dashboard.handle(request)
        assert self._front is not None  # requests come only once the listener is started
        if request.path.startswith(_INVOKE_API):
            return await self._front.handle(request)
        path = request.path + (f"?{request.query}" if request.query else "")
        served = _ServedRequest(request.method, path)
        token = _SERVED.set(served)
        status: int | None = None
        try:
            response = await self._front.handle(request)
            status = response.status
            return response
        finally:
            _SERVED.reset(token)
            if served.request_id is not None:
                self.timeline.answered(served.request_id, status)

    def _queues_found(self, queues: list[dict[str, Any]]) -> None:
        if not queues:
            self._console.say("no TaskQueue in the app: no worker needed", "dim")
        for queue in queues:
            self._console.say(f"worker + scheduler for queue {queue['name']!r} ({queue['url']})")

    def _platform_line(self, line: str) -> None:
        # START/END/REPORT become the console's own invocation lines; other notes stay.
        if not line.startswith(("START RequestId", "END RequestId", "REPORT RequestId")):
            self._console.say(line, "dim")

    # -- reload ------------------------------------------------------------------------------

    async def _watch(self, stop: asyncio.Event) -> None:
        from watchfiles import PythonFilter, awatch

        paths = [os.path.abspath(path) for path in self._options.watch]
        async for changes in awatch(*paths, watch_filter=PythonFilter(), stop_event=stop):
            changed = {path for _, path in changes}
            _forget_bytecode(changed)
            await self.reload(sorted(os.path.relpath(path) for path in changed))

    async def reload(self, changes: Sequence[str]) -> None:
        """Start the app anew with the current code; the old one finishes its work, then stops."""
        self._generation += 1
        self.timeline.reloaded(self._generation, list(changes))
        self._console.say(f"reloading ({', '.join(changes) or 'requested'})", "cyan")
        old_emulator, old_worker = self._emulator, self._worker
        self._worker = None
        failure = await self._start_app()
        for retiring in (old_emulator, old_worker):
            if retiring is not None:
                self._old.append(retiring)
                task = asyncio.create_task(self._retire(retiring))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        if failure is not None:
            self._report(failure)
            self._console.say("fix the code and save: holdfast dev reloads it", "yellow")
        else:
            self._console.say("reloaded", "green")

    async def _retire(self, part: Emulator | WorkerProcess) -> None:
        grace = self._options.grace
        if isinstance(part, WorkerProcess):
            await part.stop(grace)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(part.wait_idle(), grace)
            await part.close()
        self._old.remove(part)

    def _report(self, failure: StartError) -> None:
        self._console.error(failure.message)
        for line in failure.details:
            self._console.say(line, "dim")
        if failure.hint:
            self._console.say(f"hint: {failure.hint}", "yellow")

    # -- stop --------------------------------------------------------------------------------

    def hurry(self) -> None:
        """Stop waiting for running work (a second Ctrl-C): what still runs is ended now."""
        self._hurry.set()

    async def close(self, grace: float | None = None) -> None:
        """Stop listening; running invocations and tasks get `grace` seconds (or until `hurry`),
        then every environment and worker is stopped."""
        grace = self._options.grace if grace is None else grace
        await self._server.close()
        emulator, worker = self._emulator, self._worker
        waits: list[Any] = [*self._retiring]
        if emulator is not None:
            waits.append(emulator.wait_idle())
        if worker is not None:
            worker.terminate()
            waits.append(worker.wait())
        await self._bounded(waits, grace)
        for task in self._retiring:
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for part in [*self._old, emulator, worker]:
            if isinstance(part, WorkerProcess):
                await part.stop(0.0)
            elif part is not None:
                await part.close()
        self._leftovers.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    async def _bounded(self, waits: list[Any], grace: float) -> None:
        """Wait for `waits` at most `grace` seconds, and not past `hurry`."""
        if not waits:
            return
        work = asyncio.ensure_future(asyncio.gather(*waits, return_exceptions=True))
        hurry = asyncio.ensure_future(self._hurry.wait())
        await asyncio.wait({work, hurry}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        hurry.cancel()
        if not work.done():
            work.cancel()
        await asyncio.gather(work, hurry, return_exceptions=True)

    def _emulator_config(self, port: int) -> EmulatorConfig:
        options = self._options
        return EmulatorConfig(
            command=[sys.executable, "-m", "holdfast.dev.probe", options.app],
            host="127.0.0.1",
            port=port,
            event_format=options.event_format,
            timeout=options.timeout,
            memory=options.memory,
            concurrency=options.concurrency,
            invoke_mode=options.invoke_mode,
            env={**options.env, PROBE_ENV: self._leftovers.path},
            handler=options.app,
        )


def init_failure(app: str, outcome: str, response: RuntimeResponse) -> StartError:
    """What to say when the app's init failed: the error, its file and line, a hint."""
    try:
        body = json.loads(response.body) if isinstance(response.body, bytes) else {}
    except ValueError:
        body = {}
    error_type = str(body.get("errorType") or response.error_type or "Runtime.Unknown")
    message = str(body.get("errorMessage") or "")
    trace = user_frames([str(line).rstrip() for line in body.get("stackTrace") or []])
    module, _, attr = app.partition(":")
    hints = {
        "Runtime.ImportModuleError": f"is {module!r} importable from {os.getcwd()}? "
        "(run holdfast dev from the directory that holds it)",
        "Runtime.HandlerNotFound": f"check the name after the colon: {attr!r} in {module!r}",
        "Runtime.MalformedHandlerName": "write it as MODULE:ATTR, e.g. app:app",
        "Runtime.UserCodeSyntaxError": "fix the syntax error at the line shown",
    }
    if outcome == "timeout":
        hint = "init took longer than Lambda allows (10 s): see `holdfast coldstart`"
        return StartError(f"the app did not finish init in time ({error_type})", hint, trace)
    missing = _MISSING_MODULE.search(message)
    if error_type == "Runtime.ImportModuleError" and missing and missing[1] != module:
        hints[error_type] = f"{module!r} imports {missing[1]!r}, which is not installed here"
    if trace:
        fallback = "the traceback above shows where the app failed to start"
    else:
        fallback = f"`holdfast coldstart {app}` shows where the app's startup goes"
    hint = hints.get(error_type, fallback)
    return StartError(f"the app failed to start: {error_type}: {message}", hint, trace)


_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")
_FRAME_FILE = re.compile(r'^\s*File "([^"]+)"')


def user_frames(trace: list[str]) -> list[str]:
    """The frames of ``trace`` in the app's own files (see :mod:`holdfast.appcode`), and the
    last frame wherever it is (where the error was raised); importlib's and holdfast's frames
    say nothing about the app."""
    from holdfast.appcode import is_app_file

    def own(frame: str) -> bool:
        match = _FRAME_FILE.match(frame)
        return match is not None and is_app_file(match[1])

    kept = [frame for index, frame in enumerate(trace) if own(frame) or index == len(trace) - 1]
    return kept if any(own(frame) for frame in kept) else trace


async def import_trace(app: str) -> list[str]:
    """Where an import failed: Lambda's ImportModuleError carries no traceback, so the app's
    module is imported once more in a fresh interpreter to show the file and line."""
    from holdfast.runtime.loader import split_spec

    module, _ = split_spec(app)  # well formed: the runtime's loader got as far as the import
    code = "import sys; sys.path.insert(0, ''); __import__(sys.argv[1])"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        module,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    lines = stderr.decode(errors="replace").splitlines()
    frames = [
        index
        for index, line in enumerate(lines)
        if line.startswith('  File "') and "<frozen " not in line and '"<string>"' not in line
    ]
    trace = []
    for index in frames[-3:]:
        trace.append(lines[index].strip())
        if index + 1 < len(lines) and lines[index + 1].startswith("    "):
            trace.append("  " + lines[index + 1].strip())
    return trace


def _forget_bytecode(paths: set[str]) -> None:
    """Delete the cached bytecode of changed source files, for every interpreter's tag.

    Python trusts a ``.pyc`` whose recorded source mtime (whole seconds) and size match: a save
    of the same size within the second of the last compile (a formatter right after a save, a
    one-character fix) would otherwise start the new app on the old code.
    """
    for path in paths:
        folder, name = os.path.split(path)
        stem, extension = os.path.splitext(name)
        if extension != ".py":
            continue
        cache = os.path.join(folder, "__pycache__")
        try:
            cached = [entry for entry in os.listdir(cache) if entry.startswith(stem + ".")]
        except OSError:  # no cache beside it
            continue
        for entry in cached:
            if entry.endswith(".pyc"):  # <stem>.<tag>[.opt-N].pyc
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(cache, entry))
