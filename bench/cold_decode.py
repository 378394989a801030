"""What decoding an event costs with the caches cold, as it is after the app's own work: holdfast's
codec against Mangum's scope building, counted by valgrind.

    .venv/bin/python bench/cold_decode.py [--event "REST v1"|"HTTP v2"|ALB] [--calls N]
        [--baseline SRC]

Why: in a warm loop holdfast's decoding and Mangum's execute about as many instructions, yet
behind Starlette or FastAPI holdfast's takes longer (``bench/adapter.py``'s per-event rows): the
app's work evicts the decoder's code and data from the caches between two requests, and a
decoder that touches more code (more functions, more distinct C routines) pays more misses
for it. Wall-clock time on a shared VM cannot show that difference, and this VM has no hardware
counters; valgrind's cache and branch simulation counts it exactly, the same every run.

Each measured call follows one FastAPI request driven directly (the eviction a real request
causes). The figures are the difference between N calls of (request, decode) and N calls of
the request alone, per call: instructions, L1 instruction and data misses, misses of a 1 MiB
L2 (this machine's), mispredicted branches, and a cycle estimate (1 per instruction, 12 per L1
miss, 40 per L2 miss, 15 per misprediction). ``--baseline SRC`` also counts another
holdfast's sources (e.g. ``git archive <rev> src | tar -x -C /tmp/x``). Needs valgrind; about
a minute per side.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile

import adapter as bench_adapter  # its apps and its sample events, by name

COUNTERS = {
    "I   refs": "instructions",
    "I1  misses": "L1i misses",
    "D1  misses": "L1d misses",
    "LLi misses": "L2 misses (i)",
    "LLd misses": "L2 misses (d)",
    "Mispredicts": "mispredicted branches",
}
CYCLES = {
    "I   refs": 1,
    "I1  misses": 12,
    "D1  misses": 12,
    "LLi misses": 40,
    "LLd misses": 40,
    "Mispredicts": 15,
}


def child(side: str, event_name: str, calls: int) -> None:
    """The measured program: ``calls`` times a FastAPI request, then ``side``'s decoding."""
    import warnings

    warnings.simplefilter("ignore")
    from mangum.handlers.alb import ALB
    from mangum.handlers.api_gateway import APIGateway, HTTPGateway
    from mangum.types import LambdaConfig

    import holdfast
    from holdfast.dispatch import dispatch
    from holdfast.invocation import http_scope

    event = bench_adapter.load_event(bench_adapter.EVENTS[event_name])
    context = bench_adapter.Context()
    codec = dispatch(event, holdfast.Adapter(bench_adapter.raw_asgi).codecs).codec
    assert codec is not None
    config = LambdaConfig(
        api_gateway_base_path="/", text_mime_types=["application/json"], exclude_headers=[]
    )
    handler = {"REST v1": APIGateway, "HTTP v2": HTTPGateway, "ALB": ALB}[event_name]
    decoders = {
        "holdfast": lambda: codec.decode(event, "", context),
        "mangum": lambda: handler(event, context, config).scope,
        "none": lambda: None,
    }
    decode = decoders[side]
    scope = http_scope(codec.decode(event, "", context), event, context, {})
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else b"{}"
    app = bench_adapter.make_fastapi()

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        pass

    def request() -> None:
        coroutine = app(dict(scope), receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            pass
        else:
            raise RuntimeError("the app awaited a real future")

    for _ in range(100 + calls):
        request()
        decode()


def count(side: str, event_name: str, calls: int, source: str | None) -> dict[str, int]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if source:
        env["PYTHONPATH"] = source
    with tempfile.NamedTemporaryFile() as out:
        done = subprocess.run(
            [
                *("valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes"),
                *("--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,8,64"),
                f"--cachegrind-out-file={out.name}",
                sys.executable,
                __file__,
                *("--child", side, "--event", event_name, "--calls", str(calls)),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    counters = {}
    for line in done.stderr.splitlines():
        match = re.search(r"==\d+== (.+?):\s+([\d,]+)", line)
        if match and match.group(1).strip() in COUNTERS:
            counters[match.group(1).strip()] = int(match.group(2).replace(",", ""))
    return counters


def per_call(side: str, event_name: str, calls: int, source: str | None) -> dict[str, float]:
    with_side = count(side, event_name, calls, source)
    alone = count("none", event_name, calls, source)
    figures = {key: (with_side[key] - alone[key]) / (100 + calls) for key in COUNTERS}
    figures["cycles"] = sum(figures[key] * weight for key, weight in CYCLES.items())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--event", choices=list(bench_adapter.EVENTS), default="REST v1")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--baseline", metavar="SRC", help="also count the holdfast in SRC")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.event, args.calls)
        return
    sides = {"holdfast": ("holdfast", None), "Mangum": ("mangum", None)}
    if args.baseline:
        sides["baseline holdfast"] = ("holdfast", args.baseline)
    results = {
        name: per_call(side, args.event, args.calls, source)
        for name, (side, source) in sides.items()
    }
    print(f"decoding a {args.event} event after a FastAPI request, per call (valgrind)\n")
    names = list(results)
    print(f"{'':24}" + "".join(f"{name:>20}" for name in names))
    for key, label in [*COUNTERS.items(), ("cycles", "cycles (estimate)")]:
        print(f"{label:<24}" + "".join(f"{results[name][key]:>20,.0f}" for name in names))
    mangum = results["Mangum"]["cycles"]
    for name in names:
        if name != "Mangum":
            print(f"\n{name} / Mangum, cycles (estimate): {results[name]['cycles'] / mangum:.2f}x")


if __name__ == "__main__":
    main()
