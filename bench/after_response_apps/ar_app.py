"""The FastAPI app every setup of bench/after_response.py serves.

``GET /task`` schedules a BackgroundTasks task that sleeps 300 ms and then appends
``task <request id> <time.monotonic()>`` to the file named by ``HOLDFAST_BENCH_RECORD`` (on Linux
time.monotonic() is one clock for every process, so it compares with the emulator's freeze log).
``GET /compute`` schedules an async task that first computes for 800 ms (CPU, before its first
``await``), then records ``compute <request id> <time>``. ``GET /fire``
starts a plain ``asyncio.create_task`` of the same 300 ms job (fire and forget), recording
``fire <request id> <time>``. ``GET /plain`` gives the same JSON answer with no task.

The request id is the Lambda context's (``scope["aws.context"]``, set by holdfast and Mangum); in
the proxy setup, where uvicorn serves the app, it is the ``x-amzn-request-id`` header the
forwarding handler adds.
"""

import asyncio
import os
import time

from fastapi import BackgroundTasks, FastAPI, Request

TASK_SECONDS = 0.3
COMPUTE_SECONDS = 0.8
RECORD = os.environ["HOLDFAST_BENCH_RECORD"]

app = FastAPI()


def _request_id(request: Request) -> str:
    context = request.scope.get("aws.context")
    if context is not None:
        return context.aws_request_id
    return request.headers["x-amzn-request-id"]


async def _finish_later(request_id: str) -> None:
    await asyncio.sleep(TASK_SECONDS)
    with open(RECORD, "a") as record:
        record.write(f"task {request_id} {time.monotonic()}\n")


@app.get("/task")
async def task(request: Request, tasks: BackgroundTasks) -> dict:
    request_id = _request_id(request)
    tasks.add_task(_finish_later, request_id)
    return {"ok": True, "request_id": request_id}


async def _compute_then_await(request_id: str) -> None:
    until = time.monotonic() + COMPUTE_SECONDS
    while time.monotonic() < until:  # CPU-bound, no await: nothing else runs on the loop
        pass
    with open(RECORD, "a") as record:
        record.write(f"compute {request_id} {time.monotonic()}\n")
    await asyncio.sleep(0)


async def _fire_and_forget(request_id: str) -> None:
    await asyncio.sleep(TASK_SECONDS)
    with open(RECORD, "a") as record:
        record.write(f"fire {request_id} {time.monotonic()}\n")


@app.get("/fire")
async def fire(request: Request) -> dict:
    request_id = _request_id(request)
    # The long-task recipe of FastAPI guides: neither BackgroundTasks nor after_response.
    asyncio.create_task(_fire_and_forget(request_id))  # noqa: RUF006
    return {"ok": True, "request_id": request_id}


@app.get("/compute")
async def compute(request: Request, tasks: BackgroundTasks) -> dict:
    request_id = _request_id(request)
    tasks.add_task(_compute_then_await, request_id)
    return {"ok": True, "request_id": request_id}


@app.get("/plain")
async def plain(request: Request) -> dict:
    return {"ok": True, "request_id": _request_id(request)}
