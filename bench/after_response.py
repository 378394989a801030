"""After-response work on Lambda: client latency, and whether the work finishes before the freeze.

    .venv/bin/python bench/after_response.py [--rounds N] [--cycles N] [--telemetry N]

One FastAPI app (bench/after_response_apps/ar_app.py): ``GET /task`` answers at once and leaves a
BackgroundTasks task that sleeps 300 ms, then records its finish time (time.monotonic(), one clock
for every process on Linux) with the invocation's request id; ``GET /compute`` leaves one that
computes for 800 ms *before* its first ``await`` (CPU work the response must not wait for: the
app's final ``send`` returns only once the host has handed the response over); ``GET /plain``
gives the same answer with no task. It runs under the holdfast emulator — a local Lambda that
really freezes the environment (SIGSTOP of its process group) once the runtime and every INVOKE
extension are back in ``next`` — hosted four ways:

* **holdfast custom runtime**: ``python -m holdfast run ar_app:app``;
* **holdfast Adapter + awslambdaric**: AWS's runtime client, ``handler = holdfast.Adapter(app)``
  (holdfast's internal extension holds the freeze until the work is done);
* **Mangum + awslambdaric**: ``handler = Mangum(app)``, which returns only once the app's call,
  background tasks included, has returned;
* **proxy (LWA-style)**: the Lambda Web Adapter architecture — uvicorn serves the app in the
  function's process, and an awslambdaric handler forwards each event to it over HTTP and returns
  as soon as uvicorn answers.

Each setup gets one emulator (concurrency 1, timeout 30 s, Function URL v2 events), is warmed up,
then runs rounds of ``/task``, ``/compute`` and ``/plain`` (the order flips every round). Every
request goes over a kept-alive http.client connection to the emulator's HTTP front and is timed
there; the bench then waits until the environment is frozen again, so each request meets a warm,
idle environment (with concurrency 1, a request sent while the environment still drains would
queue behind it). The setups run one after another, never at once (2 shared cores), and the whole
cycle over the setups is repeated (in reverse order the second time) so drift touches them all.

Then, for each telemetry library holdfast flushes with no code (the OpenTelemetry SDK with an
OTLP/HTTP exporter, ddtrace with an agent at a URL, sentry_sdk), ``holdfast run`` serves
tests/telemetry/traced_apps.py (each request makes a span or event carrying its request id)
against the tests' stand-in back end on 127.0.0.1, once with the flush and once with
``HOLDFAST_FLUSH_TELEMETRY=false``: the flush's cost is the difference of the median
post-response time (response posted to freeze), and every request's trace must have arrived
before its own freeze.

A task counts as *finished before the freeze* when its recorded finish time is earlier than its
own invocation's ``frozen_at`` in the emulator's freeze log; a task that finished on a later thaw,
or never, does not count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from holdfast.emulator import ThreadedEmulator

APPS = Path(__file__).resolve().parent / "after_response_apps"
# The traced app and the stand-in back end are the telemetry tests' own.
TELEMETRY = Path(__file__).resolve().parent.parent / "tests" / "telemetry"
PYTHON = sys.executable

# name -> (command, _HANDLER)
SETUPS: dict[str, tuple[list[str], str]] = {
    "holdfast custom runtime": ([PYTHON, "-m", "holdfast", "run", "ar_app:app"], "ar_app:app"),
    "holdfast Adapter + awslambdaric": (
        [PYTHON, "-m", "awslambdaric", "ar_adapter.handler"],
        "ar_adapter.handler",
    ),
    "Mangum + awslambdaric": (
        [PYTHON, "-m", "awslambdaric", "ar_mangum.handler"],
        "ar_mangum.handler",
    ),
    "proxy (uvicorn, LWA-style)": (
        [PYTHON, "-m", "awslambdaric", "ar_proxy.handler"],
        "ar_proxy.handler",
    ),
}
GOAL_SETUPS = ("holdfast custom runtime", "holdfast Adapter + awslambdaric")
GOAL_RATIO = 1.1
GOAL_FINISHED = 100.0
GOAL_FLUSH_MS = 5.0

WARMUP_ROUNDS = 5
KINDS = ("task", "fire", "compute", "plain")
# The runtime's stdout/stderr go to a file (shown when a setup fails), not into the table.
_WRAP = ["/bin/sh", "-c", 'exec "$@" >>"$HOLDFAST_BENCH_LOG" 2>&1', "sh"]


class Unavailable(Exception):
    """The setup cannot run here; the message says why."""


@dataclass
class Setup:
    name: str
    command: list[str]
    handler: str
    workdir: Path
    emulator: ThreadedEmulator | None = None
    connection: http.client.HTTPConnection | None = None
    unavailable: str | None = None
    latency: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    ids: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    notes: list[str] = field(default_factory=list)

    @property
    def record(self) -> Path:
        return self.workdir / "record.txt"

    @property
    def runtime_log(self) -> Path:
        return self.workdir / "runtime.log"

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir()
        self.record.touch()
        self.runtime_log.touch()
        self.emulator = ThreadedEmulator(
            [*_WRAP, *self.command],
            cwd=str(APPS),
            env={
                "HOLDFAST_BENCH_RECORD": str(self.record),
                "HOLDFAST_BENCH_LOG": str(self.runtime_log),
            },
            handler=self.handler,
            timeout=30,
            concurrency=1,
            event_format="v2",
            log=self.notes.append,
        )
        self.emulator.start()
        self.get("/plain")  # the cold start; also shows whether the setup works at all
        for _ in range(WARMUP_ROUNDS):
            for kind in KINDS:
                self.get(f"/{kind}")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.emulator is not None:
            emulator, self.emulator = self.emulator, None
            emulator.close()

    def fail(self, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        tail = [line for line in self.runtime_log.read_text().splitlines() if line.strip()]
        if tail:
            reason += f"; runtime said: {tail[-1].strip()[:200]}"
        self.unavailable = reason
        print(f"{self.name}: not available: {reason}", file=sys.stderr)
        try:
            self.close()
        except Exception as close_exc:
            print(f"{self.name}: close failed: {close_exc!r}", file=sys.stderr)

    # -- requests -------------------------------------------------------------------------------
    def get(self, path: str) -> tuple[float, str]:
        """GET ``path`` through the emulator's front: (client latency, request id).

        Returns once the environment is frozen (or reset) again.
        """
        assert self.emulator is not None
        for attempt in range(2):
            if self.connection is None:
                host, port = self.emulator.url.removeprefix("http://").rsplit(":", 1)
                self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                started = time.perf_counter()
                self.connection.request("GET", path)
                response = self.connection.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                break
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        self.emulator.wait_idle(timeout=60)
        if response.status != 200:
            last = self.emulator.freeze_log[-1] if self.emulator.freeze_log else None
            outcome = f" (invocation outcome: {last.outcome})" if last else ""
            raise Unavailable(f"GET {path}: HTTP {response.status} {body[:120]!r}{outcome}")
        try:
            request_id = json.loads(body)["request_id"]
        except (ValueError, KeyError, TypeError):
            raise Unavailable(f"GET {path}: unexpected answer {body[:120]!r}") from None
        return elapsed, request_id

    def round(self, task_first: bool) -> None:
        for kind in KINDS if task_first else KINDS[::-1]:
            elapsed, request_id = self.get(f"/{kind}")
            self.latency[kind].append(elapsed)
            self.ids[kind].append(request_id)

    # -- results --------------------------------------------------------------------------------
    def tally(self) -> dict[str, float]:
        """Where the measured tasks finished, relative to their own invocation's freeze."""
        assert self.emulator is not None
        finished: dict[str, float] = {}
        for line in self.record.read_text().splitlines():
            _, request_id, at = line.split()
            finished[request_id] = float(at)
        freezes = {entry.request_id: entry for entry in self.emulator.freeze_log}
        counts = {"before": 0, "late": 0, "never": 0, "fire_before": 0}
        busy = []
        for kind in ("task", "compute", "fire"):
            for request_id in self.ids[kind]:
                freeze = freezes[request_id]
                if freeze.post_response is not None:
                    busy.append(freeze.post_response)
                done_at = finished.get(request_id)
                if done_at is None:
                    counts["never"] += 1
                elif (
                    freeze.outcome == "frozen"
                    and freeze.frozen_at is not None
                    and done_at < freeze.frozen_at
                ):
                    counts["before"] += 1
                    counts["fire_before"] += kind == "fire"
                else:
                    counts["late"] += 1
        return {
            **counts,
            "busy": statistics.median(busy) if busy else float("nan"),
            # In the environment, from the invocation's start to its posted response: the
            # client's latency without the network and the emulator's front.
            **{f"in_env_{kind}": _median_in_env(freezes, ids) for kind, ids in self.ids.items()},
        }


