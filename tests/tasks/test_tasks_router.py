"""The status router (FastAPI and Starlette), its auth dependency, and the 202 helper."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from holdfast.tasks import TaskQueue

TOKEN = "Bearer let-me-in"


def require_token(authorization: str = Header(default="")) -> None:
    if not authorization:
        raise HTTPException(status_code=401, detail="sign in")
    if authorization != TOKEN:
        raise HTTPException(status_code=403, detail="not yours")


def make_queue(url: str) -> TaskQueue:
    queue = TaskQueue(url)

    @queue.task(name="square")
    def square(n: int) -> int:
        return n * n

    @queue.task(name="explode", retries=0)
    def explode() -> None:
        raise KeyError("secret-internal-detail")

    return queue


def fastapi_app(queue: TaskQueue) -> FastAPI:
    app = FastAPI()
    app.include_router(queue.router(dependencies=[Depends(require_token)]))

    @app.post("/squares/{n}")
    async def start(n: int, request: Request):
        handle = await queue.tasks["square"].defer(n)
        return queue.accepted(handle, request)

    return app


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def drain(queue: TaskQueue) -> None:
    asyncio.run(queue.worker().run(burst=True))


def test_accepted_then_status(any_url):
    queue = make_queue(any_url)
    app = fastapi_app(queue)

    async def start():
        async with client(app) as http:
            return await http.post("/squares/7")

    response = asyncio.run(start())
    assert response.status_code == 202
    location = response.headers["location"]
    task_id = response.json()["id"]
    assert location == response.json()["status_url"] == f"http://api/tasks/{task_id}"

    async def read():
        async with client(app) as http:
            return await http.get(location, headers={"Authorization": TOKEN})

    assert asyncio.run(read()).json()["state"] == "queued"
    drain(queue)
    body = asyncio.run(read()).json()
    assert body["state"] == "succeeded" and body["result"] == 49 and body["attempts"] == 1


@pytest.mark.parametrize(("headers", "expected"), [({}, 401), ({"Authorization": "x"}, 403)])
def test_a_failing_dependency_denies_access(headers, expected):
    queue = make_queue("memory://")
    handle = queue.tasks["square"].defer_sync(2)
    app = fastapi_app(queue)

    async def main():
        async with client(app) as http:
            return [
                await http.get(f"/tasks/{handle.id}", headers=headers),
                await http.get("/tasks", headers=headers),
            ]

    for response in asyncio.run(main()):
        assert response.status_code == expected
        assert "result" not in response.text


def test_listing_filters_and_limits(any_url):
    queue = make_queue(any_url)
    for n in range(3):
        queue.tasks["square"].defer_sync(n)
    failed = queue.tasks["explode"].defer_sync()
    drain(queue)
    app = fastapi_app(queue)
    auth = {"Authorization": TOKEN}

    async def main():
        async with client(app) as http:
            return (
                await http.get("/tasks", headers=auth),
                await http.get("/tasks?task=square&limit=2", headers=auth),
                await http.get("/tasks?state=dead", headers=auth),
                await http.get("/tasks?state=bogus", headers=auth),
                await http.get("/tasks?limit=0", headers=auth),
                await http.get("/tasks/not-a-task", headers=auth),
            )

    everything, two, dead, bad_state, bad_limit, missing = asyncio.run(main())
    assert len(everything.json()["tasks"]) == 4
    assert [t["result"] for t in two.json()["tasks"]] == [4, 1]  # newest first
    [dead_task] = dead.json()["tasks"]
    assert dead_task["id"] == failed.id
    # The error names the exception, without a traceback or file paths.
    assert dead_task["error"] == "KeyError: 'secret-internal-detail'"
    assert "Traceback" not in dead.text and ".py" not in dead.text
    assert bad_state.status_code == 422 and bad_limit.status_code == 422
    assert missing.status_code == 404


def test_router_requires_auth_or_explicit_public():
    queue = make_queue("memory://")
    with pytest.raises(ValueError, match="dependencies"):
        queue.router()
    with pytest.raises(ValueError, match="prefix"):
        queue.router(public=True, prefix="tasks/")
    assert queue.router(public=True, prefix="/jobs").prefix == "/jobs"


def test_starlette_router():
    queue = make_queue("memory://")

    def require_header(request) -> None:
        if request.headers.get("authorization") != TOKEN:
            raise StarletteHTTPException(status_code=401)

    async def start(request):
        handle = await queue.tasks["square"].defer(int(request.path_params["n"]))
        return queue.accepted(handle, request)

    router = queue.router(dependencies=[require_header], starlette=True)
    app = Starlette(routes=[Route("/squares/{n}", start, methods=["POST"]), *router.routes])

    async def main():
        async with client(app) as http:
            created = await http.post("/squares/3")
            denied = await http.get(created.headers["location"])
            queued = await http.get(created.headers["location"], headers={"Authorization": TOKEN})
            await queue.worker().run(burst=True)
            done = await http.get(created.headers["location"], headers={"Authorization": TOKEN})
            listing = await http.get("/tasks?state=succeeded", headers={"Authorization": TOKEN})
            bad = await http.get("/tasks?limit=5000", headers={"Authorization": TOKEN})
            return created, denied, queued, done, listing, bad

    created, denied, queued, done, listing, bad = asyncio.run(main())
    assert created.status_code == 202
    assert created.headers["location"].startswith("http://api/tasks/")
    assert denied.status_code == 401
    assert queued.json()["state"] == "queued"
    assert done.json()["result"] == 9
    assert len(listing.json()["tasks"]) == 1
    assert bad.status_code == 422


def test_accepted_without_request_uses_the_prefix():
    queue = make_queue("memory://")
    queue.router(public=True, prefix="/jobs")
    handle = queue.tasks["square"].defer_sync(1)
    response = queue.accepted(handle)
    assert response.status_code == 202
    assert response.headers["location"] == f"/jobs/{handle.id}"
