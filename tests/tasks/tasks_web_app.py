"""A web app that owns a task queue: the same Lambda function serves HTTP and consumes SQS."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from tasks_app import queue, record  # noqa: F401  (the queue registers itself on import)

import holdfast


async def index(request):
    return JSONResponse({"queue": queue.name})


app = Starlette(routes=[Route("/", index)])
handler = holdfast.Adapter(app)
