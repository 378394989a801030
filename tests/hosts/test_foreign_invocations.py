"""Hole 1: an invocation the adapter never sees (a warmer, Mangum on some routes) ends as soon as
the runtime is done with it: no timeout, no reset. Under unmodified awslambdaric the
after-response extension learns it from the Telemetry API's `platform.runtimeDone`; under
`holdfast run` the runtime itself is the host."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from holdfast.emulator import ThreadedEmulator
from lambda_events import http_event

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent

AWSLAMBDARIC = [sys.executable, "-m", "awslambdaric", "host_apps.handler"]
HOLDFAST_RUN = [sys.executable, "-m", "holdfast", "run", "host_apps:handler"]


def mixed_requests(count: int) -> list[dict]:
    """Warmers, Mangum's route and the adapter's routes, interleaved."""
    kinds = [
        lambda i: {"warmup": True},
        lambda i: http_event(f"/work/w{i}"),
        lambda i: http_event("/legacy/x"),
        lambda i: http_event("/hello"),
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


@pytest.mark.parametrize("command", [AWSLAMBDARIC, HOLDFAST_RUN], ids=["awslambdaric", "run"])
def test_invocations_the_adapter_never_saw_end_at_once(command, tmp_path):
    requests = mixed_requests(24)
    with ThreadedEmulator(
        command,
        cwd=str(HERE),
        timeout=3,
        log=lambda line: None,
        env={"MARK_DIR": str(tmp_path)},
    ) as emu:
        results = [emu.invoke(event) for event in requests]
        emu.wait_idle()
        records = list(emu.freeze_log)
    timed_out = [r for r in records if r.outcome != "frozen"]
    print(f"\n{command[2]}: {len(records)} invocations, {len(timed_out)} timed out")
    assert all(result.ok for result in results)
    assert timed_out == []
    # One environment the whole run: nothing was reset.
    assert [r.cold for r in records] == [True] + [False] * (len(records) - 1)
    assert len({r.environment_id for r in records}) == 1
    # The adapter's own requests still drained their background work before the freeze.
    done = sorted(p.name for p in tmp_path.iterdir())
    assert done == sorted(f"w{i}" for i in range(1, 24, 4))


def test_a_warmer_is_not_held_until_the_timeout_by_the_extension(tmp_path):
    """The extension lets a warmer's environment freeze right after the runtime's answer:
    well within the timeout (a held invocation would take all of it and reset)."""
    with ThreadedEmulator(AWSLAMBDARIC, cwd=str(HERE), timeout=10, log=lambda line: None) as emu:
        emu.invoke(http_event("/hello"))  # the cold start
        result = emu.invoke({"warmup": True})
        emu.wait_idle()
        record = emu.freeze_log[-1]
    assert result.ok and result.json() == {}
    assert record.outcome == "frozen"
    assert record.frozen_at is not None and record.response_sent_at is not None
    assert record.frozen_at - record.response_sent_at < 5  # a bound, not a timing: timeout 10


def test_two_adapters_in_one_module_share_one_extension(tmp_path):
    command = [sys.executable, "-m", "awslambdaric", "two_apps.handler"]
    with ThreadedEmulator(
        command, cwd=str(HERE), timeout=3, log=lambda line: None, env={"MARK_DIR": str(tmp_path)}
    ) as emu:
        results = [emu.invoke(http_event(path)) for path in ("/a", "/admin/b", "/c")]
        emu.wait_idle()
        records = list(emu.freeze_log)
    assert [result.json()["body"] for result in results] == ["api", "admin", "api"]
    assert [record.outcome for record in records] == ["frozen"] * 3
    # Each adapter's after-response work ran before its freeze.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin-admin-b", "api-a", "api-c"]


def test_an_adapter_built_after_init_still_answers_and_finishes_its_work(tmp_path):
    """Registration closes with the init: an Adapter built during an invocation gets no
    extension; it says so in a warning and drains before its handler returns."""
    command = [sys.executable, "-m", "awslambdaric", "lazy_app.handler"]
    with ThreadedEmulator(
        command, cwd=str(HERE), timeout=3, log=lambda line: None, env={"MARK_DIR": str(tmp_path)}
    ) as emu:
        results = [emu.invoke(http_event("/x")) for _ in range(2)]
        emu.wait_idle()
        records = list(emu.freeze_log)
    assert [result.json()["body"] for result in results] == ["lazy", "lazy"]
    assert [record.outcome for record in records] == ["frozen", "frozen"]
    assert (tmp_path / "marks").read_text() == "done\ndone\n"
