"""HTTP status endpoints for a queue, and the `202 Accepted` helper.

    app.include_router(queue.router(dependencies=[Depends(require_user)]))      # FastAPI
    Starlette(routes=queue.router(dependencies=[require_user], starlette=True).routes)

`GET /tasks/{id}` answers a task's status, `GET /tasks?state=&task=&limit=` the newest
statuses. Errors are served as `"Type: message"`, never as tracebacks. Both endpoints run the
dependencies first: FastAPI dependencies (`Depends(...)`), or for Starlette plain callables
taking the request (sync or async); either denies access by raising `HTTPException(401/403)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .models import TaskState

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

    from .queue import TaskHandle, TaskQueue

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50


def status_route_name(queue: TaskQueue) -> str:
    """The route name of a queue's status endpoint, for `request.url_for`."""
    return f"holdfast.tasks.{queue.name}.status"


def build_router(
    queue: TaskQueue,
    *,
    dependencies: Iterable[Any] | None,
    prefix: str,
    public: bool,
    starlette: bool = False,
) -> Any:
    """The router behind `TaskQueue.router`: a FastAPI APIRouter, or a Starlette Router."""
    dependencies = list(dependencies or [])
    if not dependencies and not public:
        raise ValueError(
            "task status exposes results: pass dependencies=[...] that authenticate, "
            "or public=True to serve it without authentication"
        )
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError("prefix must start with '/' and not end with one, e.g. '/tasks'")
    queue.status_prefix = prefix
    build = _starlette_router if starlette else _fastapi_router
    return build(queue, dependencies, prefix)


def _fastapi_router(queue: TaskQueue, dependencies: list[Any], prefix: str) -> Any:
    from fastapi import APIRouter, HTTPException, Query

    router = APIRouter(prefix=prefix, dependencies=dependencies, tags=["tasks"])

    @router.get("/{task_id}", name=status_route_name(queue))
    async def task_status(task_id: str) -> dict[str, Any]:
        status = await queue.status(task_id)
        if status is None:
            raise HTTPException(status_code=404, detail="task not found")
        return status.to_dict()

    @router.get("", name=f"{status_route_name(queue)}.list")
    async def list_tasks(
        state: TaskState | None = None,
        task: str | None = None,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    ) -> dict[str, Any]:
        return await _listing(queue, state, task, limit)

    return router


def _starlette_router(queue: TaskQueue, dependencies: list[Callable[..., Any]], prefix: str) -> Any:
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, Router

    async def guard(request: Request) -> None:
        for dependency in dependencies:
            result = dependency(request)
            if inspect.isawaitable(result):
                await result

    async def task_status(request: Request) -> JSONResponse:
        await guard(request)
        status = await queue.status(request.path_params["task_id"])
        if status is None:
            raise HTTPException(status_code=404, detail="task not found")
        return JSONResponse(status.to_dict())

    async def list_tasks(request: Request) -> JSONResponse:
        await guard(request)
        params = request.query_params
        try:
            state = TaskState(params["state"]) if "state" in params else None
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise HTTPException(status_code=422, detail="bad state or limit") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise HTTPException(status_code=422, detail=f"limit must be 1 to {MAX_LIMIT}")
        return JSONResponse(await _listing(queue, state, params.get("task"), limit))

    return Router(
        routes=[
            Route(prefix, list_tasks, name=f"{status_route_name(queue)}.list"),
            Route(prefix + "/{task_id}", task_status, name=status_route_name(queue)),
        ]
    )


async def _listing(
    queue: TaskQueue, state: TaskState | None, task: str | None, limit: int
) -> dict[str, Any]:
    statuses = await queue.list(state=state, task=task, limit=limit)
    return {"tasks": [status.to_dict() for status in statuses]}


def accepted(queue: TaskQueue, handle: TaskHandle, request: Any = None) -> JSONResponse:
    """`202 Accepted`, `Location:` the task's status URL, body `{"id", "status_url"}`.

    With the request, the URL is absolute when the status router is mounted in that app;
    otherwise it is the path under the router's prefix.
    """
    from starlette.responses import JSONResponse

    url = f"{queue.status_prefix}/{handle.id}"
    if request is not None:
        try:
            url = str(request.url_for(status_route_name(queue), task_id=handle.id))
        except Exception:  # route not mounted in this app: keep the relative path
            pass
    return JSONResponse(
        {"id": handle.id, "status_url": url}, status_code=202, headers={"Location": url}
    )
