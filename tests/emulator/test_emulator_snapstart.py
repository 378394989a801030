"""SnapStart mode: init and before-snapshot hooks, the snapshot (a frozen group), the restore with
after-restore hooks and a wall clock that has moved on — under unmodified awslambdaric."""

import json
import sys

import pytest
from emulator_support import ric, wait_until

RUNTIMES = {
    "awslambdaric": ric("snap_handlers.handler"),
    "holdfast run": [sys.executable, "-m", "holdfast", "run", "snap_handlers:handler"],
}


def _options(tmp_path, age=0.0, **env):
    return {
        "snap_start": True,
        "snapshot_age": age,
        "env": {"SNAP_DIR": str(tmp_path), **env},
    }


@pytest.mark.parametrize("runtime", RUNTIMES.values(), ids=RUNTIMES.keys())
def test_snapshot_then_restore_with_hooks_and_a_clock_jump(emulators, tmp_path, runtime):
    emu = emulators(runtime, **_options(tmp_path, age=1.0))
    # "Publishing": the snapshot is taken before any invocation.
    wait_until(lambda: (tmp_path / "snapshot").exists(), "the before-snapshot hook ran")
    first = emu.invoke({}).json()
    assert first["initialization_type"] == "snap-start"
    (before, snapshot_time), (after, restore_time) = first["hooks"]
    assert (before, after) == ("before_snapshot", "after_restore")
    # The group stayed stopped for at least snapshot_age: the restored process sees the jump.
    assert restore_time - snapshot_time >= 1.0
    second = emu.invoke({}).json()
    assert second["hooks"] == first["hooks"], "a warm invocation restores nothing"
    assert second["pid"] == first["pid"]
    emu.wait_idle(60)
    cold, warm = emu.reports
    assert cold.restore_duration_ms is not None and cold.init_duration_ms is None
    assert warm.restore_duration_ms is None
    report_line = next(line for line in emulators.lines if "Restore Duration" in line)
    assert "Billed Restore Duration" in report_line
    assert [r.cold for r in emu.freeze_log] == [True, False]


@pytest.mark.parametrize("runtime", RUNTIMES.values(), ids=RUNTIMES.keys())
def test_failing_after_restore_hook_fails_the_invocation(emulators, tmp_path, runtime):
    emu = emulators(runtime, **_options(tmp_path, SNAP_FAIL_RESTORE="1"))
    result = emu.invoke({})
    assert not result.ok, "the caller gets the error the runtime posted to /restore/error"
    assert "cannot reconnect" in json.loads(result.payload)["errorMessage"]
    emu.wait_idle(60)
    assert emu.freeze_log[-1].outcome == "restore_error"
    assert emu.reports[-1].error_type == "Runtime.AfterRestoreError"


def test_restore_events_reach_telemetry_subscribers(emulators, tmp_path, telemetry_extension):
    options = _options(tmp_path)
    extension = telemetry_extension()
    options["env"].update(extension["env"])
    emu = emulators(ric("snap_handlers.handler"), extensions=extension["extensions"], **options)
    result = emu.invoke({})
    assert result.ok
    emu.wait_idle(60)
    emu.close()
    batches, _ = telemetry_extension.read()
    types = [e["type"] for batch in batches for e in batch]
    events = [e for batch in batches for e in batch]
    init_start = events[types.index("platform.initStart")]["record"]
    assert init_start["initializationType"] == "snap-start"
    order = [
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.restoreStart",
        "platform.restoreRuntimeDone",
        "platform.restoreReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ]
    positions = [types.index(kind) for kind in order]
    assert positions == sorted(positions)
    report = events[types.index("platform.report")]["record"]
    assert report["metrics"]["restoreDurationMs"] > 0
    assert "initDurationMs" not in report["metrics"]


def test_initialize_takes_the_snapshot_and_the_first_invocation_restores_it(emulators, tmp_path):
    emu = emulators(ric("snap_handlers.handler"), **_options(tmp_path))
    assert emu.run(emu.emulator.initialize()) is None
    assert (tmp_path / "snapshot").exists(), "the snapshot is taken once initialize returns"
    assert [hook for hook, _ in emu.invoke({}).json()["hooks"]] == [
        "before_snapshot",
        "after_restore",
    ]
    emu.wait_idle(60)
    assert [record.cold for record in emu.freeze_log] == [True]
    assert emu.reports[0].restore_duration_ms is not None
    assert len(emu.environments) == 1


def test_initialize_answers_a_failed_snapshot_and_resets(emulators):
    emu = emulators(ric("broken.handler"), snap_start=True)
    failure = emu.run(emu.emulator.initialize())
    assert failure is not None
    assert json.loads(failure.body)["errorMessage"] == "cannot initialize"
    assert not emu.environments[0].warm
    # The next invocation takes a new snapshot, and is answered its failure.
    result = emu.invoke({})
    assert json.loads(result.payload)["errorMessage"] == "cannot initialize"
    emu.wait_idle(60)
    assert [record.outcome for record in emu.freeze_log] == ["init_error"]
