"""The freeze: an idle environment makes no progress at all, whatever threads it left running."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from emulator_support import HERE, ric

from holdfast.emulator.config import EmulatorConfig
from holdfast.emulator.environment.base import EnvironmentBase
from holdfast.emulator.process import (
    ProcessGroup,
    _ChildStops,
    _created_members,
    _status_state_and_group,
)
from holdfast.emulator.report import Journal
from holdfast.emulator.sandbox import FunctionMetadata, Sandbox


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


def test_a_child_started_in_a_warm_environment_is_found_by_the_freeze(emulators):
    # After the first freeze the group's members are known; a process forked by a later
    # invocation must still be found, and seen stopped, before the freeze counts.
    emu = emulators(ric("spawn"))
    pid = emu.invoke({"spawn": False}).json()["pid"]
    emu.wait_idle()
    group = emu.environments[0]._group
    assert pid in group.members
    child = emu.invoke({}).json()["child"]
    emu.wait_idle()
    assert {pid, child} <= set(group.members)
    assert _process_state(child) == "T"
    emu.invoke({"spawn": False})
    emu.wait_idle()
    assert {pid, child} <= set(group.members), "the child is still a member"


def test_every_freeze_finds_the_members_added_since_the_last_one():
    async def main():
        group = ProcessGroup()
        first = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        await group.freeze()
        assert group.members == [first.pid]
        group.thaw()
        await group.freeze()  # nothing created in between: the same members, checked again
        assert group.members == [first.pid]
        assert _process_state(first.pid) == "T"
        group.thaw()
        second = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        await group.freeze()
        assert sorted(group.members) == sorted([first.pid, second.pid])
        assert _process_state(second.pid) == "T"
        group.thaw()
        second.kill()
        await second.wait()
        await group.freeze()
        assert group.members == [first.pid]
        await group.kill()

    asyncio.run(main())


def _open_proc_files(pid):
    """The descriptors this process holds on /proc/<pid>/... files."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"/proc/{pid}/"):
            found.append(target)
    return sorted(found)


def test_the_freeze_rereads_one_open_proc_file_per_member_and_drops_a_member_gone():
    async def main():
        group = ProcessGroup()
        first = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        second = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        await group.freeze()
        group.thaw()
        await group.freeze()  # the known members: their files, opened once, read again
        assert _open_proc_files(second.pid) == [f"/proc/{second.pid}/status"]
        assert group.peak_memory_mb() > 0
        # The peak comes from the reads that confirmed the freeze: no file more is opened.
        assert _open_proc_files(first.pid) == [f"/proc/{first.pid}/status"]
        group.thaw()
        second.kill()
        await second.wait()  # reaped: its open file now fails (ESRCH), never names a new process
        await group.freeze()
        assert group.members == [first.pid]
        assert _open_proc_files(second.pid) == []
        assert _process_state(first.pid) == "T"
        await group.kill()
        assert _open_proc_files(first.pid) == []

    asyncio.run(main())


