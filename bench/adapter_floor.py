"""How far below Mangum any in-process adapter can go: the floor under issue 17's adapter goals.

    .venv/bin/python bench/adapter_floor.py [--rounds N]

Times, side by side in interleaved rounds (the calling thread's CPU time, as bench/adapter.py
does), the raw ASGI app of bench/adapter.py on each sample event through:

* ``holdfast`` — ``holdfast.Adapter``, every feature on;
* ``mangum off`` — ``Mangum(app, lifespan="off")``, Mangum's fastest setting;
* ``bare`` — the least any adapter with holdfast's event handling does: holdfast's codec
  decodes the event (its checks included), the app runs as an asyncio task stepped once, and the
  codec encodes the response. Nothing else: no after-response work, no response checks, no
  size limit, no error handling. Not a usable adapter, a measuring stick;
* ``decode`` — the codec's decode alone.

The ratios against ``mangum off`` say how much of Mangum's time the floor itself takes: a goal
below the ``bare`` ratio cannot be met by trimming the adapter around the codec.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import holdfast
from adapter import EVENTS, Context, Mangum, load_event, raw_asgi
from holdfast.dispatch import dispatch
from holdfast.invocation import http_scope
from holdfast.sources import HTTPResponse


def bare(adapter: holdfast.Adapter) -> Callable[[dict[str, Any], Any], Any]:
    loop = adapter.engine.loop

    def handle(event: dict[str, Any], context: Any) -> Any:
        codec = dispatch(event, adapter.codecs).codec
        assert codec is not None
        request = codec.decode(event, "", context)
        response: list[Any] = [0, [], []]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": request.body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                response[0], response[1] = message["status"], message.get("headers", [])
            else:
                response[2].append(message.get("body", b""))

        scope = http_scope(request, event, context, {})
        asyncio.tasks.Task(raw_asgi(scope, receive, send), loop=loop)
        asyncio._set_running_loop(loop)
        try:
            ready = loop._ready  # type: ignore[attr-defined]
            while ready:
                ready.popleft()._run()
        finally:
            asyncio._set_running_loop(None)
        return codec.encode(HTTPResponse(response[0], response[1], b"".join(response[2])))

    return handle


def _contenders(
    event: dict[str, Any], context: Any, adapter: Any, mangum: Any, floor: Any, codec: Any
) -> dict[str, Callable[[], Any]]:
    return {
        "holdfast": lambda: adapter(event, context),
        "mangum off": lambda: mangum(event, context),
        "bare": lambda: floor(event, context),
        "decode": lambda: codec.decode(event, "", context),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    asyncio.set_event_loop(asyncio.new_event_loop())  # Mangum runs on the thread's loop
    context = Context()
    adapter = holdfast.Adapter(raw_asgi)
    mangum = Mangum(raw_asgi, lifespan="off")
    floor = bare(holdfast.Adapter(raw_asgi))
    totals: dict[str, float] = {}
    print(f"{'event':<8} {'holdfast':>9} {'mangum off':>11} {'bare':>7} {'decode':>7}  (us)")
    for name, file in EVENTS.items():
        event = load_event(file)
        codec = dispatch(event, adapter.codecs).codec
        assert codec is not None
        contenders = _contenders(event, context, adapter, mangum, floor, codec)
        assert floor(event, context)["statusCode"] == adapter(event, context)["statusCode"]
        samples: dict[str, list[float]] = {what: [] for what in contenders}
        for _ in range(args.rounds):
            for what, call in random.sample(list(contenders.items()), len(contenders)):
                start = time.thread_time()
                for _ in range(300):
                    call()
                samples[what].append((time.thread_time() - start) / 300 * 1e6)
        us = {what: statistics.median(values) for what, values in samples.items()}
        for what, value in us.items():
            totals[what] = totals.get(what, 0.0) + value
        off = us["mangum off"]
        print(
            f"{name:<8} {us['holdfast']:>9.1f} {off:>11.1f} {us['bare']:>7.1f} {us['decode']:>7.1f}"
            f"   vs mangum off: holdfast {us['holdfast'] / off:.2f}x, bare {us['bare'] / off:.2f}x,"
            f" decode {us['decode'] / off:.2f}x"
        )

    off = totals["mangum off"]
    print(
        f"overall: holdfast {totals['holdfast'] / off:.2f}x, bare {totals['bare'] / off:.2f}x,"
        f" decode {totals['decode'] / off:.2f}x of Mangum off's time"
    )


if __name__ == "__main__":
    main()
