"""The freeze: an idle environment makes no progress at all, whatever threads it left running."""

import time

from emulator_support import ric


def _lines(path):
    return path.read_text().count("\n") if path.exists() else 0


def _process_state(pid):
    # Field 3 of /proc/<pid>/stat: "T" is stopped (by a signal).
    return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]


def test_thread_left_running_makes_no_progress_while_frozen(emulators, tmp_path):
    ticks = tmp_path / "ticks"
    emu = emulators(ric("ticker"))
    pid = emu.invoke({"path": str(ticks)}).json()["pid"]
    emu.wait_idle()
    assert emu.freeze_log[-1].frozen_at is not None
    assert _process_state(pid) == "T"

    frozen_count = _lines(ticks)
    time.sleep(0.3)  # 30 ticks' worth of time: a running thread would have written some
    assert _lines(ticks) == frozen_count, "the file grew while the environment was frozen"

    # The next invocation thaws the environment: the same thread is ticking again inside it.
    resumed = emu.invoke({"path": str(ticks), "await_tick": True}).json()
    assert resumed == {"pid": pid, "resumed": True}


def test_children_of_the_runtime_are_frozen_too(emulators):
    emu = emulators(ric("spawn"))
    body = emu.invoke({}).json()
    emu.wait_idle()
    assert _process_state(body["pid"]) == "T"
    assert _process_state(body["child"]) == "T"
