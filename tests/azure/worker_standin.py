"""A stand-in for the Azure Functions host + Python worker around one function.

No Functions host binary runs here, and the Python worker with HTTP streaming is not on PyPI
for Python 3.11 (`azure-functions-runtime` needs 3.13). So the tests drive the parts that are
real and replace the rest with the worker's protocol, line for line:

* streaming mode: the **real** web server of `azurefunctions-extensions-http-fastapi`
  (its `WebApp` + `WebServer`, i.e. FastAPI on uvicorn) with the worker's catch-all route, and
  an `HttpCoordinator` with the worker's four calls, installed where the workers keep it
  (`azure_functions_worker.http_v2.http_coordinator`); an invocation is what the worker's
  dispatcher does (`_handle__invocation_request` in azure_functions_worker/dispatcher.py):
  wait for the proxied request, call the function, hand its return value to the coordinator,
  then report the invocation done — while the "host" proxies the client's request to the web
  server with the `x-ms-invocation-id` header, as the host's HTTP proxy does;
* classic mode: an `azure.functions.HttpRequest` in, the function's `HttpResponse` out (what
  Microsoft documents for unit tests), the response reaching the client when the function
  returns, as the host sends it.

Each call records when the client had the whole response and when the invocation ended.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import httpx

X_MS_INVOCATION_ID = "x-ms-invocation-id"


class HttpCoordinator:
    """The worker's HTTP streaming coordinator (azure_functions_worker/http_v2.py)."""

    def __init__(self) -> None:
        self._requests: dict[str, asyncio.Future[Any]] = {}
        self._responses: dict[str, asyncio.Future[Any]] = {}

    def _slot(self, table: dict[str, asyncio.Future[Any]], key: str) -> asyncio.Future[Any]:
        if key not in table:
            table[key] = asyncio.get_running_loop().create_future()
        return table[key]

    def set_http_request(self, invocation_id: str, request: Any) -> None:
        self._slot(self._requests, invocation_id).set_result(request)

    async def get_http_request_async(self, invocation_id: str) -> Any:
        return await self._slot(self._requests, invocation_id)

    def set_http_response(self, invocation_id: str, response: Any) -> None:
        # As the worker's: a second call (the dispatcher's, after an early hand-off) only
        # replaces a value nobody waits for any more.
        slot = self._slot(self._responses, invocation_id)
        if not slot.done():
            slot.set_result(response)

    async def await_http_response_async(self, invocation_id: str) -> Any:
        return await self._slot(self._responses, invocation_id)


@dataclass
class Call:
    status: int
    headers: dict[str, str]
    body: bytes
    started: float
    responded: float  # the client had the whole response
    ended: float = 0.0  # the invocation was reported done
    error: BaseException | None = None
    invocation_id: str = ""
    set_cookies: list[str] = field(default_factory=list)

    @property
    def latency(self) -> float:
        return self.responded - self.started


class Context:
    """The worker's `azure.functions.Context` for one invocation."""

    def __init__(self, invocation_id: str, function_name: str) -> None:
        self.invocation_id = invocation_id
        self.function_name = function_name
        self.function_directory = "/home/site/wwwroot"
        self.trace_context = None
        self.retry_context = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_indexed: dict[int, list[Any]] = {}


def index(app: Any) -> list[Any]:
    """The app's functions, indexed once as the worker does (get_functions builds them anew,
    and refuses to do it twice)."""
    functions = _indexed.get(id(app))
    if functions is None:
        functions = _indexed[id(app)] = app.get_functions()
    return functions


def _function(app: Any, name: str | None = None) -> Any:
    functions = index(app)
    chosen = [f for f in functions if name is None or f.get_function_name() == name]
    return chosen[0].get_user_function()


