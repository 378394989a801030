"""`holdfast emulate` as a user runs it: a real process, stopped with SIGTERM."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from emulator_support import HERE, EmulateCommand, ric, wait_until

from holdfast.emulator.cli import main, parse_config, start_function
from holdfast.emulator.config import DEFAULT_CONCURRENCY


def test_emulate_command_end_to_end():
    command = [
        sys.executable,
        "-m",
        "holdfast",
        "emulate",
        "--port",
        "0",
        "--function-name",
        "cli-fn",
    ]
    command += ["--", sys.executable, "-m", "awslambdaric", "handlers.echo"]
    process = subprocess.Popen(
        command, cwd=HERE, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url = None
        for line in process.stderr:
            if match := re.search(r"listening on (http://\S+)", line):
                url = match[1]
                break
        assert url, "the emulator never said where it listens"
        response = httpx.post(
            f"{url}/2015-03-31/functions/cli-fn/invocations", json={"x": 1}, timeout=60
        )
        assert response.status_code == 200
        body = response.json()
        assert body["event"] == {"x": 1} and body["function_name"] == "cli-fn"
        report = f"REPORT RequestId: {response.headers['x-amzn-requestid']}"
        assert any(line.startswith(report) for line in process.stdout), "no REPORT line"
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not Path(f"/proc/{body['pid']}").exists(), "the runtime is gone with the emulator"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0"])
    assert exit_info.value.code == 2
    assert "a runtime command is required after --" in capsys.readouterr().err


def test_bad_option_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--concurrency", "0", "--", "true"])
    assert "concurrency must be at least 1" in capsys.readouterr().err


def test_emulate_defaults_to_lambda_like_concurrency():
    config = parse_config(["--", "true"])
    assert (config.concurrency, config.throttle) == (DEFAULT_CONCURRENCY, True)
    assert parse_config(["--concurrency", "3", "--", "true"]).concurrency == 3
    # Managed Instances: one environment, which takes the concurrent invocations itself.
    assert parse_config(["--max-concurrency", "4", "--", "true"]).concurrency == 1


# -- the function starts (its init) before "listening" ------------------------------------------

STARTING = {
    "holdfast run": [sys.executable, "-m", "holdfast", "run", "starting:handler"],
    "awslambdaric": [sys.executable, "-m", "awslambdaric", "starting.handler"],
}
BROKEN = {
    "holdfast run": [sys.executable, "-m", "holdfast", "run", "broken:handler"],
    "awslambdaric": [sys.executable, "-m", "awslambdaric", "broken.handler"],
}

TYPO = {
    "holdfast run": [sys.executable, "-m", "holdfast", "run", "pkg.mian:handler"],
    "awslambdaric": [sys.executable, "-m", "awslambdaric", "pkg.mian.handler"],
}


def _invoke(url: str, event: dict) -> httpx.Response:
    return httpx.post(f"{url}/2015-03-31/functions/function/invocations", json=event, timeout=60)


@pytest.mark.parametrize("runtime", STARTING.values(), ids=STARTING.keys())
def test_listening_is_said_once_init_is_done_and_the_first_request_finds_it_warm(runtime):
    emulate = EmulateCommand(["--", *runtime])
    try:
        url = emulate.wait_for(r"listening on (http://\S+)")[1]
        emulate.wait_for(r"^  init: +done in \d+ ms \(the first request finds it warm\)$")
        pid = int(emulate.wait_for(r"^init (\d+)$")[1])
        lines = emulate.lines
        assert _index(lines, "^init ") < _index(lines, "listening on"), emulate.output
        response = _invoke(url, {})
        assert response.status_code == 200 and response.json() == {"pid": pid}
        request_id = response.headers["x-amzn-requestid"]
        report = emulate.wait_for(f"^REPORT RequestId: {request_id}")[0]
    finally:
        assert emulate.stop() == 0, emulate.output
    assert "Init Duration" not in report, "the first request paid an init"
    assert len([line for line in emulate.lines if re.match(r"^init \d+$", line)]) == 1


@pytest.mark.parametrize("runtime", BROKEN.values(), ids=BROKEN.keys())
def test_an_init_that_raises_exits_saying_it_once_with_where(runtime):
    emulate = EmulateCommand(["--", *runtime])
    assert emulate.wait_exit() == 1, emulate.output
    output = emulate.output
    assert "listening" not in output and "holdfast/emulator" not in output, output
    assert output.count("RuntimeError: cannot initialize") == 1, output
    message, hint = emulate.lines[-2:]
    assert message == (
        "holdfast emulate: the function's init failed with RuntimeError (its output above says why)"
    )
    assert hint == (
        f"  hint: it was raised at {HERE / 'broken.py'}, line 3, in <module>: "
        "fix that, then start the function again"
    )


@pytest.mark.parametrize("runtime", TYPO.values(), ids=TYPO.keys())
def test_a_typo_in_a_module_exits_saying_it_once_with_the_close_name(tmp_path, runtime):
    # `pkg` exists, so the check made before starting anything lets it through: the init says.
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "main.py").write_text("def handler(event, context):\n    return 1\n")
    emulate = EmulateCommand(["--", *runtime], cwd=tmp_path)
    assert emulate.wait_exit() == 1, emulate.output
    output = emulate.output
    assert "listening" not in output and "holdfast/emulator" not in output, output
    assert output.count("No module named 'pkg.mian'") == 1, output
    assert emulate.lines[-2:] == [
        "holdfast emulate: the function's init failed with Runtime.ImportModuleError "
        "(its output above says why)",
        "  hint: did you mean 'pkg.main'?",
    ]


def test_an_init_failure_the_function_did_not_print_is_said_by_the_emulator():
    emulate = EmulateCommand(["--", sys.executable, "-c", "raise SystemExit(4)"])
    assert emulate.wait_exit() == 1, emulate.output
    assert emulate.lines == [
        "holdfast emulate: the function's init failed: Runtime.ExitError: "
        "Error: Runtime exited with error: exit status 4",
        f"  hint: `{sys.executable} -c 'raise SystemExit(4)'` exited before asking for its "
        "first event: the command must be a Lambda runtime (holdfast run, "
        "python -m awslambdaric, ...)",
    ]


def test_a_later_environment_that_fails_its_init_says_it_once(tmp_path):
    marker = tmp_path / "first-init-done"
    emulate = EmulateCommand(
        ["--", *STARTING["holdfast run"]], env={"LATER_INITS_FAIL": str(marker)}
    )
    try:
        url = emulate.wait_for(r"listening on (http://\S+)")[1]
        crashed = _invoke(url, {"crash": True})  # the environment is reset
        assert crashed.headers["x-amz-function-error"] == "Unhandled"
        failed = _invoke(url, {})  # a new init, which fails
        assert failed.json()["errorMessage"] == "a later init fails"
        emulate.wait_for(f"^REPORT RequestId: {failed.headers['x-amzn-requestid']}")
    finally:
        assert emulate.stop() == 0, emulate.output
    assert emulate.output.count("a later init fails") == 1, emulate.output


def test_an_init_over_its_limit_is_said_and_retried_by_the_first_request_as_on_lambda(tmp_path):
    env = {"SLOW_INIT_MARKER": str(tmp_path / "slow"), "SLOW_INIT_SECONDS": "30"}
    runtime = [sys.executable, "-m", "awslambdaric", "slow_init.handler"]
    emulate = EmulateCommand(["--init-timeout", "0.5", "--", *runtime], env=env)
    try:
        url = emulate.wait_for(r"listening on (http://\S+)")[1]
        lines = emulate.lines
        said = _index(lines, "the function's init did not finish within 0.5 s")
        assert _index(lines, r"^INIT_REPORT .*Status: timeout") < said
        assert said < _index(lines, "listening on")
        # Only the first init is slow (its marker is there now): the first request's succeeds.
        assert _invoke(url, {}).json() == "initialized"
    finally:
        assert emulate.stop() == 0, emulate.output


def test_a_stop_during_init_ends_it(tmp_path):
    marker = tmp_path / "slow"
    env = {"SLOW_INIT_MARKER": str(marker), "SLOW_INIT_SECONDS": "600"}
    emulate = EmulateCommand(
        ["--", sys.executable, "-m", "awslambdaric", "slow_init.handler"], env=env
    )
    wait_until(marker.exists, "the init under way")
    assert emulate.stop() == 0, emulate.output
    assert emulate.lines[-1] == "holdfast emulate: stopped before the function's init finished"
    assert "listening" not in emulate.output


def test_a_long_init_is_said_to_be_running(emulators, tmp_path, capsys):
    # The import sleeps 0.5 s: 0.01 s into it, the init is still running.
    env = {"SLOW_INIT_MARKER": str(tmp_path / "slow"), "SLOW_INIT_SECONDS": "0.5"}
    emu = emulators(ric("slow_init.handler"), env=env)
    assert emu.run(start_function(emu.emulator, after=0.01, every=60)) is None
    said = capsys.readouterr().err
    assert said.startswith("holdfast emulate: the function's init is still running: "), said
    assert said.endswith(" s so far (the limit is 10 s: --init-timeout)\n"), said
    assert emu.environments[0].warm
    assert emu.invoke({}).json() == "initialized"
    emu.wait_idle(60)
    assert [record.cold for record in emu.freeze_log] == [False]


def _index(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_what_the_function_prints_comes_between_its_start_and_end_lines():
    # With no telemetry subscriber the function's lines reach stdout as the loop reads them:
    # what it printed before calling `next` is read before its END and REPORT lines.
    emulate = EmulateCommand(["--", *ric("shout")])
    try:
        url = emulate.wait_for(r"listening on (http://\S+)")[1]
        request_ids = []
        for lines in (3, 40):
            response = _invoke(url, {"lines": lines})
            assert response.status_code == 200
            request_ids.append(response.headers["x-amzn-requestid"])
            emulate.wait_for(f"^REPORT RequestId: {request_ids[-1]}")
    finally:
        assert emulate.stop() == 0, emulate.output
    for request_id, count in zip(request_ids, (3, 40), strict=True):
        printed = [i for i, line in enumerate(emulate.lines) if line.endswith(f"of {request_id}")]
        start = _index(emulate.lines, f"^START RequestId: {request_id}")
        end = _index(emulate.lines, f"^END RequestId: {request_id}")
        assert len(printed) == count and start < min(printed) and max(printed) < end, emulate.output
