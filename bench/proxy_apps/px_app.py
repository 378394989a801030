"""The FastAPI app bench/proxy.py serves in-process (``holdfast run px_app:app``) and behind
``holdfast proxy`` (uvicorn). ``GET /plain`` answers a small JSON document; ``GET /stream``
sends its first chunk at once, then a second one 200 ms later."""

import asyncio

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from holdfast.completion import CompletionMiddleware

app = FastAPI()
app.add_middleware(CompletionMiddleware)


@app.get("/plain")
async def plain() -> dict:
    return {"ok": True}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def produce():
        yield b"first chunk\n"
        await asyncio.sleep(0.2)
        yield b"second chunk\n"

    return StreamingResponse(produce(), media_type="text/plain")
