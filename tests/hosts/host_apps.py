"""Functions the host tests run by name: a FastAPI app behind handlers that answer some events
themselves (a warmer, Mangum on one route), as real deployments do during a migration."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from fastapi import BackgroundTasks, FastAPI
from mangum import Mangum

import holdfast

app = FastAPI()


def _mark(name: str) -> None:
    directory = os.environ.get("MARK_DIR")
    if directory:
        with open(Path(directory) / name, "a") as marks:
            marks.write(f"{os.getpid()}\n")


async def _slow_after(name: str) -> None:
    await asyncio.sleep(0.3)
    _mark(name)


@app.get("/work/{name}")
async def work(name: str, tasks: BackgroundTasks):
    tasks.add_task(_slow_after, name)
    return {"name": name, "pid": os.getpid()}


async def _after_gate(name: str) -> None:
    gate = Path(os.environ["MARK_DIR"]) / f"open-{name}"
    while not gate.exists():
        await asyncio.sleep(0.01)
    _mark(name)


@app.get("/gated/{name}")
async def gated(name: str, tasks: BackgroundTasks):
    tasks.add_task(_after_gate, name)
    return {"name": name, "pid": os.getpid()}


@app.get("/slow/{name}")
async def slow(name: str, tasks: BackgroundTasks):
    await asyncio.sleep(0.2)  # the requests overlap: each worker takes one at a time
    tasks.add_task(_slow_after, name)
    return {"name": name, "pid": os.getpid()}


@app.get("/hello")
async def hello():
    return {"message": "hello"}


adapter = holdfast.Adapter(app)
legacy = Mangum(app, lifespan="off")


def handler(event, context):
    """A warmer answered before the adapter, Mangum on /legacy, holdfast for the rest."""
    if event.get("warmup"):
        return {}
    if event.get("rawPath", "").startswith("/legacy"):
        return legacy(event, context)
    return adapter(event, context)


def slow_handler(event, context):
    """For Managed Instances: each request takes a while, so requests overlap."""
    if event.get("warmup"):
        time.sleep(0.2)
        return {"pid": os.getpid()}
    return adapter(event, context)


def sleeper(event, context):
    """Sleeps as long as asked, logs, and answers with what the context says."""
    time.sleep(event.get("sleep", 0))
    logging.getLogger("app").info("slept %s", event.get("sleep", 0))
    return {"tenant_id": context.tenant_id, "request_id": context.aws_request_id}
