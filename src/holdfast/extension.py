"""The managed-runtime host: after-response work under AWS's Python runtime (awslambdaric).

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

**Several at once** (Lambda Managed Instances, ``AWS_LAMBDA_MAX_CONCURRENCY`` set): awslambdaric
forks one worker process per slot, each importing the handler; nothing is frozen between
invocations and an extension cannot be registered from several workers. :class:`ConcurrentHost`
drains each handed-over invocation in a thread of the worker instead, and on SIGTERM (sent to the
worker, or passed on when awslambdaric's parent process dies of it) finishes what is in flight.

Both hosts talk to Lambda through :class:`holdfast.runtime.client.RuntimeClient` and end through
:mod:`holdfast.runtime.sigterm`, the runtime's one SIGTERM path and shutdown budget.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from holdfast import pending

if TYPE_CHECKING:
    from holdfast.adapter import Adapter, Invocation
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

    def __init__(self, adapter: Adapter, runtime_api: str) -> None:
        #: Every adapter of the process (a module may build several): one extension serves all.
        self.adapters = [adapter]
        self._address = runtime_api
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
        from holdfast.runtime import sigterm

        sigterm.handle(self._on_sigterm)
        sigterm.watch()
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
        host = _listener_address()
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
            await self._loop.run_in_executor(None, _drain, invocation, timeout)

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
    def _on_sigterm(self) -> None:
        _shut_down(self.adapters)


class ConcurrentHost:
    """Lambda Managed Instances under awslambdaric: one forked worker process per slot, no
    freeze, no extension. Handed-over invocations drain in a thread of the worker; SIGTERM
    finishes them (within the shutdown budget) and runs lifespan shutdown."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapters = [adapter]
        self._queue: queue.SimpleQueue[Invocation | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()

    def start(self) -> None:
        from holdfast.runtime import sigterm

        sigterm.handle(self._on_sigterm)
        sigterm.watch()
        _term_with_parent()
        threading.Thread(target=self._drain_forever, name="holdfast-drain", daemon=True).start()

    def hand_over(self, invocation: Invocation) -> None:
        if not invocation.idle:
            self._idle.clear()
            self._queue.put(invocation)

    def _drain_forever(self) -> None:
        while True:
            invocation = self._queue.get()
            if invocation is None:
                return
            _drain(invocation, invocation.adapter.drain_timeout(invocation.context))
            if self._queue.empty():
                self._idle.set()

    def _on_sigterm(self) -> None:
        from holdfast.runtime.sigterm import LIFESPAN_SHARE, SHUTDOWN_BUDGET

        # In-flight drains get the budget less lifespan shutdown's share; lifespan the rest.
        began = time.monotonic()
        self._idle.wait(SHUTDOWN_BUDGET * (1 - LIFESPAN_SHARE))
        _shut_down(self.adapters, SHUTDOWN_BUDGET - (time.monotonic() - began))


def _drain(invocation: Invocation, timeout: float | None) -> None:
    adapter = invocation.adapter
    try:
        # Stepping in the background: a handler called meanwhile (no freeze under Managed
        # Instances) steps the loop itself and never waits for this drain.
        adapter.engine.run_in_background(invocation.drain(timeout))
    except Exception:
        logger.exception("request %s: draining after-response work failed", invocation.request_id)


def _shut_down(adapters: list[Adapter], budget: float | None = None) -> None:
    """SIGTERM (in the sigterm thread): every adapter's lifespan shutdown within the budget,
    then end the process."""
    from holdfast.runtime import sigterm

    deadline = time.monotonic() + (sigterm.SHUTDOWN_BUDGET if budget is None else budget)
    try:
        for adapter in adapters:
            remaining = max(0.0, deadline - time.monotonic())
            adapter.engine.run(sigterm.wind_down(adapter, (), remaining))
    except Exception:
        logger.exception("shutdown failed")
    finally:
        pending.name_cut_threads("SIGTERM")
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def _term_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies.

    awslambdaric's multi-concurrent parent only waits for its workers: SIGTERM kills it by its
    default action and would leave the workers to the SIGKILL that follows. Linux only.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _listener_address() -> str:
    """Where the Telemetry API listener binds: the address ``sandbox.localdomain`` has inside a
    Lambda environment; loopback anywhere else (the emulator delivers there), without a DNS
    query that could stall the init."""
    if os.environ.get("AWS_EXECUTION_ENV", "").startswith("AWS_Lambda_"):
        try:
            return socket.gethostbyname(LISTENER_HOST)
        except OSError:
            pass
    return "127.0.0.1"


def start_for(adapter: Adapter) -> AfterResponseExtension | ConcurrentHost | None:
    """Start the host when ``adapter`` is the handler of a managed Lambda runtime.

    Hosts that drain pending work themselves (``holdfast run``) set ``HOLDFAST_HOST=runtime``;
    ``HOLDFAST_EXTENSION=off`` turns the host off (work then drains before the handler returns).
    """
    runtime_api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not runtime_api or os.environ.get("HOLDFAST_HOST") == "runtime":
        return None
    if os.environ.get("HOLDFAST_EXTENSION", "on").lower() in ("off", "0", "false"):
        return None
    global _host
    with _host_lock:
        host = _host
        if host is not None:
            # Another adapter of the same process: one extension (a second registration under
            # the same name would fail the init) and one SIGTERM path serve them all.
            host.adapters.append(adapter)
        elif os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY") is not None:
            # awslambdaric's multi-concurrent mode (it checks the variable's presence the same
            # way).
            host = _host = ConcurrentHost(adapter)
            host.start()
        else:
            extension = AfterResponseExtension(adapter, runtime_api)
            try:
                extension.start()
            except Exception as exc:
                # The app still answers: its after-response work then drains before the
                # handler returns (the response waits for it, as under Mangum).
                logger.warning(
                    "holdfast: the after-response extension could not register (%s);"
                    " after-response work delays each response instead",
                    exc,
                )
                return None
            host = _host = extension
    adapter.host = host.hand_over
    return host


_host: AfterResponseExtension | ConcurrentHost | None = None
_host_lock = threading.Lock()
