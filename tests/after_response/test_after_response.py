"""After-response work finishes before the freeze, under the emulator's real SIGSTOP freeze.

Both hosts: AWS's own runtime client (awslambdaric, unmodified) with `handler =
holdfast.Adapter(app)`, where holdfast's internal extension holds the freeze; and holdfast's
custom runtime, which posts the response, drains, then asks for the next event.
"""

import json
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from freeze_support import emulators, get, host_commands, records, wait_for
from holdfast.emulator import ThreadedEmulator

HERE = Path(__file__).parent
HOSTS = host_commands("after_apps")


@pytest.fixture(params=sorted(HOSTS))
def start(request, tmp_path):
    with emulators(HOSTS[request.param], HERE, tmp_path) as start:
        yield start


def test_every_background_task_finishes_before_the_freeze(start):
    emulator, record = start(concurrency=2)

    def answer_then_release(_: int) -> tuple[int, bytes, float]:
        answer = get(emulator.url, "/gated")
        # Only now may the request's after-response work finish (see after_apps.gated).
        request_id = json.loads(answer[1])["request_id"]
        Path(f"{record}.release-{request_id}").touch()
        return answer

    with ThreadPoolExecutor(2) as clients:
        results = list(clients.map(answer_then_release, range(200)))
    results = [(status, json.loads(body), at) for status, body, at in results]
    emulator.wait_idle(timeout=60)

    assert all(status == 200 for status, _, _ in results)
    finished = records(record)
    assert not [key for key in finished if key[0] == "unreleased"]  # no answer waited for work
    freezes = {entry.request_id: entry for entry in emulator.freeze_log}
    # Every comparison below is an order of causes, read on one system-wide monotonic clock:
    # the emulator takes `response_sent_at` before it hands the caller the response, the client
    # `answered_at` before it releases the work, the work its finishing time once released, and
    # the emulator `frozen_at` once every process of the environment is stopped.
    for _, body, answered_at in results:
        request_id = body["request_id"]
        freeze = freezes[request_id]
        assert freeze.outcome == "frozen", freeze
        for kind in ("task", "after"):
            done_at = finished[(kind, request_id)]
            # The work finished inside the invocation: before the environment froze ...
            assert done_at < freeze.frozen_at, (kind, request_id)
            # ... and after the caller had its answer: the response did not wait for it.
            assert freeze.response_sent_at < done_at, (kind, request_id)
            assert answered_at < done_at, (kind, request_id)


def test_background_cpu_work_before_its_first_await_does_not_delay_the_response(start, request):
    # The app's code after its last body chunk (where Starlette runs BackgroundTasks) must not
    # run before the host has the response: the final send returns only after the hand-over.
    emulator, record = start()
    status, body, answered_at = get(emulator.url, "/compute-first?ms=800")
    emulator.wait_idle(timeout=60)

    assert status == 200
    request_id = json.loads(body)["request_id"]
    freeze = next(e for e in emulator.freeze_log if e.request_id == request_id)
    finished = records(record)
    # The caller had its answer before the 800 ms of CPU work were done, and the environment
    # froze only once they were.
    assert answered_at < finished[("cpu-done", request_id)] < freeze.frozen_at
    if request.node.callspec.params["start"] == "holdfast-run":
        # The custom runtime hands over once its POST /response is answered: the work had not
        # even started when the emulator had the response.
        assert freeze.response_sent_at < finished[("cpu-start", request_id)]


def test_work_longer_than_the_remaining_time_is_reported_not_lost(start, capfd):
    emulator, record = start(timeout=3)
    status, body, _ = get(emulator.url, "/too-long?ms=60000")
    emulator.wait_idle(timeout=30)

    assert status == 200
    request_id = json.loads(body)["request_id"]
    freeze = next(e for e in emulator.freeze_log if e.request_id == request_id)
    # The drain stopped before the deadline: no timeout, the environment froze normally ...
    assert freeze.outcome == "frozen"
    assert ("task", request_id) not in records(record)
    # ... and the cancelled work was reported with the request id and what it was.
    output = capfd.readouterr()
    lines = (output.out + output.err).splitlines()
    reported = [line for line in lines if request_id in line and "_slow_task" in line]
    assert reported and "cancelled" in reported[0]


