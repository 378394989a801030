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


class AfterResponse:
    """The pure-ASGI middleware docs/adapter.md shows: it acts after the last body chunk."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/middleware":
            return await self.app(scope, receive, send)

        async def send_then_act(message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                await asyncio.sleep(0.2)  # after the response, before the freeze
                _record("middleware", scope["aws.context"].aws_request_id)

        await self.app(scope, receive, send_then_act)


@app.get("/middleware")
async def middleware(request: Request) -> dict:
    return {"request_id": request.scope["aws.context"].aws_request_id}


app.add_middleware(AfterResponse)

handler = holdfast.Adapter(app)


def _held(request_id: str) -> None:
    # Sync work that runs until the test opens its gate (a file): past any deadline if need be.
    _record("held-start", request_id)
    gate = os.path.join(os.path.dirname(os.environ["HOLDFAST_TEST_RECORD"]), "gate")
    while not os.path.exists(gate):
        time.sleep(0.02)
    _record("held-done", request_id)


@app.get("/held")
async def held(request: Request) -> dict:
    request_id = request.scope["aws.context"].aws_request_id
    holdfast.after_response(_held, request_id)
    return {"request_id": request_id, "pid": os.getpid()}


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "world"}


@app.get("/when-done/{request_id}")
async def when_done(request_id: str) -> dict:
    # Keeps this invocation (the environment thawed) until an earlier one's gated work is done.
    with open(os.environ["HOLDFAST_TEST_RECORD"]) as record:
        while f"held-done {request_id} " not in record.read():
            await asyncio.sleep(0.02)
            record.seek(0)
    return {"done": request_id}
