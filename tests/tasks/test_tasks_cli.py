"""`holdfast tasks ...`: worker, status and list."""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

from holdfast.tasks.cli import load_queue, main


@pytest.fixture
def app_module(tmp_path, monkeypatch):
    """A throwaway app module in the current directory, as a user would have."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from holdfast.tasks import TaskQueue

            queue = TaskQueue("sqlite:///{tmp_path / "cli.db"}")

            @queue.task(name="greet")
            def greet(who: str) -> str:
                return f"hello {{who}}"
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    return name


def test_worker_burst_status_and_list(app_module, capsys):
    queue = load_queue(f"{app_module}:queue")
    handle = queue.tasks["greet"].defer_sync("cli")
    assert main(["worker", f"{app_module}:queue", "--burst", "--concurrency", "2"]) == 0
    capsys.readouterr()

    assert main(["status", f"{app_module}:queue", handle.id]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "succeeded" and status["result"] == "hello cli"

    assert main(["list", f"{app_module}:queue", "--state", "succeeded"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [handle.id]

    assert main(["status", f"{app_module}:queue", "1-00"]) == 1


def test_bad_queue_specs(app_module):
    with pytest.raises(SystemExit, match="MODULE:QUEUE"):
        load_queue(app_module)
    with pytest.raises(SystemExit, match="not a TaskQueue"):
        load_queue(f"{app_module}:TaskQueue")
    assert main(["nonsense"]) == 2
    assert main(["status", app_module, "1-00"]) == 2
    assert main(["--help"]) == 0
