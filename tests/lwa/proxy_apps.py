"""Apps served by their own server (uvicorn) behind `holdfast proxy` in the proxy tests.

The record file is named by HOLDFAST_TEST_RECORD; times are time.monotonic() (one clock for
every process on Linux), so they compare with the emulator's freeze log. With
HOLDFAST_TEST_MIDDLEWARE=1 the app carries holdfast's completion middleware.
"""

import asyncio
import contextlib
import json
import os
import time

from fastapi import BackgroundTasks, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

import holdfast
from holdfast.completion import CompletionMiddleware


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    _record("shutdown", "-")  # the server's graceful shutdown, on the proxy's SIGTERM


app = FastAPI(lifespan=lifespan)
if os.environ.get("HOLDFAST_TEST_MIDDLEWARE") == "1":
    app.add_middleware(CompletionMiddleware)


def _record(kind: str, request_id: str) -> None:
    with open(os.environ["HOLDFAST_TEST_RECORD"], "a") as record:
        record.write(f"{kind} {request_id} {time.monotonic()}\n")


async def _slow_task(request_id: str, ms: int) -> None:
    await asyncio.sleep(ms / 1000)
    _record("task", request_id)


def _after(request_id: str) -> None:
    time.sleep(0.05)
    _record("after", request_id)


@app.get("/task")
async def task(request: Request, tasks: BackgroundTasks, ms: int = 300) -> dict:
    request_id = request.headers["holdfast-request-id"]
    tasks.add_task(_slow_task, request_id, ms)
    if os.environ.get("HOLDFAST_TEST_MIDDLEWARE") == "1":
        holdfast.after_response(_after, request_id)
    return {"request_id": request_id}


@app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def echo(request: Request, rest: str) -> Response:
    body = await request.body()
    document = {
        "method": request.method,
        "path": request.url.path,
        "raw_path": request.scope["raw_path"].decode("latin-1"),
        "query": request.scope["query_string"].decode("latin-1"),
        "headers": [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]
        ],
        "body": body.hex(),
        "client_port": request.client.port if request.client else None,
    }
    return Response(json.dumps(document), media_type="application/json")


@app.get("/status/{code}")
async def status(code: int) -> Response:
    return PlainTextResponse(f"status {code}", status_code=code)


@app.get("/stream")
async def stream(chunks: int = 3, ms: int = 50) -> StreamingResponse:
    async def produce():
        for index in range(chunks):
            yield f"chunk {index}\n".encode()
            await asyncio.sleep(ms / 1000)

    return StreamingResponse(produce(), media_type="text/plain")


@app.post("/events")
async def events(request: Request) -> Response:
    event = await request.json()
    return Response(json.dumps({"got": event}), media_type="application/json")


@app.get("/die")
async def die() -> None:
    os._exit(3)  # the server crashes in the middle of a request
