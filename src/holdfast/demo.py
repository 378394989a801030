"""The demo app `holdfast dev` serves by default: each of holdfast's promises, one endpoint each.

GET  /                 what this is
POST /work?ms=300      answers at once; a BackgroundTask finishes before the freeze
GET  /done             the background work finished so far in this environment
GET  /fail             a 503 that becomes a Lambda function error (error_status_codes)
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

try:
    from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Response
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the demo app needs FastAPI: pip install fastapi") from exc

import holdfast
from holdfast.tasks import TaskQueue

app = FastAPI(title="holdfast demo")
queue = TaskQueue(os.environ.get("HOLDFAST_DEMO_QUEUE", "sqlite:///holdfast-demo.db"))
_finished: list[dict[str, Any]] = []
_DEMO_TOKEN = os.environ.get("HOLDFAST_DEMO_TOKEN", "demo")


def require_token(request: Request) -> None:
    """The status endpoints' auth dependency: a bearer token (``demo`` unless configured)."""
    supplied = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not secrets.compare_digest(supplied.encode(), _DEMO_TOKEN.encode()):
        raise HTTPException(status_code=401, detail="a bearer token is required")


@queue.task(name="demo.render_report", retries=2)
async def render_report(pages: int) -> dict[str, Any]:
    await asyncio.sleep(0.2 * pages)
    return {"pages": pages, "rendered_at": time.time()}


app.include_router(queue.router(dependencies=[Depends(require_token)]))


async def _background_work(ms: int, requested_at: float) -> None:
    await asyncio.sleep(ms / 1000)
    _finished.append({"ms": ms, "finished_after_s": round(time.time() - requested_at, 3)})


@app.get("/")
async def index() -> dict[str, Any]:
    return {
        "app": "holdfast demo",
        "try": ["POST /work?ms=300", "GET /done", "GET /fail", "POST /reports?pages=3"],
    }


@app.post("/work", status_code=202)
async def work(tasks: BackgroundTasks, ms: int = 300) -> dict[str, Any]:
    tasks.add_task(_background_work, ms, time.time())
    holdfast.after_response(_finished.append, {"after_response": True})
    return {"accepted": True, "background_ms": ms}


@app.get("/done")
async def done() -> dict[str, Any]:
    return {"finished": _finished[-20:], "count": len(_finished)}


@app.post("/reports")
async def reports(request: Request, pages: int = 3) -> Response:
    handle = await render_report.defer(pages)
    return queue.accepted(handle, request)


@app.get("/fail")
async def fail() -> Response:
    return Response("upstream unavailable", status_code=503, media_type="text/plain")


handler = holdfast.Adapter(app, error_status_codes="502-504")
