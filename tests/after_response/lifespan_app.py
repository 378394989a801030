"""An app whose lifespan shutdown leaves a mark: it must run at SIGTERM under awslambdaric."""

import contextlib
import os
import time

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import holdfast


@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    with open(os.environ["HOLDFAST_TEST_RECORD"], "a") as record:
        record.write(f"shutdown {os.getpid()} {time.monotonic()}\n")


async def hello(request):
    return PlainTextResponse("hello")


handler = holdfast.Adapter(Starlette(routes=[Route("/", hello)], lifespan=lifespan))
