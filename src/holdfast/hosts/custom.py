"""``holdfast run``'s host, the custom runtime: ``next → handle → post response → drain → next``.

Each worker owns one :class:`RuntimeClient` (one kept-alive connection) and handles one
invocation at a time; ``AWS_LAMBDA_MAX_CONCURRENCY`` workers share the environment's one event
loop. The order inside an invocation is the product's promise: the response (or error) is posted
*first*, so the caller has its answer, and only once the invocation's after-response work has
drained does the worker call ``/next`` again, which is what lets Lambda freeze the environment.
When nothing at all is owed after a buffered response, the ``/next`` goes out in the same write
as the response, saving the round trip in between.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from holdfast import pending as _pending
from holdfast.adapter import Adapter
from holdfast.engine import running_loop
from holdfast.hosts import shutdown
from holdfast.invocation import Invocation
from holdfast.outcome import Failed, Outcome, Streamed
from holdfast.pending import PendingWork, drain_budget
from holdfast.runtime.client import (
    InvocationRequest,
    ResponseStream,
    RuntimeAPIError,
    RuntimeClient,
)
from holdfast.runtime.context import ContextError, FunctionInfo, RuntimeContext, enter_invocation
from holdfast.runtime.loader import Target
from holdfast.runtime.report import ErrorReport, error_category

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger("holdfast")


class CustomRuntime:
    """Runs ``target`` against the Runtime API at ``address`` until the process ends."""

    def __init__(
        self,
        target: Target,
        address: str,
        *,
        concurrency: int = 1,
        streaming: bool = False,
        snapstart: bool = False,
        function: FunctionInfo | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.target = target
        self.address = address
        self.concurrency = concurrency
        self.streaming = streaming
        self.snapstart = snapstart
        self.function = function or FunctionInfo.from_environ()
        self._handler_is_async = target.is_async
        # Sync handlers with concurrency > 1 run in threads, one per worker.
        self._executor: ThreadPoolExecutor | None = None
        self._workers: list[asyncio.Task[None]] = []
        # Workers waiting in /next (nothing in flight): SIGTERM cancels them at once.
        self._idle: set[asyncio.Task[Any]] = set()
        self._winding_down: asyncio.Task[None] | None = None

    async def run(self) -> int:
        """Serve invocations; returns the process exit status when the runtime must stop.

        :meth:`terminate` (SIGTERM) ends it: the exit status is then 0.
        """
        clients = [RuntimeClient(self.address) for _ in range(self.concurrency)]
        loop = asyncio.get_running_loop()
        if self.target.adapter is not None:
            await self.target.adapter.startup()  # at init, if the loader has not run it yet
        withdraw = shutdown.handle(functools.partial(loop.call_soon_threadsafe, self.terminate))
        # Extensions register during init, before the first /next (or the snapshot); the
        # workers' connections open meanwhile, saving their round trip on the cold start.
        shutdown_extension = None
        if self._wants_sigterm:
            opening = asyncio.gather(*(client.open() for client in clients))
            shutdown_extension = await shutdown.earn(self.address)
            await opening
        try:
            if self.snapstart:
                from holdfast.runtime import snapstart  # only then: saves cold-start time

                status = await snapstart.snapshot_and_restore(clients[0])
                if status:
                    return status
            self._workers = [loop.create_task(self._work(client)) for client in clients]
            await asyncio.wait(self._workers, return_when=asyncio.FIRST_EXCEPTION)
            if self._winding_down is not None:
                await self._winding_down
        finally:
            withdraw()
            for task in [*self._workers, shutdown_extension]:
                if task is not None:
                    task.cancel()
            for client in clients:
                await client.close()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
        if self._winding_down is not None:
            return 0
        return _exit_status(self._workers)

    def terminate(self) -> None:
        """SIGTERM: take no more invocations, let those in flight finish (answer and drain),
        then run lifespan shutdown, within the one shutdown budget. Call on the loop."""
        if self._winding_down is not None:
            return
        busy: list[asyncio.Future[Any]] = [w for w in self._workers if w not in self._idle]
        for worker in self._idle:
            worker.cancel()
        adapter = self.target.adapter
        budget = shutdown.Budget(lifespan=adapter is not None)
        winding_down = shutdown.wind_down(adapter, budget, busy)
        self._winding_down = asyncio.get_running_loop().create_task(winding_down)

    @property
    def _wants_sigterm(self) -> bool:
        """Whether SIGTERM is worth earning: lifespan shutdown to run, or invocations that may
        be in flight when it comes (with several at once, nothing waits for a freeze)."""
        adapter = self.target.adapter
        return self.concurrency > 1 or (adapter is not None and adapter.lifespan.supported)

    # -- one worker -----------------------------------------------------------------------------
    async def _work(self, client: RuntimeClient) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while self._winding_down is None:
            self._idle.add(worker)
            try:
                request = await client.next()
            finally:
                self._idle.discard(worker)
            try:
                await self._invoke(client, request)
            except RuntimeAPIError:
                raise  # a 5xx: the sandbox is gone
            except Exception as exc:
                # A bug, not the function's failure: report it rather than leave Lambda waiting
                # for an answer until the timeout. The connection may be mid-request: renew it.
                logger.exception("request %s: the runtime failed", request.request_id)
                if client.next_sent:
                    continue  # answered already, /next right behind: nothing left to report
                await client.close()
                report = ErrorReport.from_exception(exc, "Runtime")
                await Reply(client, request).error(report)

    async def _invoke(self, client: RuntimeClient, request: InvocationRequest) -> None:
        enter_invocation(request, process_wide=self.concurrency == 1)
        reply = Reply(client, request)
        try:
            context = RuntimeContext(request, self.function)
            event = _unmarshal(request)
        except ContextError as exc:
            await reply.error(ErrorReport.runtime("LambdaContextUnmarshalError", str(exc)))
            return
        except ValueError as exc:
            message = f"Unable to unmarshal input: {exc}"
            await reply.error(ErrorReport.runtime("UnmarshalError", message))
            return
        if self.target.adapter is not None:
            await self._invoke_app(self.target.adapter, reply, event, context)
        else:
            await self._invoke_handler(reply, event, context)

    # -- an ASGI/WSGI app through the adapter -------------------------------------------------
    async def _invoke_app(
        self, adapter: Adapter, reply: Reply, event: Any, context: RuntimeContext
    ) -> None:
        invocation = adapter.begin(event, context, streaming=self.streaming)
        outcome = await invocation.outcome()
        # The post returns once the API has answered it: the API has the response before any
        # after-response code can take the CPU (reading the 202 later would race that work).
        await reply.post(_deliver(reply, invocation, outcome))
        invocation.handed_over()  # the app's code after its last body chunk runs from here on
        await invocation.drain(adapter.drain_timeout(context))

    # -- a plain handler(event, context) -----------------------------------------------------
    async def _invoke_handler(self, reply: Reply, event: Any, context: RuntimeContext) -> None:
        request_id = reply.request_id
        pending = PendingWork(request_id, asyncio.get_running_loop())
        try:
            result = await self._call_handler(pending, event, context)
            body, content_type = _marshal(result)
        except Exception as exc:
            logger.error("request %s: the handler raised", request_id, exc_info=exc)
            await reply.error(_handler_error(exc))
        else:
            # Nothing owed after the response: /next can go out with it.
            await reply.respond(body, content_type, then_next=not pending)
        await pending.drain(drain_budget(context))

    async def _call_handler(self, pending: PendingWork, event: Any, context: RuntimeContext) -> Any:
        handler = self.target.handler
        assert handler is not None
        token = _pending.bind(pending)  # after_response() works in plain handlers too
        try:
            if self._handler_is_async:
                return await handler(event, context)
            if self.concurrency == 1:
                return _call_outside_loop(handler, event, context)
            # Several at once: threads, so one handler's blocking does not hold up the others.
            if self._executor is None:
                # Imported only then: the thread pool's modules cost cold-start time.
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(self.concurrency, "holdfast-handler")
            call = contextvars.copy_context().run
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, call, handler, event, context)
        finally:
            _pending.unbind(token)


class Reply:
    """Where one invocation's answer goes: its ``/response`` or ``/error``, with its
    ``Lambda-Runtime-Invocation-Id`` echoed. Every post goes through :meth:`post`."""

    __slots__ = ("_client", "_request")

    def __init__(self, client: RuntimeClient, request: InvocationRequest) -> None:
        self._client = client
        self._request = request

    @property
    def request_id(self) -> str:
        return self._request.request_id

    async def respond(
        self, body: bytes, content_type: str = "application/json", *, then_next: bool = False
    ) -> None:
        request = self._request
        await self.post(
            self._client.respond(
                request.request_id,
                body,
                content_type,
                invocation_id=request.invocation_id,
                then_next=then_next,
            )
        )

    async def error(self, report: ErrorReport) -> None:
        request = self._request
        call = self._client.error(request.request_id, report, invocation_id=request.invocation_id)
        await self.post(call)

    def stream(self, content_type: str) -> ResponseStream:
        request = self._request
        return self._client.stream(
            request.request_id, content_type, invocation_id=request.invocation_id
        )

    async def post(self, call: Awaitable[None]) -> None:
        """Await a post to the Runtime API; only a 5xx (the sandbox is gone) stops the runtime.

        A 410 Gone means the invocation already ended (it timed out, and Lambda answered the
        caller with the timeout): the result is dropped, never carried into a later invocation.
        """
        try:
            await call
        except RuntimeAPIError as exc:
            if exc.status >= 500:
                raise
            if exc.gone:
                logger.warning(
                    "request %s: the invocation timed out before its result was posted;"
                    " the result is dropped",
                    self.request_id,
                )
            else:
                logger.error("request %s: the Runtime API refused a post: %s", self.request_id, exc)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # The worker reconnects for its next /next; if the API is gone for good, that fails.
            logger.error("lost the Runtime API connection while posting: %r", exc)


async def _deliver(reply: Reply, invocation: Invocation, outcome: Outcome) -> None:
    """Post the outcome: a JSON document, a streamed HTTP response, or a function error."""
    if isinstance(outcome, Failed):
        if outcome.error is not None:
            report = ErrorReport.from_exception(outcome.error)
        else:
            category = error_category("Function", outcome.error_type)
            report = ErrorReport(outcome.error_type, outcome.message, category)
        logger.error("request %s: %s: %s", reply.request_id, outcome.error_type, outcome.message)
        await reply.error(report)
    elif isinstance(outcome, Streamed):
        from holdfast.runtime.streaming import CONTENT_TYPE, stream

        await stream(reply.stream(CONTENT_TYPE), outcome)
    else:
        try:
            body, content_type = _marshal(outcome.payload)
        except _MarshalError as exc:
            await reply.error(_handler_error(exc))
            return
        # Nothing owed after the response (no app coroutine left, no after-response work, no
        # final callback): /next can go out in the same write.
        await reply.respond(body, content_type, then_next=invocation.idle)


def _unmarshal(request: InvocationRequest) -> Any:
    # As AWS's runtime: only JSON is parsed, any other payload reaches the handler as bytes.
    if request.content_type.split(";", 1)[0].strip() != "application/json":
        return request.body
    return json.loads(request.body)


def _marshal(result: Any) -> tuple[bytes, str]:
    if isinstance(result, bytes):
        return result, "application/unknown"
    try:
        return json.dumps(result, default=_json_default).encode(), "application/json"
    except (TypeError, ValueError) as exc:
        raise _MarshalError(f"Unable to marshal response: {exc}") from None


class _MarshalError(Exception):
    pass


def _handler_error(exc: Exception) -> ErrorReport:
    if isinstance(exc, _MarshalError):
        return ErrorReport.runtime("MarshalError", str(exc))
    return ErrorReport.from_exception(exc)


def _json_default(value: Any) -> Any:
    # DynamoDB hands out Decimals; AWS's runtime serialises them as numbers. (decimal is
    # imported here, not at start-up: its import costs 5 ms of cold start.)
    import decimal

    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _call_outside_loop(handler: Any, event: Any, context: RuntimeContext) -> Any:
    """Call a sync handler in this thread as if no loop were running.

    Sync handlers often drive asyncio themselves (``asyncio.run``, Mangum), which a running loop
    forbids. With one worker nothing else may run meanwhile anyway (the managed runtime blocks the
    same way), and calling in place saves the thread hop.
    """
    running = running_loop()
    asyncio._set_running_loop(None)
    try:
        return handler(event, context)
    finally:
        asyncio._set_running_loop(running)


def _exit_status(workers: list[asyncio.Task[None]]) -> int:
    for worker in workers:
        if worker.done() and not worker.cancelled() and worker.exception() is not None:
            exc = worker.exception()
            logger.error("the runtime stops: %s", exc, exc_info=exc)
            return 1
    return 0