def _median_in_env(freezes: dict[str, Any], request_ids: list[str]) -> float:
    spans = [
        freezes[rid].response_sent_at - (freezes[rid].thawed_at or freezes[rid].started_at)
        for rid in request_ids
        if freezes[rid].response_sent_at is not None
    ]
    return statistics.median(spans) if spans else float("nan")


def bench(rounds: int, cycles: int) -> tuple[list[Setup], dict[str, dict[str, float]]]:
    tallies: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="holdfast-bench-") as tmp:
        setups = [
            Setup(name, command, handler, Path(tmp, f"setup{index}"))
            for index, (name, (command, handler)) in enumerate(SETUPS.items())
        ]
        try:
            for setup in setups:
                print(f"starting {setup.name} ...", file=sys.stderr)
                try:
                    setup.start()
                except Exception as exc:  # one broken setup must not stop the rest
                    setup.fail(exc)
            for cycle in range(cycles):
                order = setups if cycle % 2 == 0 else setups[::-1]
                for setup in order:
                    if setup.unavailable:
                        continue
                    started = time.perf_counter()
                    try:
                        for round_no in range(rounds):
                            setup.round(task_first=round_no % 2 == 0)
                    except Exception as exc:
                        setup.fail(exc)
                        continue
                    print(
                        f"cycle {cycle + 1}/{cycles}: {setup.name}: {rounds} rounds"
                        f" in {time.perf_counter() - started:.1f} s",
                        file=sys.stderr,
                    )
            for setup in setups:
                if not setup.unavailable:
                    tallies[setup.name] = setup.tally()
        finally:
            for setup in setups:
                setup.close()
    return setups, tallies


