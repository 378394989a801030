"""`holdfast dev`: start, a line per invocation, work left running named, reloads, errors, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dev_support import HOLDFAST, Dev, free_port, start_dev

from holdfast.tasks import TaskQueue


def test_help_lists_the_options() -> None:
    result = subprocess.run([HOLDFAST, "dev", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--port", "--no-worker", "--no-reload", "--timeout", "--grace", "MODULE:ATTR"):
        assert option in result.stdout


def test_lines_per_invocation_with_response_after_and_freeze(dev: Dev) -> None:
    assert dev.json("/") == {"version": "one"}
    assert dev.json("/after") == {"after": True}
    dev.wait_for("GET /after")
    line = next(line for line in dev.lines if "GET /after" in line)
    assert " 200 " in line and "ms response" in line and "ms after" in line and "❄ frozen" in line
    after_ms = float(line.split("+ ")[1].split(" ms after")[0])
    assert after_ms >= 250  # the 0.3 s BackgroundTask ran after the response, before the freeze
    init = next(line for line in dev.lines if " init " in line)
    assert "cold" in init  # the app was initialised at start, before the "listening" line
    assert dev.output.index(" init ") < dev.output.index("listening on")


def test_work_left_running_at_the_freeze_is_named_with_where_it_started(dev: Dev) -> None:
    assert dev.json("/leak") == {"leak": True}
    dev.wait_for("still running at the freeze")
    dev.wait_for("still running at the freeze", count=2)
    named = [line for line in dev.lines if "still running at the freeze" in line]
    assert "thread 'mailer'" in named[0] and "app.py:" in named[0] and "in leak" in named[0]
    assert "task 'poll_forever'" in named[1] and "in leak" in named[1]
    dev.wait_for("holdfast.after_response()")  # the hint, on a line of its own after them
    # Work that finished before the freeze is not named.
    dev.json("/after")
    dev.wait_for("GET /after")
    assert sum("still running at the freeze" in line for line in dev.lines) == 2


def test_deadline_cut_of_after_response_work_is_shown(app_dir: Path) -> None:
    dev = start_dev(app_dir, "app:app", "--timeout", "1", "--no-worker", "--no-reload")
    try:
        assert dev.json("/slow-after") == {"slow": True}
        dev.wait_for("GET /slow-after")
        line = next(line for line in dev.lines if "GET /slow-after" in line)
        assert "cut by the deadline" in line
    finally:
        dev.stop()


def test_a_task_that_keeps_the_drain_waiting_is_named_where_it_started(app_dir: Path) -> None:
    dev = start_dev(app_dir, "app:app", "--timeout", "1", "--no-worker", "--no-reload")
    try:
        assert dev.json("/hog") == {"hog": True}
        dev.wait_for("GET /hog")
        line = next(line for line in dev.lines if "GET /hog" in line)
        assert "cut by the deadline" in line and "poll_forever started at app.py:" in line
    finally:
        dev.stop()


def test_a_worker_runs_every_queue_the_app_defines(dev: Dev) -> None:
    task_id = dev.json("/double?n=4", "POST")["id"]  # type: ignore[index]
    deadline = time.monotonic() + 60
    while True:
        status = dev.json(f"/tasks/{task_id}")
        if status["state"] == "succeeded":  # type: ignore[index]
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["result"] == 8  # type: ignore[index]


def test_reload_on_change_keeps_the_queue(app_dir: Path) -> None:
    dev = start_dev(app_dir, "app:app")
    try:
        # A task that is still running when the code changes finishes (the queue is durable).
        task_id = dev.json("/double?n=5&seconds=1.5", "POST")["id"]  # type: ignore[index]
        source = app_dir / "app.py"
        source.write_text(source.read_text().replace('VERSION = "one"', 'VERSION = "two"'))
        dev.wait_for("reloaded")
        assert dev.json("/") == {"version": "two"}
        deadline = time.monotonic() + 60
        while dev.json(f"/tasks/{task_id}")["state"] != "succeeded":  # type: ignore[index]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # A broken save is reported (file and line) and holdfast dev keeps running.
        source.write_text(source.read_text() + "\ndef broken(:\n")
        dev.wait_for("failed to start")
        # The file and line come on the lines after the message: wait for them, not just read.
        dev.wait_for("Line")
        assert "app.py" in dev.output, dev.output
        assert dev.process.poll() is None
    finally:
        dev.stop()


def test_a_same_size_save_in_the_second_of_the_last_compile_still_reloads_the_new_code(
    app_dir: Path,
) -> None:
    source = app_dir / "app.py"
    dev = start_dev(app_dir, "app:app", writes_bytecode=True)
    try:
        assert dev.json("/") == {"version": "one"}
        assert list((app_dir / "__pycache__").glob("app.*.pyc"))  # its bytecode is cached
        before = source.stat()
        source.write_text(source.read_text().replace('VERSION = "one"', 'VERSION = "two"'))
        # The same size and, as a save within the same second leaves it, the same mtime: all
        # that Python compares before it trusts the cached bytecode.
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert source.stat().st_size == before.st_size
        dev.wait_for("reloaded")
        assert dev.json("/") == {"version": "two"}
    finally:
        dev.stop()


def _start_failure(folder: Path, *args: str) -> tuple[int, str]:
    dev = start_dev(folder, *args, wait=False)
    code = dev.process.wait(timeout=120)
    dev.stop()
    return code, dev.output


def test_import_errors_show_file_and_line_and_exit_non_zero(app_dir: Path) -> None:
    (app_dir / "app.py").write_text("import os\n\nraise RuntimeError('no database configured')\n")
    code, output = _start_failure(app_dir, "app:app")
    assert code == 1
    assert "RuntimeError: no database configured" in output
    assert 'app.py", line 3' in output
    assert "listening" not in output and "Traceback" not in output


def test_a_failing_lifespan_startup_shows_file_and_line(app_dir: Path) -> None:
    (app_dir / "app.py").write_text(
        "from contextlib import asynccontextmanager\n"
        "from fastapi import FastAPI\n"
        "\n"
        "\n"
        "@asynccontextmanager\n"
        "async def lifespan(app):\n"
        "    raise ConnectionError('database unreachable')\n"
        "    yield\n"
        "\n"
        "\n"
        "app = FastAPI(lifespan=lifespan)\n"
    )
    code, output = _start_failure(app_dir, "app:app")
    assert code == 1
    assert "database unreachable" in output and 'app.py", line 7' in output
    assert "listening" not in output


def test_a_failing_import_inside_the_app_shows_file_and_line(app_dir: Path) -> None:
    (app_dir / "app.py").write_text("import os\nimport not_installed_anywhere\n")
    code, output = _start_failure(app_dir, "app:app")
    assert code == 1
    assert "ImportModuleError" in output and "not_installed_anywhere" in output
    assert 'app.py", line 2' in output
    assert "listening" not in output and "Traceback" not in output


def test_a_missing_attribute_gets_one_line_and_a_hint(app_dir: Path) -> None:
    code, output = _start_failure(app_dir, "app:ap")
    assert code == 1
    assert "HandlerNotFound" in output and "hint:" in output
    assert "listening" not in output and "Traceback" not in output


def test_a_missing_module_gets_one_line_and_a_hint(app_dir: Path) -> None:
    code, output = _start_failure(app_dir, "apq:app")
    assert code == 1
    assert "ImportModuleError" in output and "hint:" in output
    assert "listening" not in output and "Traceback" not in output


def test_a_port_in_use_gets_one_line_and_a_hint(dev: Dev) -> None:
    result = subprocess.run(
        [HOLDFAST, "dev", "app:app", "--port", str(dev.port)],
        capture_output=True,
        text=True,
        cwd=dev.folder,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"port {dev.port} is already in use" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr


def test_cli_mistakes_never_show_a_traceback(tmp_path: Path) -> None:
    typo = subprocess.run([HOLDFAST, "devv"], capture_output=True, text=True, timeout=60)
    assert typo.returncode == 2 and "did you mean 'dev'" in typo.stderr
    run = subprocess.run(
        [HOLDFAST, "run", "app:app"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if k != "AWS_LAMBDA_RUNTIME_API"},
    )
    assert run.returncode == 2 and "hint:" in run.stderr and "Traceback" not in run.stderr
    bad_port = subprocess.run(
        [HOLDFAST, "dev", "app:app", "--port", "nope"], capture_output=True, text=True, timeout=60
    )
    assert bad_port.returncode == 2 and "Traceback" not in bad_port.stderr


def test_ctrl_c_lets_running_tasks_finish_then_stops(app_dir: Path) -> None:
    dev = start_dev(app_dir, "app:app", "--no-reload")
    try:
        task_id = dev.json("/double?n=3&seconds=1.5", "POST")["id"]  # type: ignore[index]
        deadline = time.monotonic() + 60
        while dev.json(f"/tasks/{task_id}")["state"] != "running":  # type: ignore[index]
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        assert dev.stop() == 0
    assert "stopped" in dev.output
    assert _processes_in(app_dir.resolve()) == []  # the environment and the worker are gone
    queue = TaskQueue(f"sqlite:///{app_dir / 'queue.db'}", register=False)
    status = queue.status_sync(task_id)
    assert status is not None and status.state == "succeeded" and status.result == 6


def _processes_in(folder: Path) -> list[int]:
    """The pids of the processes whose working directory is `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_second_ctrl_c_stops_at_once_and_leaves_no_process(app_dir: Path) -> None:
    dev = start_dev(app_dir, "app:app", "--no-reload", "--grace", "600")
    try:
        task_id = dev.json("/double?n=3&seconds=600", "POST")["id"]  # type: ignore[index]
        while dev.json(f"/tasks/{task_id}")["state"] != "running":  # type: ignore[index]
            time.sleep(0.02)
        dev.process.send_signal(signal.SIGINT)
        dev.wait_for("stopping:")
        dev.process.send_signal(signal.SIGINT)
        assert dev.process.wait(timeout=120) == 0  # long before the task or the grace would end
    finally:
        dev.stop()
    assert "stopping now" in dev.output
    # The function's environment (frozen between requests) and the worker are gone too.
    assert _processes_in(app_dir.resolve()) == []


def test_the_demo_is_the_default_app(tmp_path: Path) -> None:
    dev = start_dev(tmp_path)
    try:
        assert dev.json("/")["app"] == "holdfast demo"  # type: ignore[index]
        assert dev.json("/work?ms=50", "POST") == {"accepted": True, "background_ms": 50}
        done = dev.json("/done")
        assert [entry.get("ms") for entry in done["finished"]] == [None, 50]  # type: ignore[index]
        assert dev.get("/fail")[0] == 502
        dev.wait_for("GET /fail")
        assert "HTTPError" in next(line for line in dev.lines if "GET /fail" in line)
    finally:
        dev.stop()


def test_python_dash_m_holdfast_dev_is_the_same_command() -> None:
    by_module = subprocess.run(
        [sys.executable, "-m", "holdfast", "dev", "--help"], capture_output=True, text=True
    )
    assert by_module.returncode == 0 and "--no-worker" in by_module.stdout
    assert json.dumps  # (keeps the import used when the file is trimmed)
    assert free_port() > 0


def test_the_dashboard_api_answers_local_hosts_only(dev: Dev) -> None:
    import urllib.error
    import urllib.request

    state = dev.json("/_holdfast/api/state")
    assert state["app"] == "app:app"  # type: ignore[index]
    assert state["invocations"][0]["kind"] == "init"  # type: ignore[index]
    deadline = time.monotonic() + 60
    while not state["queues"]:  # type: ignore[index]  # the worker reports them once it runs
        assert time.monotonic() < deadline, "the worker never reported the app's queues"
        time.sleep(0.05)
        state = dev.json("/_holdfast/api/state")
    assert [q["name"] for q in state["queues"]] == ["default"]  # type: ignore[index]
    forged = urllib.request.Request(
        f"{dev.url}/_holdfast/api/state", headers={"Host": "attacker.example"}
    )
    try:
        urllib.request.urlopen(forged, timeout=30)
        raise AssertionError("a request for another host was answered")
    except urllib.error.HTTPError as error:
        assert error.code == 403
    assert dev.get("/_holdfast/static/../../etc/passwd")[0] == 404
    assert dev.get("/_holdfast/static/dashboard.js")[0] == 200
