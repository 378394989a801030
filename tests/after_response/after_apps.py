"""Apps for the after-response tests: each records when its after-response work finished.

The record file is named by HOLDFAST_TEST_RECORD; times are time.monotonic(), which on Linux is
one clock for every process, so they compare with the emulator's freeze log.
"""

import asyncio
import os
import time

from fastapi import BackgroundTasks, FastAPI, Request

import holdfast

app = FastAPI()


def _record(kind: str, request_id: str) -> None:
    with open(os.environ["HOLDFAST_TEST_RECORD"], "a") as record:
        record.write(f"{kind} {request_id} {time.monotonic()}\n")


async def _slow_task(request_id: str, ms: int) -> None:
    await asyncio.sleep(ms / 1000)
    _record("task", request_id)


# The test releases each request's work once its client has the response (a file named after
# the request): the work then finishes after the answer by construction, never by a race
# between two clocks. Work the host held the response for could never be released: it records
# "unreleased" instead, after GATE_DEADLINE seconds.
GATE_DEADLINE = 30.0


def _released(request_id: str) -> bool:
    return os.path.exists(f"{os.environ['HOLDFAST_TEST_RECORD']}.release-{request_id}")


async def _gated_task(request_id: str) -> None:
    until = time.monotonic() + GATE_DEADLINE
    while not _released(request_id):
        if time.monotonic() > until:
            _record("unreleased", request_id)
            return
        await asyncio.sleep(0.005)
    _record("task", request_id)


def _gated_blocking_task(request_id: str) -> None:
    until = time.monotonic() + GATE_DEADLINE
    while not _released(request_id):
        if time.monotonic() > until:
            _record("unreleased", request_id)
            return
        time.sleep(0.005)
    _record("after", request_id)


@app.get("/gated")
async def gated(request: Request, tasks: BackgroundTasks) -> dict:
    request_id = request.scope["aws.context"].aws_request_id
    tasks.add_task(_gated_task, request_id)
    holdfast.after_response(_gated_blocking_task, request_id)
    return {"request_id": request_id}


async def _compute_first(request_id: str, ms: int) -> None:
    # CPU work before the first await: if it ran before the response went out, it would hold
    # up the response by its whole length.
    _record("cpu-start", request_id)
    until = time.monotonic() + ms / 1000
    while time.monotonic() < until:
        pass
    _record("cpu-done", request_id)
    await asyncio.sleep(0)


@app.get("/compute-first")
async def compute_first(request: Request, tasks: BackgroundTasks, ms: int = 800) -> dict:
    request_id = request.scope["aws.context"].aws_request_id
    tasks.add_task(_compute_first, request_id, ms)
    return {"request_id": request_id}


@app.get("/too-long")
async def too_long(request: Request, ms: int = 60_000) -> dict:
    request_id = request.scope["aws.context"].aws_request_id
    holdfast.after_response(_slow_task, request_id, ms)
    return {"request_id": request_id}


@app.get("/fails-after")
async def fails_after(request: Request) -> dict:
    def explode() -> None:
        raise RuntimeError("after-response work failed on purpose")

    holdfast.after_response(explode)
    return {"ok": True}


handler = holdfast.Adapter(app)
