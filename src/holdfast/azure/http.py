"""Serving one Azure HTTP invocation through the adapter, in either of the worker's two modes.

**Streaming** (the `azurefunctions-extensions-http-fastapi` extension is installed: the
worker's "HTTP streaming", host 4.34.1+): the host proxies the client's request to a web server
inside the worker and the function's *return value* becomes that server's response, so a
function that returns late answers late. holdfast hands the response to the worker's HTTP
coordinator itself, as soon as the app's head is ready (`HttpCoordinator.set_http_response`,
the call the worker makes with the return value; `azure_functions_worker` 4.34+ and
`azure_functions_runtime` share it), streams the body through it, and only then — the client
has the whole response — lets the app's final `send` return and drains the after-response
work. The function returns after the drain, so the invocation (what the host counts, what a
Flex Consumption drain waits for, what `functionTimeout` bounds) covers the work. Should the
coordinator not be found (an unknown worker), the response is returned at once and the work
drains behind its last byte, still in the worker but outside the invocation: logged once.

**Classic** (`azure.functions.HttpRequest` → `HttpResponse`): the host sends nothing before
the function returns its `HttpResponse`, so after-response work can only run before the
return (the response waits for it, as under `AsgiFunctionApp`) or after it, outside any
invocation. holdfast keeps the guarantee and drains before returning; use the streaming mode
for an immediate response.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from holdfast.adapter import Adapter
from holdfast.azure.loop import AdapterLoop
from holdfast.azure.requests import InvocationContext, http_event
from holdfast.errors import HTTPStatusError
from holdfast.invocation import Invocation
from holdfast.outcome import Buffered, Failed, Outcome, Streamed

logger = logging.getLogger("holdfast")

#: Where the Python workers keep their HTTP streaming coordinator.
_COORDINATOR_MODULES = ("azure_functions_runtime.http_v2", "azure_functions_worker.http_v2")
_warned_no_coordinator = False


def worker_coordinator() -> Any:
    """The worker's `http_coordinator`, if this process runs in an Azure Python worker."""
    for name in _COORDINATOR_MODULES:
        module = sys.modules.get(name)
        coordinator = getattr(module, "http_coordinator", None)
        if coordinator is not None and hasattr(coordinator, "set_http_response"):
            return coordinator
    return None


async def _begin(
    adapter: Adapter, event: dict[str, Any], context: InvocationContext, streaming: bool
) -> tuple[Invocation, Outcome]:
    invocation = adapter.begin(event, context, streaming=streaming)
    return invocation, await invocation.outcome()


async def _finish(adapter: Adapter, invocation: Invocation) -> None:
    invocation.handed_over()
    await invocation.drain(adapter.drain_timeout(invocation.context))


async def _next_chunk(body: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await body.__anext__()
    except StopAsyncIteration:
        return None


# -- classic: azure.functions.HttpRequest → HttpResponse ------------------------------------------
async def serve_classic(
    runner: AdapterLoop, request: Any, context: InvocationContext, route_prefix: str
) -> Any:
    """Answer an `azure.functions.HttpRequest` with an `azure.functions.HttpResponse`."""
    import azure.functions as func

    event = http_event(
        request.method,
        request.url,
        request.headers.items(),
        request.get_body(),
        route_prefix=route_prefix,
        invocation_id=context.invocation_id,
    )
    adapter = runner.adapter
    invocation, outcome = await runner.run(_begin(adapter, event, context, False))
    await runner.run(_finish(adapter, invocation))
    if isinstance(outcome, Failed):
        raise outcome.error or RuntimeError(outcome.message)
    assert isinstance(outcome, Buffered)
    payload = outcome.payload
    content_type = next((v for k, v in payload["headers"] if k == "content-type"), None)
    response = func.HttpResponse(
        payload["body"], status_code=payload["status"], mimetype=content_type
    )
    for name, value in payload["headers"]:
        if name != "content-type":
            response.headers.add_header(name, value)
    return response


# -- streaming: the HTTP streaming extension's FastAPI request → a response it serves --------------
async def serve_streaming(
    runner: AdapterLoop, request: Any, context: InvocationContext, route_prefix: str
) -> Any:
    """Answer the extension's (FastAPI) request; see the module docs for the order of events."""
    scope = request.scope
    path = scope.get("raw_path") or request.url.path.encode()
    query = scope.get("query_string") or b""
    url = path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    event = http_event(
        request.method,
        f"{request.url.scheme}://{request.url.netloc}{url}",
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
        await request.body(),
        route_prefix=route_prefix,
        invocation_id=context.invocation_id,
    )
    adapter = runner.adapter
    invocation, outcome = await runner.run(_begin(adapter, event, context, True))
    coordinator = worker_coordinator()
    failure: BaseException | None = None
    if isinstance(outcome, Failed):
        failure = outcome.error or RuntimeError(outcome.message)
        if not isinstance(failure, HTTPStatusError):
            await runner.run(_finish(adapter, invocation))
            raise failure  # the worker answers 500 and reports the failure
    delivered = asyncio.Event()
    response = _response(outcome, runner, delivered.set)
    if coordinator is None:
        _warn_no_coordinator()
        response.after_sent = lambda: runner.run(_finish(adapter, invocation))
        return response
    coordinator.set_http_response(context.invocation_id, response)
    await delivered.wait()
    await runner.run(_finish(adapter, invocation))
    if failure is not None:
        # The client has the app's answer; the failed execution is what Azure monitors.
        raise failure
    return response


def _warn_no_coordinator() -> None:
    global _warned_no_coordinator
    if not _warned_no_coordinator:
        _warned_no_coordinator = True
        logger.warning(
            "holdfast.azure: no Azure Functions HTTP streaming coordinator in this process;"
            " after-response work runs behind the response, outside the invocation"
        )


def _response(outcome: Outcome, runner: AdapterLoop, delivered: Callable[[], None]) -> Any:
    from holdfast.azure.delivery import DeliveredResponse

    if isinstance(outcome, Streamed):
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers.items()]
        headers += [(b"set-cookie", cookie.encode("latin-1")) for cookie in outcome.cookies]
        body = outcome.body

        async def chunks() -> AsyncIterator[bytes]:
            while (chunk := await runner.run(_next_chunk(body))) is not None:
                yield chunk

        return DeliveredResponse(outcome.status, headers, chunks(), delivered)
    assert isinstance(outcome, Failed) and isinstance(outcome.error, HTTPStatusError)
    error = outcome.error
    text = error.body.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
    ]

    async def one() -> AsyncIterator[bytes]:
        yield text

    return DeliveredResponse(error.status_code, headers, one(), delivered)