def report(
    setups: list[Setup], tallies: dict[str, dict[str, float]], rounds: int, cycles: int
) -> None:
    print(
        "FastAPI endpoint with a 300 ms BackgroundTasks task (/task), with the same job started"
        "\nby a plain asyncio.create_task (/fire), with one computing 800 ms before its first"
        "\nawait (/compute), and with none (/plain), under the holdfast emulator (real SIGSTOP"
        f"\nfreeze, concurrency 1); {cycles} cycles x {rounds} rounds of each per setup\n"
    )
    header = (
        f"{'setup':<32}{'/task (ms)':>11}{'/fire':>8}{'/compute':>10}{'/plain (ms)':>12}"
        f"{'task/plain':>11}{'fire/plain':>11}{'compute/plain':>14}"
        f"{'finished before freeze':>24}{'/fire finished':>16}{'busy after resp.':>18}"
    )
    print(header)
    print("-" * len(header))
    ratios: dict[str, float] = {}
    fire_ratios: dict[str, float] = {}
    compute_ratios: dict[str, float] = {}
    shares: dict[str, float] = {}
    fire_shares: dict[str, float] = {}
    for setup in setups:
        if setup.unavailable:
            print(f"{setup.name:<32}not available: {setup.unavailable}")
            continue
        task = statistics.median(setup.latency["task"])
        fire = statistics.median(setup.latency["fire"])
        compute = statistics.median(setup.latency["compute"])
        plain = statistics.median(setup.latency["plain"])
        tally = tallies[setup.name]
        total = sum(len(setup.ids[kind]) for kind in ("task", "compute", "fire"))
        fires = len(setup.ids["fire"])
        ratios[setup.name] = task / plain
        fire_ratios[setup.name] = fire / plain
        compute_ratios[setup.name] = compute / plain
        shares[setup.name] = 100.0 * tally["before"] / total
        fire_shares[setup.name] = 100.0 * tally["fire_before"] / fires
        finished = f"{shares[setup.name]:.0f} % ({tally['before']:.0f}/{total})"
        fired = f"{fire_shares[setup.name]:.0f} % ({tally['fire_before']:.0f}/{fires})"
        print(
            f"{setup.name:<32}{task * 1e3:>11.1f}{fire * 1e3:>8.1f}{compute * 1e3:>10.1f}"
            f"{plain * 1e3:>12.1f}{task / plain:>10.2f}x{fire / plain:>10.2f}x"
            f"{compute / plain:>13.2f}x{finished:>24}{fired:>16}{tally['busy'] * 1e3:>15.0f} ms"
        )
    print("\nin the environment (invocation start to posted response), medians:")
    for setup in setups:
        tally = tallies.get(setup.name)
        if tally is None:
            continue
        task, fire, compute, plain = (tally[f"in_env_{kind}"] for kind in KINDS)
        print(
            f"{setup.name:<32}/task {task * 1e3:.2f} ms  /fire {fire * 1e3:.2f} ms"
            f"  /compute {compute * 1e3:.2f} ms  /plain {plain * 1e3:.2f} ms"
            f"  compute/plain {compute / plain:.2f}x"
        )
    print(
        "\nlatencies: medians at the HTTP client; 'busy after resp.': median time from a /task or"
        "\n/compute response to the freeze (the environment is billed and not free for the next"
        " request)."
    )
    for setup in setups:
        tally = tallies.get(setup.name)
        if tally and (tally["late"] or tally["never"]):
            print(
                f"{setup.name}: {tally['late']:.0f} task(s) finished only after their freeze"
                f" (on a later thaw), {tally['never']:.0f} had not finished by the end"
            )
    print()
    for name in GOAL_SETUPS:
        setup = next(s for s in setups if s.name == name)
        if setup.unavailable:
            print(f"goal {name}: MISSED (not available: {setup.unavailable})")
            continue
        ratio, compute_ratio, share = ratios[name], compute_ratios[name], shares[name]
        fire_ratio, fire_share = fire_ratios[name], fire_shares[name]
        print(
            f"goal {name}: latency /task <= {GOAL_RATIO}x /plain: {ratio:.2f}x"
            f" {_met(ratio <= GOAL_RATIO)}; /fire: {fire_ratio:.2f}x"
            f" {_met(fire_ratio <= GOAL_RATIO)}; /compute: {compute_ratio:.2f}x"
            f" {_met(compute_ratio <= GOAL_RATIO)}; finished before freeze 100 %: {share:.0f} %"
            f" {_met(share >= GOAL_FINISHED)} (/fire alone {fire_share:.0f} %"
            f" {_met(fire_share >= GOAL_FINISHED)})"
        )


