"""Hole 3: Lambda Managed Instances (`holdfast emulate --max-concurrency N`: one environment, N
invocations at once, no freeze, AWS_LAMBDA_MAX_CONCURRENCY set). Under unmodified awslambdaric
(one forked worker process per slot) and under `holdfast run` (N pollers on one loop), requests
overlap, each one's after-response work runs, no extension is registered from the workers, and
SIGTERM at shutdown lets work in flight finish."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from freeze_support import wait_for
from holdfast.emulator import ThreadedEmulator
from lambda_events import http_event

pytestmark = pytest.mark.timeout(120)

HERE = Path(__file__).parent
AWSLAMBDARIC = [sys.executable, "-m", "awslambdaric", "host_apps.handler"]
HOLDFAST_RUN = [sys.executable, "-m", "holdfast", "run", "host_apps:handler"]
HOSTS = pytest.mark.parametrize(
    "command", [AWSLAMBDARIC, HOLDFAST_RUN], ids=["awslambdaric", "run"]
)


def managed(command: list[str], marks: Path, max_concurrency: int, **options) -> ThreadedEmulator:
    """A Managed Instances environment of ``command``; the app writes its marks in ``marks``."""
    return ThreadedEmulator(
        command,
        cwd=str(HERE),
        max_concurrency=max_concurrency,
        log=lambda line: None,
        env={"MARK_DIR": str(marks)},
        **options,
    )


def worker_pid(result) -> int:
    """The pid of the process that answered (host_apps puts it at the end of the body)."""
    return int(result.json()["body"].split('"pid":')[1].rstrip("}"))


def invoke_together(emu: ThreadedEmulator, events: list[dict]) -> list:
    async def all_at_once():
        return await asyncio.gather(*(emu.emulator.invoke(event) for event in events))

    return emu.run(all_at_once())


@HOSTS
def test_concurrent_invocations_each_drain_their_work(command, tmp_path):
    names = [f"job{i}" for i in range(6)]
    with managed(command, tmp_path, 3) as emu:
        assert emu.invoke(http_event("/hello")).ok  # init
        results = invoke_together(emu, [http_event(f"/slow/{name}") for name in names])
        wait_for(lambda: len(list(tmp_path.iterdir())) == len(names), "every drain")
        environments = {record.environment_id for record in emu.freeze_log}
        extensions = [
            extension.name
            for environment in emu.environments
            if environment._sandbox is not None
            for extension in environment._sandbox.extensions.values()
        ]
    assert all(result.ok for result in results), [r.payload for r in results if not r.ok]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert len(environments) == 1
    assert all(record.outcome != "timeout" for record in emu.freeze_log)
    if command is AWSLAMBDARIC:
        assert extensions == []  # no forked worker registered an extension
        pids = {worker_pid(result) for result in results}
        assert len(pids) > 1  # forked workers answered
    else:
        assert extensions == ["holdfast-shutdown"]  # one process: it earns its SIGTERM


def test_sigterm_lets_work_in_flight_finish_under_holdfast_run(tmp_path):
    with managed(HOLDFAST_RUN, tmp_path, 2) as emu:
        assert emu.invoke(http_event("/work/last")).ok
        # Shut down at once: the 0.3 s background task is still running.
    assert (tmp_path / "last").exists()


def test_a_signalled_awslambdaric_worker_finishes_work_in_flight(tmp_path):
    """awslambdaric's multi-concurrent parent does not pass SIGTERM on to its workers (it dies
    of it): a worker finishes its in-flight work when the platform signals the process group,
    as here, or when the parent's death reaches it (PR_SET_PDEATHSIG), within the time the
    platform leaves before SIGKILL."""
    with managed(AWSLAMBDARIC, tmp_path, 2) as emu:
        # The work waits on a gate, so it is surely in flight at the signal; opened right after,
        # it ends well inside the shutdown budget even on a loaded machine.
        result = emu.invoke(http_event("/gated/last"))
        worker = worker_pid(result)
        os.killpg(os.getpgid(worker), signal.SIGTERM)
        assert not (tmp_path / "last").exists()
        (tmp_path / "open-last").touch()
        wait_for(lambda: (tmp_path / "last").exists(), "the in-flight drain")
    assert (tmp_path / "last").read_text().strip() == str(worker)


def test_the_next_request_never_waits_for_the_last_ones_drain(tmp_path):
    """awslambdaric polls again as soon as it has posted: with one slot the same worker takes
    both requests, and the second answer comes while the first request's after-response work
    still waits for its gate (the drain thread gives the loop way to the handler). (Under
    `holdfast run` a slot is busy until its drain is done, by design: back-pressure.)"""
    with managed(AWSLAMBDARIC, tmp_path, 1, timeout=10) as emu:
        assert emu.invoke(http_event("/gated/first")).ok
        second = emu.invoke(http_event("/hello"))
        assert second.ok and not (tmp_path / "first").exists()
        (tmp_path / "open-first").touch()
        wait_for(lambda: (tmp_path / "first").exists(), "the first request's drain")


def test_an_awslambdaric_worker_finishes_its_work_when_its_parent_dies_of_sigterm(tmp_path):
    """A platform that signals only the runtime's main process: awslambdaric's parent dies of
    SIGTERM, and its death reaches the worker as SIGTERM (PR_SET_PDEATHSIG)."""
    with managed(AWSLAMBDARIC, tmp_path, 2) as emu:
        result = emu.invoke(http_event("/gated/orphan"))
        worker = worker_pid(result)
        parent = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(parent, signal.SIGTERM)
        assert not (tmp_path / "orphan").exists()
        (tmp_path / "open-orphan").touch()
        wait_for(lambda: (tmp_path / "orphan").exists(), "the orphaned worker's drain")
    assert (tmp_path / "orphan").read_text().strip() == str(worker)
