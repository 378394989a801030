"""A fake Lambda Runtime API for protocol-level tests: it queues events and records requests.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length and chunked bodies with trailers) and
answers as RAPID does. Everything it sees lands in ``requests`` and, in order, in ``log``;
``connection`` numbers tell kept-alive connections apart. Run it on the test's own loop, or in a
thread with :class:`ThreadedFake` when the runtime is a separate process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

API = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int
    trailers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Event:
    request_id: str
    payload: bytes
    headers: dict[str, str]


class FakeRuntimeAPI:
    """The Runtime API of one environment; events are handed to ``/next`` callers in order."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.log: list[str] = []
        #: Answer the next ``/next`` calls with these statuses instead of an event.
        self.next_failures: list[int] = []
        #: Answer the next posts (responses, errors) with these statuses instead of 202.
        self.post_failures: list[int] = []
        #: Close the connection after answering this many more requests.
        self.close_after: int | None = None
        self.snapstart = False
        self.dispatched = 0
        self.extensions: list[str] = []
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._connections = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.address = ""
        self._watched: asyncio.Task[Any] | None = None
        #: Called with each log entry the moment it is made (to snapshot other state then).
        self.observers: list[Callable[[str], None]] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- what tests drive -----------------------------------------------------------------
    def add_event(
        self,
        payload: Any,
        *,
        request_id: str | None = None,
        deadline_ms: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        request_id = request_id or str(uuid.uuid4())
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        all_headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms or 4102444800000),  # year 2100
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
            "Content-Type": "application/json",
            **(headers or {}),
        }
        self._events.put_nowait(Event(request_id, body, all_headers))
        return request_id

    def find(self, method: str, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def result(self, request_id: str) -> Recorded | None:
        for request in self.requests:
            if request.complete and request.path.startswith(f"{API}/invocation/{request_id}/"):
                return request
        return None

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Make :meth:`wait_for` fail instead of hanging once ``task`` (the runtime) ends."""
        self._watched = task
        task.add_done_callback(lambda _: self._changed.set())

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            task = self._watched
            if task is not None and task.done():
                outcome = task.exception() if not task.cancelled() else "cancelled"
                raise AssertionError(f"the runtime ended ({outcome or task.result()})")
            self._changed.clear()
            # Also re-check now and then: predicates may watch state the fake does not see.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.02)

    async def wait_result(self, request_id: str) -> Recorded:
        await self.wait_for(lambda: self.result(request_id) is not None)
        result = self.result(request_id)
        assert result is not None
        return result

    def idle(self, workers: int = 1) -> bool:
        """Every event dispatched so far is finished: each worker is back in ``/next``."""
        return self._events.empty() and self.nexts() == self.dispatched + workers

    def nexts(self) -> int:
        return len(self.find("GET", "/invocation/next"))

    async def _read_body(self, reader: asyncio.StreamReader, request: Recorded) -> None:
        if request.headers.get("transfer-encoding", "").lower() != "chunked":
            request.body = await reader.readexactly(int(request.headers.get("content-length", "0")))
            return
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            request.chunks.append((await reader.readexactly(size + 2))[:-2])
            self._note(f"chunk {request.chunks[-1]!r}")
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            request.trailers[name.strip().lower()] = value.strip()
        request.body = b"".join(request.chunks)

    def _note(self, entry: str) -> None:
        self.log.append(entry)
        for observer in self.observers:
            observer(entry)
        self._changed.set()

    # -- HTTP ---------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(self._connections)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    request = await _read_head(reader, connection)
                    self.requests.append(request)
                    self._note(f"{request.method} {request.path}")
                    await self._read_body(reader, request)
                    request.complete = True
                    self._note(f"end {request.method} {request.path}")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.CancelledError:
                    return  # close(): end quietly (asyncio logs cancelled handler tasks)
                try:
                    status, headers, body = await self._answer(request)
                except asyncio.CancelledError:
                    return
                _write_response(writer, status, headers, body)
                await writer.drain()
                if self.close_after is not None:
                    self.close_after -= 1
                    if self.close_after <= 0:
                        self.close_after = None
                        return
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        if request.method == "GET" and request.path == f"{API}/invocation/next":
            if self.next_failures:
                status = self.next_failures.pop(0)
                return status, {}, _error("Sandbox.Failure", "injected failure")
            event = await self._events.get()
            self.dispatched += 1
            return 200, event.headers, event.payload
        if request.method == "GET" and request.path == f"{API}/restore/next":
            if not self.snapstart:
                return 403, {}, _error("InvalidStateTransition", "SnapStart is not enabled")
            return 200, {}, b""
        if request.method == "POST" and request.path == "/2020-01-01/extension/register":
            self.extensions.append(request.headers["lambda-extension-name"])
            return 200, {"Lambda-Extension-Identifier": str(uuid.uuid4())}, b"{}"
        if request.method == "GET" and request.path == "/2020-01-01/extension/event/next":
            await asyncio.Event().wait()  # subscribed to nothing: no event ever comes
        if request.method == "POST" and self.post_failures:
            status = self.post_failures.pop(0)
            return status, {}, _error("RequestEntityTooLarge", "injected refusal")
        if request.method == "POST":
            return 202, {"Content-Type": "application/json"}, b'{"status":"OK"}'
        return 404, {}, _error("NotFound", request.path)


class ThreadedFake:
    """A :class:`FakeRuntimeAPI` on its own loop in a thread, for runtimes in a subprocess."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.api: FakeRuntimeAPI
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedFake:
        self._thread.start()
        self.api = self.call(_make_fake)
        self.call(self.api.start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.call(self.api.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30, **kwargs: Any) -> Any:
        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


async def _make_fake() -> FakeRuntimeAPI:
    return FakeRuntimeAPI()  # created on the fake's loop


async def _read_head(reader: asyncio.StreamReader, connection: int) -> Recorded:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    method, path, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return Recorded(method, path, headers, b"", connection)


def _write_response(
    writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes
) -> None:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()
