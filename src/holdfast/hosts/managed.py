"""The managed-runtime host: after-response work under AWS's Python runtime (awslambdaric).

Threads of this host (see docs/architecture.md for the drawing): awslambdaric's main thread
calls the handler; ``holdfast-extension`` runs the extension's own loop (Extensions API long
poll, Telemetry listener); ``holdfast-relay`` carries hand-overs to that loop; a thread of that
loop's default executor steps the adapter's loop to drain; ``holdfast-sigterm`` winds down.

With ``handler = holdfast.Adapter(app)`` the handler returns as soon as the response is ready and
awslambdaric posts it at once; the rest of the invocation's work is handed over here.

**One invocation at a time** (Lambda's default): Lambda freezes the environment only once the
runtime *and every extension subscribed to INVOKE* have asked for their next event, so an internal
extension (:class:`AfterResponseExtension`, a thread of this process, registered during init)
keeps the environment thawed exactly as long as a handed-over invocation's work needs. An
invocation the adapter never sees (a warmer answered by a wrapper, a second handler, Mangum on
some routes) gets no hand-over: the extension learns that the runtime is done with it from the
Telemetry API's ``platform.runtimeDone`` for its request id, and lets it end at once (without
that, it would be held until the function's timeout and the environment reset).

Several at once (Lambda Managed Instances) is :mod:`holdfast.hosts.instances`. The extension
talks to Lambda through :class:`holdfast.runtime.client.RuntimeClient` and ends through
:mod:`holdfast.hosts.shutdown`, the one SIGTERM path and shutdown budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from holdfast.hosts import shutdown

if TYPE_CHECKING:
    from holdfast.adapter import Adapter
    from holdfast.config import LambdaSettings
    from holdfast.invocation import Invocation
    from holdfast.runtime.client import RuntimeClient

logger = logging.getLogger("holdfast")

EXTENSION_NAME = "holdfast-after-response"
#: The Telemetry API destination host: Lambda resolves it inside the execution environment.
LISTENER_HOST = "sandbox.localdomain"
# Platform events only (no function logs: those would cost a copy of every line), delivered at
# Lambda's shortest buffering timeout so `platform.runtimeDone` arrives within ~25 ms.
_SUBSCRIPTION = {
    "schemaVersion": "2022-12-13",
    "types": ["platform"],
    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
}
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# How many request ids of `platform.runtimeDone` are remembered for an INVOKE not yet read.
_DONE_MEMORY = 1024


class AfterResponseExtension:
    """Drains each invocation's pending work before letting Lambda freeze the environment.

    Runs in a thread of its own with its own event loop: the Extensions API long poll, the
    Telemetry API listener and the hand-overs from the handler all meet there.
    """

    def __init__(self, adapter: Adapter, settings: LambdaSettings) -> None:
        assert settings.runtime_api is not None
        #: Every adapter of the process (a module may build several): one extension serves all.
        self.adapters = [adapter]
        self._settings = settings
        self._address = settings.runtime_api
        self._loop = asyncio.new_event_loop()
        self._handed_over: dict[str, Invocation] = {}
        self._runtime_done: OrderedDict[str, str] = OrderedDict()
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._client: RuntimeClient | None = None
        self._identifier = ""
        #: Whether the Telemetry API subscription stands (else a foreign invocation is held
        #: until its timeout).
        self.subscribed = False
        #: Invocations that ended on `platform.runtimeDone` without a hand-over.
        self.foreign = 0
        # Hand-overs reach the loop through a relay thread (see hand_over).
        self._relay = threading.Condition()
        self._relayed: dict[str, Invocation] = {}  # handed over, not yet seen by the loop
        self._relay_due = False

    # -- init ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Register and subscribe (this must happen before the runtime's first ``next``), then
        serve in the extension's thread. Raises when registration fails."""
        shutdown.handle(self.terminate)
        shutdown.watch()
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._run, args=(ready, failure), name="holdfast-extension", daemon=True
        )
        thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        threading.Thread(target=self._relay_forever, name="holdfast-relay", daemon=True).start()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._init())
        except BaseException as exc:
            failure.append(exc)
            return
        finally:
            ready.set()
        try:
            loop.run_until_complete(self._serve())
        except Exception:
            logger.exception("the after-response extension lost the Extensions API")

    async def _init(self) -> None:
        from holdfast.runtime.client import RuntimeClient

        self._client = client = RuntimeClient(self._address)
        self._identifier = await client.register_extension(EXTENSION_NAME, ["INVOKE"])
        try:
            await self._subscribe(client)
        except Exception as exc:
            logger.warning(
                "holdfast: no Telemetry API (%s): an invocation the adapter does not answer"
                " (a warmer, another handler) is held until the function's timeout",
                exc,
            )

    async def _subscribe(self, client: RuntimeClient) -> None:
        host = _listener_address(self._settings)
        server = await asyncio.start_server(self._receive_telemetry, host, 0)
        port = server.sockets[0].getsockname()[1]
        destination = {"protocol": "HTTP", "URI": f"http://{LISTENER_HOST}:{port}/telemetry"}
        try:
            await client.subscribe_telemetry(
                self._identifier, {**_SUBSCRIPTION, "destination": destination}
            )
        except BaseException:
            server.close()
            raise
        self.subscribed = True

    # -- invocations -----------------------------------------------------------------------------
    def hand_over(self, invocation: Invocation) -> None:
        """Called by the handler (in the runtime's thread) when its response is ready: the rest
        of the invocation is the extension's.

        No system call here: waking the extension's loop directly (a socket write) lets another
        thread take the GIL while the runtime has yet to post the response, and a drain that
        computes would then hold that post up. The relay thread wakes the loop once this thread
        lets go of the GIL (at the latest when the runtime blocks in its post).
        """
        with self._relay:
            self._relayed[invocation.request_id] = invocation
            self._relay_due = True
            self._relay.notify()

    def _relay_forever(self) -> None:
        while True:
            with self._relay:
                self._relay.wait_for(lambda: self._relay_due)
                self._relay_due = False
            self._loop.call_soon_threadsafe(self._take_relayed)

    def _take_relayed(self) -> None:
        """On the loop: the hand-overs so far become the loop's (they stay visible to it from
        the moment the handler made them: no runtimeDone can overtake one)."""
        with self._relay:
            invocations, self._relayed = self._relayed, {}
        for request_id, invocation in invocations.items():
            self._handed_over[request_id] = invocation
            self._wake(request_id)

    async def _serve(self) -> None:
        client = self._client
        assert client is not None
        while True:
            event = json.loads(await client.extension_next(self._identifier))
            if event.get("eventType") == "INVOKE":
                await self._finish(str(event.get("requestId")), event.get("deadlineMs"))

    async def _finish(self, request_id: str, deadline_ms: int | None) -> None:
        """Hold the invocation until it is handed over (then drain it) or the runtime is done
        with it without a hand-over."""
        self._take_relayed()
        if request_id not in self._handed_over and request_id not in self._runtime_done:
            waiter = self._waiters[request_id] = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiters.pop(request_id, None)
        self._runtime_done.pop(request_id, None)
        self._take_relayed()  # a hand-over still on its way is a hand-over all the same
        invocation = self._handed_over.pop(request_id, None)
        if invocation is None:
            self.foreign += 1
            logger.debug("request %s: answered without holdfast; ends now", request_id)
            return
        if not invocation.idle:
            timeout = self._drain_timeout(invocation, deadline_ms)
            await self._loop.run_in_executor(None, drain_in_background, invocation, timeout)

    def _drain_timeout(self, invocation: Invocation, deadline_ms: int | None) -> float | None:
        adapter = invocation.adapter
        timeout = adapter.drain_timeout(invocation.context)
        if timeout is None and deadline_ms:
            timeout = max(0.0, deadline_ms / 1000 - time.time() - adapter.drain_margin)
        return timeout

    # -- the Telemetry API -----------------------------------------------------------------------
    async def _receive_telemetry(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        from holdfast.runtime.client import parse_headers, read_body

        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = parse_headers(head.decode("latin-1").split("\r\n")[1:])
                body = await read_body(reader, headers, 200)
                closing = headers.get("connection", "").lower() == "close"
                writer.write(_CLOSE if closing else _OK)
                self._telemetry(body)
                if closing:
                    await writer.drain()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _telemetry(self, body: bytes) -> None:
        try:
            batch = json.loads(body)
        except ValueError:
            return
        for item in batch if isinstance(batch, list) else ():
            if not isinstance(item, dict) or item.get("type") != "platform.runtimeDone":
                continue
            record = item.get("record")
            if not isinstance(record, dict):
                continue
            request_id = record.get("requestId")
            if isinstance(request_id, str):
                self._runtime_done[request_id] = str(record.get("status", ""))
                while len(self._runtime_done) > _DONE_MEMORY:
                    self._runtime_done.popitem(last=False)
                self._wake(request_id)

    def _wake(self, request_id: str) -> None:
        waiter = self._waiters.get(request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- shutdown --------------------------------------------------------------------------------
    def terminate(self) -> None:
        """SIGTERM (in the watch thread): lifespan shutdown of every adapter, then exit. Nothing
        is in flight to wait for: the extension holds the freeze until each drain is done."""
        shutdown.shut_down(self.adapters, shutdown.Budget())


def drain_in_background(invocation: Invocation, timeout: float | None) -> None:
    adapter = invocation.adapter
    try:
        # Stepping in the background: a handler called meanwhile (no freeze under Managed
        # Instances) steps the loop itself and never waits for this drain.
        adapter.engine.run_in_background(invocation.drain(timeout))
    except Exception:
        logger.exception("request %s: draining after-response work failed", invocation.request_id)


def _listener_address(settings: LambdaSettings) -> str:
    """Where the Telemetry API listener binds: the address ``sandbox.localdomain`` has inside a
    Lambda environment; loopback anywhere else (the emulator delivers there), without a DNS
    query that could stall the init."""
    if settings.execution_env.startswith("AWS_Lambda_"):
        try:
            return socket.gethostbyname(LISTENER_HOST)
        except OSError:
            pass
    return "127.0.0.1"
