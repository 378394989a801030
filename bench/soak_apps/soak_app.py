"""The soak's app: a plain answer, one with after-response work, a streamed one, an error."""

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

finished = 0


async def record_work() -> None:
    global finished
    finished += 1


async def plain(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def background(request: Request) -> Response:
    return JSONResponse({"ok": True}, background=BackgroundTask(record_work))


async def stream(request: Request) -> Response:
    async def chunks():
        for index in range(3):
            yield f"chunk {index}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def failure(request: Request) -> Response:
    return JSONResponse({"error": "failed on purpose"}, status_code=500)


app = Starlette(
    routes=[
        Route("/", plain),
        Route("/background", background),
        Route("/stream", stream),
        Route("/fail", failure),
    ]
)
