"""holdfast.azure.FunctionApp against azure.functions.AsgiFunctionApp: a 300 ms BackgroundTask.

    .venv/bin/python bench/azure.py        (make bench-azure)

One FastAPI app with two endpoints of the same signature: `GET /plain` answers JSON;
`GET /background` answers the same JSON and adds a BackgroundTask that sleeps 300 ms. A server
process hosts both frameworks the way the Azure Python worker runs them
(tests/azure/worker_standin.py; no Functions host binary exists on this machine):

* holdfast, HTTP streaming mode: requests go to the real web server of
  `azurefunctions-extensions-http-fastapi` (uvicorn) with an `x-ms-invocation-id`, and each
  starts its invocation as the worker's dispatcher runs it; holdfast hands the response to the
  worker's coordinator at once and returns after the drain;
* AsgiFunctionApp, classic mode (its only mode): a front plays the host, turning each request
  into an `azure.functions.HttpRequest` and sending the `HttpResponse` when the function
  returns.

A client in another process (as the host's clients are) measures each request's latency until
the whole response is in; the server records when each background task finished and when its
invocation ended. Rounds interleave the four (framework, endpoint) pairs in a random order;
the table shows medians. Goal: holdfast's background endpoint within 1.1x of its plain one,
with 100 % of the tasks done before their invocation ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

# Run as a script, this file's folder leads sys.path and its name would shadow the `azure`
# package: take the folder out, and put the worker stand-in's in.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent / "tests" / "azure"))

from fastapi import BackgroundTasks, FastAPI  # noqa: E402 - after the sys.path fix

ROUNDS = 60
TASK_SECONDS = 0.3


def make_api(done: dict[str, float]) -> FastAPI:
    api = FastAPI()

    @api.get("/plain")
    async def plain(tag: str) -> dict:  # the same signature, without the task
        return {"ok": True}

    @api.get("/background")
    async def background(tag: str, tasks: BackgroundTasks) -> dict:
        async def work() -> None:
            await asyncio.sleep(TASK_SECONDS)
            done[tag] = time.perf_counter()

        tasks.add_task(work)
        return {"ok": True}

    return api


# -- the server process -----------------------------------------------------------------------
async def serve() -> None:
    import azure.functions as func
    import uvicorn
    from worker_standin import Context, StreamingWorker, _free_port, _function

    import holdfast
    import holdfast.azure

    logging.disable(logging.WARNING)
    done: dict[str, float] = {}
    ours = holdfast.azure.FunctionApp(
        holdfast.Adapter(make_api(done)), streaming=True, route_prefix=""
    )
    theirs = _function(func.AsgiFunctionApp(make_api(done), http_auth_level="ANONYMOUS"))
    classic_ended: dict[str, float] = {}

    async def front(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode()
        if scope["path"] == "/__stats":
            stats = {"done": done, "holdfast": worker.ended, "AsgiFunctionApp": classic_ended}
            payload = json.dumps(stats).encode()
        else:
            tag = parse_qs(query)["tag"][0]
            request = func.HttpRequest(
                scope["method"], f"http://127.0.0.1{scope['path']}?{query}", headers={}, body=body
            )
            response = await theirs(request, Context(tag, "http_app_func"))
            classic_ended[tag] = time.perf_counter()
            payload = response.get_body()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    classic_port = _free_port()
    config = uvicorn.Config(front, host="127.0.0.1", port=classic_port, log_level="error")
    server = uvicorn.Server(config)
    async with StreamingWorker() as worker:
        worker.serving = ours
        running = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        print(worker.port, classic_port, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the client is done
        server.should_exit = True
        await running


# -- the client process -----------------------------------------------------------------------
def measure() -> int:
    import httpx

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        streaming_port, classic_port = (int(p) for p in server.stdout.readline().split())
        bases = {
            "holdfast": f"http://127.0.0.1:{streaming_port}",
            "AsgiFunctionApp": f"http://127.0.0.1:{classic_port}",
        }
        latencies: dict[tuple[str, str], list[float]] = {}
        tags: dict[str, list[str]] = {name: [] for name in bases}
        with httpx.Client(timeout=30) as client:
            pairs = [(name, endpoint) for name in bases for endpoint in ("plain", "background")]
            for round_ in range(-3, ROUNDS):  # three warm-up rounds
                random.shuffle(pairs)
                for name, endpoint in pairs:
                    tag = f"{name}-{endpoint}-{round_}"
                    headers = {"x-ms-invocation-id": tag}
                    started = time.perf_counter()
                    response = client.get(
                        f"{bases[name]}/{endpoint}", params={"tag": tag}, headers=headers
                    )
                    latency = time.perf_counter() - started
                    assert response.status_code == 200, (name, endpoint, response.text)
                    if round_ >= 0:
                        latencies.setdefault((name, endpoint), []).append(latency)
                        if endpoint == "background":
                            tags[name].append(tag)
                    # The next request waits for this invocation to end: no overlap between two.
                    time.sleep(TASK_SECONDS + 0.05 if endpoint == "background" else 0.01)
            stats = client.get(f"{bases['AsgiFunctionApp']}/__stats").json()
        server.stdin.close()
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    print(f"{ROUNDS} rounds, median latency (ms) seen by a client in another process;")
    print(f"background task {TASK_SECONDS * 1000:.0f} ms")
    print(f"{'':18}{'plain':>10}{'background':>12}{'ratio':>8}{'tasks done in invocation':>27}")
    ok = True
    for name in bases:
        plain = statistics.median(latencies[(name, "plain")]) * 1000
        background = statistics.median(latencies[(name, "background")]) * 1000
        ended = stats[name]
        inside = [
            tag in stats["done"] and 0 < stats["done"][tag] <= ended.get(tag, 0)
            for tag in tags[name]
        ]
        share = 100 * sum(inside) / len(inside)
        print(f"{name:18}{plain:10.1f}{background:12.1f}{background / plain:8.2f}x{share:25.0f} %")
        if name == "holdfast":
            ok = background <= 1.1 * plain and share == 100
    print("goal (holdfast: <= 1.1x, 100 % inside):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    if "--serve" in sys.argv:
        asyncio.run(serve())
    else:
        sys.exit(measure())
