"""Apps and handlers the runtime tests run (in-process, and by name in a subprocess)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from fastapi import BackgroundTasks, FastAPI, Request
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse

import holdfast

#: What the apps did, in order (the tests compare it with what the Runtime API saw).
log: list[str] = []


# -- an ASGI app ----------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    app.state.gate = asyncio.Event()
    log.append("startup")
    yield
    log.append("shutdown")
    if os.environ.get("GATE_DIR"):
        (Path(os.environ["GATE_DIR"]) / "shutdown").write_text("lifespan shutdown ran")


app = FastAPI(lifespan=_lifespan)


@app.get("/hello")
async def hello():
    return {"message": "hello"}


@app.get("/background")
async def background(request: Request, tasks: BackgroundTasks):
    tasks.add_task(_after_response, request.app.state.gate)
    return {"ok": True}


async def _after_response(gate: asyncio.Event) -> None:
    log.append("background started")
    await gate.wait()
    log.append("background finished")


@app.get("/after")
async def after():
    holdfast.after_response(log.append, "after_response ran")
    return {"ok": True}


@app.get("/context")
async def context(request: Request):
    ctx = request.scope["aws.context"]
    return {
        "aws_request_id": ctx.aws_request_id,
        "function_name": ctx.function_name,
        "memory_limit_in_mb": ctx.memory_limit_in_mb,
        "remaining_positive": ctx.get_remaining_time_in_millis() > 0,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "tenant_id": ctx.tenant_id,
    }


@app.get("/status/{code}")
async def status(code: int):
    return PlainTextResponse(f"status {code}", status_code=code)


@app.get("/boom")
async def boom():
    raise RuntimeError("secret detail that must not reach the client")


@app.get("/stream")
async def stream():
    async def body():
        for part in (b"one ", b"two ", b"three"):
            yield part

    response = StreamingResponse(body(), media_type="text/plain", headers={"x-kind": "stream"})
    response.set_cookie("session", "abc")
    return response


@app.get("/stream-fails")
async def stream_fails():
    async def body():
        yield b"partial"
        raise ValueError("broke mid-stream")

    return StreamingResponse(body(), media_type="text/plain")


@app.get("/gated-background")
async def gated_background(tasks: BackgroundTasks):
    # Across processes: the background task finishes only once the test creates $GATE_DIR/open.
    tasks.add_task(_wait_for_gate_file, Path(os.environ["GATE_DIR"]))
    return {"ok": True}


async def _wait_for_gate_file(gate_dir: Path) -> None:
    while not (gate_dir / "open").exists():
        await asyncio.sleep(0.01)
    (gate_dir / "done").write_text("background finished")


@app.get("/blocking-background")
async def blocking_background(tasks: BackgroundTasks):
    # After-response work that blocks the event loop until $GATE_DIR/open exists, before it
    # first awaits; then it waits on a timer and on a thread, as real work does.
    tasks.add_task(_block_then_await, Path(os.environ["GATE_DIR"]))
    return {"ok": True}


async def _block_then_await(gate_dir: Path) -> None:
    while not (gate_dir / "open").exists():
        time.sleep(0.005)
    await asyncio.sleep(0.01)
    await asyncio.to_thread((gate_dir / "thread").write_text, "from a thread")
    (gate_dir / "done").write_text("background finished")


@app.get("/wait")
async def wait(request: Request):
    # Concurrency test: every invocation waits until the test has seen them all arrive.
    log.append("waiting")
    await request.app.state.gate.wait()
    return {"ok": True}


# -- a WSGI app -----------------------------------------------------------------------------------
flask_app = Flask(__name__)


@flask_app.get("/hello")
def flask_hello():
    return {"message": "hello from flask"}


# -- an app whose lifespan startup fails --------------------------------------------------------
@contextlib.asynccontextmanager
async def _failing_lifespan(app: Starlette):
    raise RuntimeError("database unreachable")
    yield  # pragma: no cover


failing_startup = Starlette(lifespan=_failing_lifespan)

adapter = holdfast.Adapter(app)
not_callable = 42


# -- plain handlers ------------------------------------------------------------------------------
def handler(event, context):
    return {"echo": event, "request_id": context.aws_request_id}


async def async_handler(event, context):
    await asyncio.sleep(0)
    holdfast.after_response(log.append, f"after {context.aws_request_id}")
    return {"async": True, "echo": event}


def runs_its_own_loop(event, context):
    # Common under AWS's runtime: a sync handler driving asyncio itself.
    return asyncio.run(_double(event["n"]))


async def _double(n: int) -> dict:
    return {"n": n * 2}


def failing_handler(event, context):
    raise ValueError("bad input")


def bytes_handler(event, context):
    return b"\x00raw"


def unserializable_handler(event, context):
    return {"value": object()}


def raw_event_handler(event, context):
    return {"type": type(event).__name__, "size": len(event)}
