"""Environments: created on demand up to the concurrency, reused warm, waited for when busy."""

from emulator_support import ric, wait_until


def test_concurrent_invocations_run_in_separate_environments(emulators, tmp_path):
    emu = emulators(ric("barrier"), concurrency=2)
    first, second = tmp_path / "first", tmp_path / "second"
    a = emu.submit(emu.emulator.invoke({"mine": str(first), "other": str(second)}))
    b = emu.submit(emu.emulator.invoke({"mine": str(second), "other": str(first)}))
    result_a, result_b = a.result(60).json(), b.result(60).json()
    # Each saw the other's file while it was itself still running: the two overlapped.
    assert result_a["met"] and result_b["met"]
    assert result_a["pid"] != result_b["pid"]
    emu.wait_idle(60)
    assert sorted(record.environment_id for record in emu.freeze_log) == [1, 2]
    assert len(emu.environments) == 2


def test_requests_wait_when_every_environment_is_busy(emulators, tmp_path):
    emu = emulators(ric("gate"), concurrency=1)
    gate = tmp_path / "gate"
    started_a, started_b = tmp_path / "a", tmp_path / "b"
    a = emu.submit(emu.emulator.invoke({"started": str(started_a), "gate": str(gate)}))
    b = emu.submit(emu.emulator.invoke({"started": str(started_b), "gate": str(gate)}))
    wait_until(started_a.exists, "the first invocation started")
    assert not started_b.exists(), "the second request must wait for the only environment"
    gate.touch()
    assert a.result(60).json()["pid"] == b.result(60).json()["pid"], "one warm environment reused"
    emu.wait_idle(60)
    first, second = emu.freeze_log
    assert first.frozen_at <= second.thawed_at
    assert len(emu.environments) == 1