def _met(met: bool) -> str:
    return "MET" if met else "MISSED"


@dataclass
class FlushCost:
    library: str
    post_response: dict[bool, float]  # flush on / off -> median seconds, response to freeze
    arrived: int  # with the flush: traces that arrived before their own freeze
    invocations: int


def bench_telemetry(invocations: int) -> list[FlushCost]:
    sys.path.insert(0, str(TELEMETRY))
    from standins import LIBRARY_ENV, Collector, library_env

    costs = []
    with tempfile.TemporaryDirectory(prefix="holdfast-bench-telemetry-") as tmp:
        log = Path(tmp, "runtime.log")
        for library in LIBRARY_ENV:
            cost = FlushCost(library, {}, 0, invocations)
            for flush in (True, False):
                print(
                    f"telemetry: {library}, flush {'on' if flush else 'off'} ...", file=sys.stderr
                )
                with Collector() as collector:
                    env = library_env(library, collector) | {
                        "HOLDFAST_FLUSH_TELEMETRY": "true" if flush else "false",
                        "HOLDFAST_BENCH_LOG": str(log),
                    }
                    emulator = ThreadedEmulator(
                        [*_WRAP, PYTHON, "-m", "holdfast", "run", "traced_apps:app"],
                        cwd=str(TELEMETRY),
                        env=env,
                        timeout=30,
                        concurrency=1,
                        event_format="v2",
                        log=lambda line: None,
                    )
                    emulator.start()
                    try:
                        ids = [_traced(emulator) for _ in range(5 + invocations)][5:]
                        freezes = {e.request_id: e for e in emulator.freeze_log}
                    finally:
                        emulator.close()
                    spans = [freezes[rid].post_response for rid in ids]
                    cost.post_response[flush] = statistics.median(
                        span for span in spans if span is not None
                    )
                    if flush:
                        for rid in ids:
                            arrival = collector.first_with(rid)
                            frozen_at = freezes[rid].frozen_at
                            if arrival and frozen_at is not None and arrival.at < frozen_at:
                                cost.arrived += 1
            costs.append(cost)
    return costs


def _traced(emulator: ThreadedEmulator) -> str:
    host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", "/traced")
        body = connection.getresponse().read()
    finally:
        connection.close()
    emulator.wait_idle(timeout=60)
    return str(json.loads(body)["request_id"])


def report_telemetry(costs: list[FlushCost]) -> None:
    print("\ntelemetry flush with no code (holdfast run): median post-response time per invocation")
    header = (
        f"{'library':<16}{'flush on (ms)':>14}{'flush off (ms)':>15}{'added (ms)':>12}"
        f"{'arrived before freeze':>23}"
    )
    print(header)
    print("-" * len(header))
    for cost in costs:
        on, off = cost.post_response[True], cost.post_response[False]
        print(
            f"{cost.library:<16}{on * 1e3:>14.2f}{off * 1e3:>15.2f}{(on - off) * 1e3:>12.2f}"
            f"{f'{cost.arrived}/{cost.invocations}':>23}"
        )
    for cost in costs:
        added = (cost.post_response[True] - cost.post_response[False]) * 1e3
        print(
            f"goal {cost.library}: flush adds <= {GOAL_FLUSH_MS:.0f} ms: {added:.2f} ms"
            f" {_met(added <= GOAL_FLUSH_MS)}; every trace before its freeze:"
            f" {cost.arrived}/{cost.invocations} {_met(cost.arrived == cost.invocations)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per setup per cycle")
    parser.add_argument("--cycles", type=int, default=2, help="passes over the setups")
    parser.add_argument(
        "--telemetry", type=int, default=40, help="invocations per telemetry library (0: skip)"
    )
    args = parser.parse_args()
    setups, tallies = bench(args.rounds, args.cycles)
    report(setups, tallies, args.rounds, args.cycles)
    if args.telemetry:
        report_telemetry(bench_telemetry(args.telemetry))


if __name__ == "__main__":
    main()
