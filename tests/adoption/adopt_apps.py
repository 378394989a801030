"""Apps for the adoption tests: what a request starts, and what a library starts during it.

Each job records when it finished in the file named by HOLDFAST_TEST_RECORD (time.monotonic(),
one clock for every process on Linux, so it compares with the emulator's freeze log).
"""

import asyncio
import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import BackgroundTasks, FastAPI, Request
from websockets.asyncio.client import connect

import holdfast


def _record(kind: str, request_id: str) -> None:
    with open(os.environ["HOLDFAST_TEST_RECORD"], "a") as record:
        record.write(f"{kind} {request_id} {time.monotonic()}\n")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    # An environment-lifetime loop started at init: never adopted (no invocation then).
    ticker = asyncio.create_task(_tick_forever())
    with ThreadPoolExecutor(2) as pool:
        app.state.pool = pool
        yield
    ticker.cancel()


async def _tick_forever() -> None:
    while True:
        await asyncio.sleep(0.05)


app = FastAPI(lifespan=lifespan)
_state: dict[str, object] = {}


def _request_id(request: Request) -> str:
    return request.scope["aws.context"].aws_request_id


async def _job(request_id: str, ms: int) -> None:
    await asyncio.sleep(ms / 1000)
    _record("job", request_id)


def _blocking(request_id: str, ms: int) -> None:
    time.sleep(ms / 1000)
    _record("blocking", request_id)


async def _executor_job(pool: ThreadPoolExecutor, request_id: str, ms: int) -> None:
    # The long-task recipe FastAPI guides teach: a task awaiting a lifespan-made thread pool.
    await asyncio.get_running_loop().run_in_executor(pool, _blocking, request_id, ms)
    _record("executor-job", request_id)


@app.get("/fire")
async def fire(request: Request, ms: int = 300) -> dict:
    asyncio.create_task(_job(_request_id(request), ms))  # noqa: RUF006 - fire and forget
    return {"request_id": _request_id(request)}


@app.get("/executor")
async def executor(request: Request, ms: int = 300) -> dict:
    request_id = _request_id(request)
    asyncio.create_task(_executor_job(request.app.state.pool, request_id, ms))  # noqa: RUF006
    return {"request_id": request_id}


async def _spawn_nested(request_id: str, ms: int) -> None:
    # A BackgroundTask starting a task that starts a task.
    async def outer() -> None:
        asyncio.create_task(_job(request_id, ms))  # noqa: RUF006
        _record("outer", request_id)

    asyncio.create_task(outer())  # noqa: RUF006


@app.get("/nested")
async def nested(request: Request, tasks: BackgroundTasks, ms: int = 300) -> dict:
    tasks.add_task(_spawn_nested, _request_id(request), ms)
    return {"request_id": _request_id(request)}


@app.get("/library")
async def library(request: Request) -> dict:
    # A websocket client opened lazily on the first request and kept for the environment's
    # life: the library starts its keep-alive task now, during the request.
    connection = _state.get("ws")
    if connection is None:
        connection = _state["ws"] = await connect(os.environ["HOLDFAST_TEST_WS"], ping_interval=1)
    await connection.send(_request_id(request))
    echoed = await connection.recv()
    keepalive = connection.keepalive_task
    return {
        "request_id": _request_id(request),
        "echoed": echoed,
        "keepalive_running": keepalive is not None and not keepalive.done(),
    }


async def _listen_forever(request_id: str) -> None:
    _record("listener-started", request_id)
    while True:
        await asyncio.sleep(0.05)


@app.get("/detached")
async def detached(request: Request) -> dict:
    # The app's own long-lived task, started lazily and opted out of the invocation.
    listener = _state.get("listener")
    if listener is None:
        listener = _state["listener"] = holdfast.detach(
            asyncio.create_task(_listen_forever(_request_id(request)))
        )
    assert isinstance(listener, asyncio.Task)
    return {"request_id": _request_id(request), "listener_running": not listener.done()}


@app.get("/forever")
async def forever(request: Request) -> dict:
    asyncio.create_task(_listen_forever(_request_id(request)))  # noqa: RUF006
    return {"request_id": _request_id(request)}


@app.get("/thread")
async def thread(request: Request, ms: int = 300) -> dict:
    threading.Thread(target=_blocking, args=(_request_id(request), ms), name="app-thread").start()
    return {"request_id": _request_id(request)}


handler = holdfast.Adapter(app)