def _peak_kb(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def test_one_status_read_per_member_gives_its_state_its_group_and_its_peak():
    async def main():
        group = ProcessGroup()
        first = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        second = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        await group.freeze()
        state, pgid = _status_state_and_group(Path(f"/proc/{first.pid}/status").read_bytes())
        assert (state, pgid) == ("T", group.pgid)
        # Frozen, the peak is the sum of the members' VmHWM as the confirming reads showed it.
        expected_kb = _peak_kb(first.pid) + _peak_kb(second.pid)
        assert group.peak_memory_mb() == -(-expected_kb // 1024)
        group.thaw()
        running = Path(f"/proc/{os.getpid()}/status").read_bytes()
        assert _status_state_and_group(running) == ("R", os.getpgid(0))
        await group.kill()

    asyncio.run(main())


def test_a_status_file_without_nspgid_leaves_the_group_to_stat():
    # Linux before 4.1 has no NSpgid line: the group then comes from /proc/<pid>/stat.
    status = b"Name:\tsleep\nState:\tS (sleeping)\nTgid:\t7\nVmHWM:\t  100 kB\n"
    assert _status_state_and_group(status) == ("S", None)
    nested = b"Name:\tsleep\nState:\tT (stopped)\nNSpgid:\t40\t3\n"
    assert _status_state_and_group(nested) == ("T", 40)


def test_the_pids_handed_out_since_the_last_check_are_asked_for_their_group():
    # Pids are handed out in increasing order: what was created between two readings of the
    # pid cursor is in between. Only the group's processes count, never a thread's pid.
    script = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start()"
    script += "; print(flush=True); time.sleep(30)"

    async def main():
        group = ProcessGroup()
        first = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        stranger = subprocess.Popen(["sleep", "30"])  # created meanwhile, elsewhere
        threaded = await group.spawn(
            [sys.executable, "-c", script], env=os.environ, cwd=None, output=None
        )
        try:
            while len(os.listdir(f"/proc/{threaded.pid}/task")) < 2:
                await asyncio.sleep(0.01)
            tids = [int(tid) for tid in os.listdir(f"/proc/{threaded.pid}/task")]
            last = max([*tids, stranger.pid, threaded.pid])
            found = _created_members(str(first.pid - 1).encode(), str(last).encode(), group.pgid)
            assert found == [first.pid, threaded.pid]
            assert _created_members(b"1", str(last + 10_000).encode(), group.pgid) is None
        finally:
            stranger.kill()
            stranger.wait()
            await group.kill()

    asyncio.run(main())


def test_only_the_last_records_are_kept(emulators):
    """A long-running emulator keeps a bounded journal: the last `keep_records` of each."""
    emu = emulators(ric("echo"), keep_records=2)
    results = [emu.invoke({"n": n}) for n in range(3)]
    emu.wait_idle(60)
    assert [r.request_id for r in emu.freeze_log] == [r.request_id for r in results[1:]]
    assert [r.request_id for r in emu.reports] == [r.request_id for r in results[1:]]


def test_a_freeze_waits_for_the_sigchld_of_a_child_stopping_then_gives_the_signal_back():
    async def main():
        loop = asyncio.get_running_loop()
        child = await asyncio.create_subprocess_exec("sleep", "30")
        stops = _ChildStops.of(loop)
        assert stops.watch() and signal.getsignal(signal.SIGCHLD) is not signal.SIG_DFL
        waiting = asyncio.ensure_future(stops.wait(3600))  # only the signal can end it in time
        await asyncio.sleep(0)
        os.kill(child.pid, signal.SIGSTOP)
        await asyncio.wait_for(waiting, 30)
        stops.unwatch()
        assert signal.getsignal(signal.SIGCHLD) is signal.SIG_DFL
        child.kill()
        await child.wait()

        group = ProcessGroup()
        member = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
        await group.freeze()
        assert _process_state(member.pid) == "T"
        assert signal.getsignal(signal.SIGCHLD) is signal.SIG_DFL, "no handler left behind"
        await group.kill()

    asyncio.run(main())


async def _freeze_without_a_watch():
    """Where SIGCHLD cannot be watched, the freeze still confirms the stop (by polling);
    returns the member's state."""
    group = ProcessGroup()
    member = await group.spawn(["sleep", "30"], env=os.environ, cwd=None)
    stops = _ChildStops.of(asyncio.get_running_loop())
    assert not stops.watch()
    stops.unwatch()
    await group.freeze()
    state = _process_state(member.pid)
    await group.kill()
    return state


def test_a_sigchld_handler_of_someone_else_is_left_alone_and_the_freeze_polls():
    def theirs(signum, frame):
        pass

    previous = signal.signal(signal.SIGCHLD, theirs)
    try:
        assert asyncio.run(_freeze_without_a_watch()) == "T"
        assert signal.getsignal(signal.SIGCHLD) is theirs
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_a_freeze_outside_the_main_thread_polls():
    # Signals are the main thread's: an emulator run in another thread cannot watch SIGCHLD.
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(asyncio.run(_freeze_without_a_watch())))
    thread.start()
    thread.join(60)
    assert outcome == ["T"]
    assert signal.getsignal(signal.SIGCHLD) is signal.SIG_DFL


def test_a_frozen_runtime_gets_its_202_with_its_next_event_and_wakes_once(emulators, tmp_path):
    # The runtime pipelines `/next` behind its response: the environment freezes at that
    # `/next`, the 202 is kept while it is frozen, and both reach the runtime in one piece
    # with the next event, written before the SIGCONT.
    reads = tmp_path / "reads"
    emu = emulators(
        [sys.executable, str(HERE / "pipelining_runtime.py")], env={"READS_LOG": str(reads)}
    )
    for _ in range(4):
        assert emu.invoke({}).json() == {"ok": True}
        emu.wait_idle()
        assert emu.freeze_log[-1].frozen_at is not None
    logged = [json.loads(line) for line in reads.read_text().splitlines()]
    # The first event alone (nothing posted before it), then each 202 with the next event.
    assert logged == [["HTTP/1.1 200 OK"]] + [["HTTP/1.1 202 Accepted", "HTTP/1.1 200 OK"]] * 3


def test_a_wait_cancelled_as_its_condition_comes_true_ends_quietly():
    # The waiting task learns of its cancellation a round later; the condition holding in
    # between must not fail the state change that made it hold (a runtime's `next`).
    async def main():
        environment = EnvironmentBase(1, EmulatorConfig(command=["true"]), Journal(lambda _: None))
        sandbox = environment._sandbox = Sandbox(FunctionMetadata("f", "$LATEST", "h", "1"))
        holds = []
        waiting = asyncio.ensure_future(
            environment._until(lambda: bool(holds), time.monotonic() + 60, ())
        )
        await asyncio.sleep(0)
        waiting.cancel()
        holds.append(True)
        sandbox._changed()  # the condition holds now: told to a waiter already cancelled
        try:
            await waiting
        except asyncio.CancelledError:
            return "cancelled"
        return "ended"

    assert asyncio.run(main()) == "cancelled"
