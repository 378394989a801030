"""The app of the LWA conformance tests, served in-process (`holdfast run conformance_app:app`)
and by uvicorn behind `holdfast proxy`. Every route reports what reached the app, so the tests
compare both hosts on the same observations."""

import asyncio
import gzip
import json
import os

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

app = FastAPI()
TEXT = "Hello World! This body is long enough to be compressed, ok?"


def _hits(path: str) -> None:
    record = os.environ.get("HOLDFAST_TEST_RECORD")
    if record:
        with open(record, "a") as file:
            file.write(f"{path}\n")


@app.get("/health")
async def health() -> Response:
    _hits("/health")
    return Response("ok", status_code=int(os.environ.get("HOLDFAST_TEST_HEALTH", "200")))


@app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def echo(request: Request, rest: str) -> Response:
    body = await request.body()
    if rest.startswith("status/"):
        return Response(f"status body {rest}", status_code=int(rest.split("/")[1]))
    if rest == "text":
        return Response(TEXT, media_type="text/plain")
    if rest == "precompressed":
        data = gzip.compress(TEXT.encode(), mtime=0)
        return Response(data, media_type="text/plain", headers={"content-encoding": "gzip"})
    if rest == "events-stream":
        return Response("data: " + TEXT + "\n\n", media_type="text/event-stream")
    if rest == "graphql":
        media = "application/graphql-response+json; charset=utf-8"
        return Response('{"data": {"x": 1}}', media_type=media)
    if rest == "binary":
        return Response(bytes([0, 1, 2, 255, 254]), media_type="application/octet-stream")
    if rest == "stream":
        return StreamingResponse(_stream(), media_type="text/plain")
    if rest == "events" and request.method == "POST":
        return Response(json.dumps({"got": json.loads(body)}), media_type="application/json")
    document = {
        "method": request.method,
        "path": request.scope["path"],
        # What the app routes on: the path below the root path (the removed base path).
        "route_path": request.scope["path"][len(request.scope.get("root_path", "")) :] or "/",
        "raw_path": request.scope["raw_path"].decode("latin-1"),
        "query": request.scope["query_string"].decode("latin-1"),
        "headers": [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]
        ],
        "body": body.hex(),
    }
    if rest == "slow":
        await asyncio.sleep(0.2)
    return Response(json.dumps(document), media_type="application/json")


async def _stream():
    yield b"first\n"
    await asyncio.sleep(0.05)
    yield b"second\n"
