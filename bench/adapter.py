"""Per-invocation time of ``holdfast.Adapter`` against Mangum: its default and its fastest setting.

    .venv/bin/python bench/adapter.py [--budget SECONDS] [--summary PATH]

Three apps (a raw ASGI app, Starlette, FastAPI) answer the sample events of API Gateway REST
(payload 1.0), HTTP API (payload 2.0) and ALB from tests/fixtures/events: a POST with a small
base64-encoded JSON body, answered with JSON. Each handler is called synchronously, as the
Lambda Python runtime calls it.

Time is the calling thread's CPU time (``time.thread_time``): both adapters do all of a
synchronous invocation's work in the caller's thread, and CPU time does not count the moments
another process had the core, which wall-clock time on a shared machine does. The machine is
shared and noisy all the same (caches, frequency), so the measurements are interleaved: every
round times a short batch of each (app, event, adapter) combination, in a new random order each
round; a batch's mean is one sample, and the table shows the median of those per-round means.
Ratios are holdfast / Mangum (lower is faster); "overall" compares the sums over the three
events. Mangum runs twice: with its defaults, and with ``lifespan="off"`` (its fastest fair
setting: no lifespan cycle per call); the goals (issue 17) are checked against
``lifespan="off"``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import holdfast
import summary

EVENTS_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "events"
EVENTS = {
    "REST v1": "apigateway-aws-proxy.json",
    "HTTP v2": "apigateway-http-api.json",
    "ALB": "alb-request.json",
}
GOALS = {"raw ASGI": 0.40, "FastAPI": 0.80}
ROW_NAMES = {"raw ASGI": "adapter, raw ASGI app", "FastAPI": "adapter, FastAPI route"}

ROUNDS = 60  # at most; fewer if the time budget runs out
BATCH_SECONDS = 0.02  # the length of one timed batch
BUDGET_SECONDS = 40.0  # for all the timed rounds (--budget)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


# -- the apps -----------------------------------------------------------------------------------
async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = b'{"ok":true,"received":' + body + b"}"
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


async def starlette_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "received": await request.json()})


def make_starlette() -> Starlette:
    return Starlette(routes=[Route("/path/to/resource", starlette_endpoint, methods=["POST"])])


def make_fastapi() -> FastAPI:
    app = FastAPI()

    @app.post("/path/to/resource")
    async def create(payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "received": payload}

    return app


APPS: dict[str, Callable[[], Any]] = {
    "raw ASGI": lambda: raw_asgi,
    "Starlette": make_starlette,
    "FastAPI": make_fastapi,
}
ADAPTERS: dict[str, Callable[[Any], Handler]] = {
    "holdfast": lambda app: holdfast.Adapter(app),
    "mangum": lambda app: Mangum(app),
    "mangum-off": lambda app: Mangum(app, lifespan="off"),
}


def load_event(file: str) -> dict[str, Any]:
    """A sample event, with the Content-Type header a client sends with a JSON body."""
    event = json.loads((EVENTS_DIR / file).read_text())
    event["headers"]["content-type"] = "application/json"
    if "multiValueHeaders" in event:
        event["multiValueHeaders"]["content-type"] = ["application/json"]
    return event


class Context:
    aws_request_id = "bench-request"
    function_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# -- measuring ----------------------------------------------------------------------------------
def time_batch(handler: Handler, event: dict[str, Any], context: Context, n: int) -> float:
    """Mean seconds per invocation over ``n`` calls."""
    start = time.thread_time()
    for _ in range(n):
        handler(event, context)
    return (time.thread_time() - start) / n


def check(handlers: dict[tuple[str, str], Handler], events: dict[str, dict[str, Any]]) -> None:
    """Both adapters give every app the same answer: the comparison is like for like."""
    context = Context()
    for app in APPS:
        for event_name, event in events.items():
            results = [handlers[app, adapter](event, context) for adapter in ADAPTERS]
            bodies = {json.loads(result["body"])["received"]["test"] for result in results}
            statuses = {result["statusCode"] for result in results}
            if statuses != {200} or bodies != {"body"}:
                sys.exit(f"{app} on {event_name}: the adapters disagree: {results}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="seconds of rounds")
    summary.add_argument(parser)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    logging.getLogger("mangum").setLevel(logging.WARNING)
    asyncio.set_event_loop(asyncio.new_event_loop())  # Mangum runs on the thread's loop
    events = {name: load_event(file) for name, file in EVENTS.items()}
    handlers = {
        (app, adapter): make_adapter(make_app())
        for app, make_app in APPS.items()
        for adapter, make_adapter in ADAPTERS.items()
    }
    check(handlers, events)
    context = Context()
    combos = [(app, event, adapter) for app in APPS for event in events for adapter in ADAPTERS]

    # Warm up, and size each batch to about BATCH_SECONDS.
    sizes = {}
    for app, event, adapter in combos:
        handler = handlers[app, adapter]
        time_batch(handler, events[event], context, 50)
        per_call = time_batch(handler, events[event], context, 100)
        sizes[app, event, adapter] = max(10, int(BATCH_SECONDS / per_call))

    samples: dict[tuple[str, str, str], list[float]] = {combo: [] for combo in combos}
    rng = random.Random(20240501)
    started = time.perf_counter()
    rounds = 0
    while rounds < ROUNDS and time.perf_counter() - started < args.budget:
        gc.collect()
        order = combos[:]
        rng.shuffle(order)
        for combo in order:
            app, event, adapter = combo
            handler = handlers[app, adapter]
            samples[combo].append(time_batch(handler, events[event], context, sizes[combo]))
        rounds += 1
    elapsed = time.perf_counter() - started

    medians = {combo: statistics.median(values) * 1e6 for combo, values in samples.items()}
    report(medians, list(events), rounds, elapsed)
    for handler in handlers.values():
        if isinstance(handler, holdfast.Adapter):
            handler.engine.run(handler.shutdown(timeout=5))
    rows = []
    for app, goal in GOALS.items():
        ours, off = (
            sum(medians[app, event, a] for event in events) / 3 for a in ("holdfast", "mangum-off")
        )
        # Every round timed each combination once: the overall ratio of each round.
        per_round = [
            sum(samples[app, event, "holdfast"][r] for event in events)
            / sum(samples[app, event, "mangum-off"][r] for event in events)
            for r in range(rounds)
        ]
        rows.append(
            summary.row(
                ROW_NAMES[app],
                f"{ours:.1f} us",
                f"Mangum off {off:.1f} us",
                ours / off,
                goal,
                rounds=per_round,
            )
        )
    summary.write(args.summary, rows)


def report(
    medians: dict[tuple[str, str, str], float], events: list[str], rounds: int, elapsed: float
) -> dict[str, float]:
    print(
        f"holdfast.Adapter vs Mangum: median of {rounds} interleaved rounds ({elapsed:.0f} s),"
        f" microseconds per invocation; Python {sys.version.split()[0]}"
    )
    print('"mangum" = Mangum(app) (defaults), "off" = Mangum(app, lifespan="off") (its fastest)')
    print()
    header = (
        f"{'app':<10} {'event':<8} {'holdfast':>9} {'mangum':>9} {'off':>9}"
        f" {'vs mangum':>10} {'vs off':>7}"
    )
    print(header)
    print("-" * len(header))
    overall = {}
    for app in APPS:
        rows = [(event, [medians[app, event, a] for a in ADAPTERS]) for event in events]
        totals = [sum(row[1][i] for row in rows) for i in range(len(ADAPTERS))]
        for event, (ours, theirs, off) in [*rows, ("overall", [t / 3 for t in totals])]:
            print(
                f"{app:<10} {event:<8} {ours:>9.1f} {theirs:>9.1f} {off:>9.1f}"
                f" {ours / theirs:>9.2f}x {ours / off:>6.2f}x"
            )
        overall[app] = totals[0] / totals[2]
        print()
    for app, goal in GOALS.items():
        verdict = "met" if overall[app] <= goal else "MISSED"
        print(
            f'goal {app}: <= {goal:.2f}x Mangum\'s time with lifespan="off": {overall[app]:.2f}x,'
            f" {verdict}"
        )
    return overall


if __name__ == "__main__":
    main()