def test_failing_after_response_work_does_not_change_the_response(start, capfd):
    emulator, _ = start()
    status, body, _ = get(emulator.url, "/fails-after")
    emulator.wait_idle(timeout=30)

    assert (status, json.loads(body)) == (200, {"ok": True})
    output = capfd.readouterr()
    assert "failed on purpose" in output.out + output.err
    assert emulator.freeze_log[-1].outcome == "frozen"


def test_managed_runtime_runs_lifespan_shutdown_at_sigterm(tmp_path):
    # The internal extension earns the runtime a SIGTERM (500 ms before SIGKILL); awslambdaric
    # idles in C inside /next, so only holdfast's sigwait thread can act on it.
    record = tmp_path / "record.txt"
    command = [sys.executable, "-m", "awslambdaric", "lifespan_app.handler"]
    emulator = ThreadedEmulator(
        command, cwd=str(HERE), env={"HOLDFAST_TEST_RECORD": str(record)}, timeout=30
    )
    emulator.start()
    try:
        status, body, _ = get(emulator.url, "/")
        assert (status, body) == (200, b"hello")
        emulator.wait_idle(timeout=30)
    finally:
        emulator.close()
    assert record.read_text().startswith("shutdown ")


def test_sync_work_past_the_deadline_is_an_overrun_not_a_cancellation(start, capfd):
    # A thread cannot be cancelled: the work is reported as an overrun, the environment freezes
    # before the real deadline (no timeout), and the work goes on when it is next thawed.
    emulator, record = start(timeout=3)
    status, body, _ = get(emulator.url, "/held")
    emulator.wait_idle(timeout=30)
    request_id = json.loads(body)["request_id"]
    first = next(e for e in emulator.freeze_log if e.request_id == request_id)
    output = capfd.readouterr()
    lines = [line for line in (output.out + output.err).splitlines() if request_id in line]

    assert status == 200
    assert first.outcome == "frozen"
    reported = [line for line in lines if "_held" in line]
    assert reported and "overrun" in reported[0], lines
    assert not any("cancelled" in line for line in reported)
    assert ("held-done", request_id) not in records(record)

    (record.parent / "gate").touch()
    assert get(emulator.url, f"/when-done/{request_id}")[0] == 200
    emulator.wait_idle(timeout=30)
    # It ran on in the next invocation's thaw, as the log said it would.
    assert records(record)[("held-done", request_id)] > first.frozen_at


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_sigterm_during_a_sync_drain_ends_the_process_and_names_the_cut_work(start, capfd):
    # Lambda Managed Instances (no freeze): the drain is running when SIGTERM comes. The work
    # would run forever (its gate stays shut): the process must still end on its own, inside
    # the shutdown budget, naming the work it cut.
    emulator, record = start(max_concurrency=2)
    status, body, _ = get(emulator.url, "/held")
    answer = json.loads(body)
    wait_for(lambda: ("held-start", answer["request_id"]) in records(record), "the work")

    os.killpg(os.getpgid(answer["pid"]), signal.SIGTERM)
    wait_for(lambda: not _alive(answer["pid"]), "the process's exit")

    lines: list[str] = []

    def cut_lines() -> list[str]:
        # The emulator relays the runtime's last lines a moment after it exited.
        output = capfd.readouterr()
        lines.extend((output.out + output.err).splitlines())
        return [line for line in lines if "is cut" in line]

    wait_for(lambda: bool(cut_lines()), "the cut work in the log")
    cut = cut_lines()
    assert status == 200
    assert cut and answer["request_id"] in cut[0] and "_held" in cut[0], cut
    assert ("held-done", answer["request_id"]) not in records(record)
    (record.parent / "gate").touch()


def test_a_pure_asgi_middleware_acts_after_the_response_and_before_the_freeze(start):
    # docs/adapter.md's alternative to code after `await call_next()`: wrap send, act after the
    # last body chunk.
    emulator, record = start()
    status, body, answered_at = get(emulator.url, "/middleware")
    emulator.wait_idle(timeout=30)
    request_id = json.loads(body)["request_id"]
    freeze = next(e for e in emulator.freeze_log if e.request_id == request_id)
    assert status == 200
    assert answered_at < records(record)[("middleware", request_id)] < freeze.frozen_at
