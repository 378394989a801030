"""An app with durable after-response work, for test_tasks_durable.py and bench/durable.py.

Run as the function (``durable_app.handler`` under awslambdaric, ``durable_app:app`` under
``holdfast run``) and as the worker (``holdfast tasks worker durable_app:queue``). The queue URL
is HOLDFAST_TEST_URL. The task ``record`` appends ``ran <n> <pid> <time.monotonic()>`` to the
file named by HOLDFAST_TEST_RECORD once its body completes; with ``gate`` it first waits for
``<record>.release-<n>`` (created by the test), so a test decides when the work may end: after
the response, or never before a SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from fastapi import FastAPI, Request

import holdfast
from holdfast.tasks import TaskQueue

queue = TaskQueue(os.environ["HOLDFAST_TEST_URL"], visibility_timeout=5.0)
RECORD = os.environ.get("HOLDFAST_TEST_RECORD", "")
GATE_DEADLINE = 60.0


def _note(line: str) -> None:
    with open(RECORD, "a") as record:
        record.write(f"{line}\n")


@queue.task(name="record", retries=5, backoff=0.05)
async def record(n: int, gate: bool = False) -> int:
    if gate:
        until = time.monotonic() + GATE_DEADLINE
        while not os.path.exists(f"{RECORD}.release-{n}"):
            if time.monotonic() > until:
                _note(f"unreleased {n} {os.getpid()} {time.monotonic()}")
                return n
            await asyncio.sleep(0.005)
    _note(f"ran {n} {os.getpid()} {time.monotonic()}")
    return n


@queue.task(name="record_sync", retries=5, backoff=0.05)
def record_sync(n: int) -> int:
    _note(f"ran {n} {os.getpid()} {time.monotonic()}")
    return n


async def _plain(n: int) -> None:
    _note(f"ran {n} {os.getpid()} {time.monotonic()}")


app = FastAPI()


def _answer(request: Request, handle: Any = None, took: float = 0.0) -> dict[str, object]:
    return {
        "request_id": request.scope["aws.context"].aws_request_id,
        "pid": os.getpid(),
        "task_id": None if handle is None else handle.task_id,
        "took": took,  # seconds the after_response() call took: its cost on the response path
    }


@app.get("/durable/{n}")
async def durable(request: Request, n: int, gate: bool = False) -> dict[str, object]:
    began = time.perf_counter()
    handle = holdfast.after_response(record, n, gate, durable=True)
    return _answer(request, handle, time.perf_counter() - began)


@app.get("/durable-sync/{n}")
async def durable_sync(request: Request, n: int) -> dict[str, object]:
    return _answer(request, holdfast.after_response(record_sync, n, durable=True))


@app.get("/keyed/{n}")
async def keyed(request: Request, n: int, key: str) -> dict[str, object]:
    keyed_record = record.options(idempotency_key=key)
    return _answer(request, holdfast.after_response(keyed_record, n, True, durable=True))


@app.get("/plain/{n}")
async def plain(request: Request, n: int) -> dict[str, object]:
    began = time.perf_counter()
    holdfast.after_response(_plain, n)
    return _answer(request, took=time.perf_counter() - began)


@app.get("/refused")
async def refused(request: Request) -> dict[str, object]:
    try:
        holdfast.after_response(_plain, 0, durable=True)
    except TypeError as exc:
        return {"refused": str(exc)}
    return {"refused": None}


handler = holdfast.Adapter(app)
