"""`holdfast.azure.FunctionApp`: an ASGI/WSGI app (or a `holdfast.Adapter`) as an Azure
Functions app, in `function_app.py` of the v2 programming model::

    import holdfast, holdfast.azure
    from shop.app import app, queue

    handler = holdfast.Adapter(app, error_status_codes="500-599")
    app = holdfast.azure.FunctionApp(handler, task_queues=[queue])

It is an `azure.functions.FunctionApp` (more triggers can be added with its decorators) with
one HTTP function on the catch-all route `{*route}` (below the host's `routePrefix`), and one
queue-trigger function per `azure://` task queue given.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

try:
    import azure.functions as func
except ImportError as exc:
    raise ImportError(
        "holdfast.azure needs azure-functions: pip install 'holdfast[azure]'"
    ) from exc

from holdfast.adapter import Adapter
from holdfast.azure.http import serve_classic, serve_streaming
from holdfast.azure.loop import AdapterLoop, loop_for
from holdfast.azure.requests import context_for

_STREAMING_EXTENSION = "azurefunctions.extensions.http.fastapi"
#: The Consumption plan's default `functionTimeout` (host.json), in seconds.
DEFAULT_FUNCTION_TIMEOUT = 300.0


def streaming_available() -> bool:
    """Whether the HTTP streaming extension (`azurefunctions-extensions-http-fastapi`) is
    installed, which is the worker's whole-app switch to HTTP streaming."""
    return importlib.util.find_spec("azurefunctions") is not None and (
        importlib.util.find_spec(_STREAMING_EXTENSION) is not None
    )


class FunctionApp(func.FunctionApp):
    """An Azure Functions app serving `handler` (a `holdfast.Adapter`, or an ASGI/WSGI app,
    wrapped in a default one) on every path and method.

    * `streaming`: serve through the worker's HTTP streaming (the response goes out at once,
      after-response work drains inside the invocation). Default: when the extension
      `azurefunctions-extensions-http-fastapi` is installed — importing it switches the whole
      worker to streaming, so this follows it.
    * `route_prefix`: the host's `extensions.http.routePrefix` (host.json; `api` by default):
      the app is mounted below it (`root_path`).
    * `function_timeout`: host.json's `functionTimeout` in seconds: the drain's deadline.
    * `task_queues`: `holdfast.tasks.TaskQueue`s on `azure://` URLs, each consumed by a queue
      trigger (`connection` names the app setting of the storage connection).
    """

    def __init__(
        self,
        handler: Any,
        *,
        http_auth_level: func.AuthLevel | str = func.AuthLevel.FUNCTION,
        function_name: str = "http_app_func",
        route_prefix: str = "api",
        function_timeout: float = DEFAULT_FUNCTION_TIMEOUT,
        streaming: bool | None = None,
        task_queues: Iterable[Any] = (),
        connection: str = "AzureWebJobsStorage",
    ) -> None:
        super().__init__(http_auth_level=http_auth_level)
        self.adapter = handler if isinstance(handler, Adapter) else Adapter(handler)
        self.route_prefix = route_prefix.strip("/")
        self.function_timeout = float(function_timeout)
        self.streaming = streaming_available() if streaming is None else streaming
        self.function_name_ = function_name
        self._runner: AdapterLoop | None = None
        self.http_function = self._add_http_function(function_name)
        self.queue_functions = [
            self._add_queue_function(queue, connection) for queue in task_queues
        ]

    @property
    def runner(self) -> AdapterLoop:
        """The adapter's loop, started by the first invocation in this worker process."""
        if self._runner is None:
            self._runner = loop_for(self.adapter)
        return self._runner

    def _add_http_function(self, name: str) -> Any:
        streaming = self.streaming
        if streaming:
            from azurefunctions.extensions.http.fastapi import (  # type: ignore[import-untyped]
                Request,
                Response,
            )

            request_type: Any = Request
            response_type: Any = Response
        else:
            request_type, response_type = func.HttpRequest, func.HttpResponse

        async def http_app_func(req: Any, context: Any) -> Any:
            invocation = context_for(context, name, self.function_timeout)
            serve = serve_streaming if streaming else serve_classic
            return await serve(self.runner, req, invocation, self.route_prefix)

        # The worker reads real types from the signature (never strings): set them here.
        http_app_func.__annotations__ = {
            "req": request_type,
            "context": func.Context,
            "return": response_type,
        }
        http_app_func.__name__ = name
        decorated = self.function_name(name=name)(
            self.route(
                route="{*route}",
                methods=[method.value for method in func.HttpMethod],
                auth_level=self.auth_level,
            )(http_app_func)
        )
        return decorated

    def _add_queue_function(self, queue: Any, connection: str) -> Any:
        from holdfast.azure.tasks import queue_trigger_function

        return queue_trigger_function(self, queue, connection)