class StreamingWorker:
    """The HTTP streaming worker: the extension's real web server plus the coordinator."""

    def __init__(self, *, install_coordinator: bool = True) -> None:
        self.coordinator = HttpCoordinator()
        self.install_coordinator = install_coordinator
        self.port = 0
        #: Called when the client has the whole response, and when the invocation ends.
        self.on_response: Callable[[], object] | None = None
        self.on_end: Callable[[], object] | None = None
        #: With an app set, a request from an outside client starts its own invocation.
        self.serving: Any = None
        self.ended: dict[str, float] = {}
        self._invocations: set[asyncio.Task[None]] = set()

    def _start(self, app: Any, invocation_id: str) -> asyncio.Task[None]:
        self.ended[invocation_id] = 0.0
        context = Context(invocation_id, "http_app_func")
        task = asyncio.create_task(self._invoke(_function(app), invocation_id, context))
        self._invocations.add(task)
        task.add_done_callback(self._invocations.discard)
        return task
        self._server: asyncio.Task[Any] | None = None
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> StreamingWorker:
        from azurefunctions.extensions.http.fastapi import Request, WebApp, WebServer

        if self.install_coordinator:  # where the workers keep it
            module = types.ModuleType("azure_functions_worker.http_v2")
            module.http_coordinator = self.coordinator  # type: ignore[attr-defined]
            sys.modules["azure_functions_worker.http_v2"] = module
        coordinator = self.coordinator
        web_app = WebApp()

        async def catch_all(request: Request):  # type: ignore[valid-type]
            invocation_id = request.headers.get(X_MS_INVOCATION_ID)
            if self.serving is not None and invocation_id not in self.ended:
                # The host sends the invocation (gRPC) along with the proxied request.
                self._start(self.serving, invocation_id)
            coordinator.set_http_request(invocation_id, request)
            response = await coordinator.await_http_response_async(invocation_id)
            if isinstance(response, Exception):
                raise response
            return response

        # FastAPI reads the parameter's type from the annotation: a real class, not a string.
        catch_all.__annotations__["request"] = Request
        web_app.route(catch_all)
        self.port = _free_port()
        server = WebServer("127.0.0.1", self.port, web_app)
        self._server = asyncio.create_task(server.serve())
        self._client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 10
        while True:  # until the server accepts connections
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._client is not None and self._server is not None
        await self._client.aclose()
        self._server.cancel()
        try:
            await self._server
        except (asyncio.CancelledError, Exception):
            pass
        sys.modules.pop("azure_functions_worker.http_v2", None)

    async def call(
        self,
        app: Any,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Call:
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        invocation = self._start(app, invocation_id)
        assert self._client is not None
        try:
            response = await self._client.request(
                method,
                path,
                headers={**(headers or {}), X_MS_INVOCATION_ID: invocation_id},
                content=body,
            )
            responded = time.perf_counter()
            if self.on_response is not None:
                self.on_response()
            call = Call(
                response.status_code,
                dict(response.headers),
                response.content,
                started,
                responded,
                invocation_id=invocation_id,
                set_cookies=response.headers.get_list("set-cookie"),
            )
        except httpx.HTTPError as exc:
            call = Call(0, {}, b"", started, time.perf_counter(), error=exc)
        try:
            await invocation
        except Exception as exc:  # the invocation failed: what the host reports
            call.error = exc
        call.ended = self.ended[invocation_id]
        return call

    async def _invoke(self, user_function: Any, invocation_id: str, context: Context) -> None:
        try:
            request = await self.coordinator.get_http_request_async(invocation_id)
            try:
                result = await user_function(request, context)
            except Exception as exc:
                self.coordinator.set_http_response(invocation_id, exc)
                raise
            self.coordinator.set_http_response(invocation_id, result)
        finally:
            self.ended[invocation_id] = time.perf_counter()
            if self.on_end is not None:
                self.on_end()


class ClassicWorker:
    """The classic model: `azure.functions.HttpRequest` in, `HttpResponse` out."""

    async def call(
        self,
        app: Any,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        function: str | None = None,
    ) -> Call:
        user_function = _function(app, function)
        invocation_id = str(uuid.uuid4())
        request = func.HttpRequest(
            method,
            f"https://shop.azurewebsites.net{path}",
            headers={"host": "shop.azurewebsites.net", **(headers or {})},
            body=body,
        )
        started = time.perf_counter()
        try:
            response = await user_function(request, Context(invocation_id, "http_app_func"))
        except Exception as exc:
            now = time.perf_counter()
            return Call(500, {}, b"", started, now, now, error=exc)
        now = time.perf_counter()
        return Call(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()}
            | {"content-type": response.mimetype},
            response.get_body(),
            started,
            now,
            now,
            invocation_id=invocation_id,
            set_cookies=response.headers.getlist("Set-Cookie"),
        )
