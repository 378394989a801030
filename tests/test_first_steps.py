"""A new user's first steps: every mistake gets one line saying what is wrong and a hint, and
what the docs promise is what happens (issue 19, "Errors and first steps that help").

The commands run as a user runs them (subprocesses of the `holdfast` script); nothing here
compares wall-clock times: waits are on output lines and process exits, with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import holdfast
from holdfast import config, rewrite
from holdfast.dev.server import init_failure, user_frames
from holdfast.emulator import ThreadedEmulator
from holdfast.emulator import cli as emulate_cli
from holdfast.emulator.invoke import RuntimeResponse
from holdfast.proxy import cli as proxy_cli
from holdfast.proxy import readiness
from lambda_events import http_event

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOLDFAST = str(BIN / "holdfast")


def _chromium_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "chromium", ROOT / "tests" / "dev" / "chromium.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chromium = _chromium_module()


def holdfast_cli(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    return subprocess.run(
        [HOLDFAST, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=environ
    )


def one_line_and_a_hint(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[1].startswith("  hint: "), done.stderr
    return lines[0], lines[1].removeprefix("  hint: ")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "main.py").write_text(
        textwrap.dedent(
            """\
            import holdfast

            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b"down"})

            handler = holdfast.Adapter(app, error_status_codes=[503], lifespan="off")
            """
        )
    )
    (tmp_path / "raiser.py").write_text(
        "def connect():\n"
        "    raise RuntimeError('DATABASE_URL is not set')\n\n"
        "connect()\n"
        "app = None\n"
    )
    return tmp_path


# -- usage errors: one line and a hint ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ["emulate", "holdfast", "run", "main:handler"],
            "holdfast emulate: the runtime command must follow `--`, "
            "got 'holdfast run main:handler'",
            "holdfast emulate [options] -- holdfast run main:handler",
        ),
        (
            ["emulate", "--prot", "9000", "--", "holdfast", "run", "main:handler"],
            "holdfast emulate: unknown option '--prot'",
            "did you mean --port?",
        ),
        (
            ["emulate", "--port", "abc", "--", "holdfast", "run", "main:handler"],
            "holdfast emulate: --port expects a whole number, got 'abc'",
            "`holdfast emulate --help` lists the options",
        ),
        (
            ["emulate", "--port", "9000"],
            "holdfast emulate: a runtime command is required after --",
            "holdfast emulate -- holdfast run app:handler",
        ),
        (
            ["emulate", "--", "holdfast", "run", "mian:handler"],
            "holdfast emulate: the handler 'mian:handler' names module 'mian', "
            "which is not in {dir}",
            "did you mean 'main'?",
        ),
        (
            ["emulate", "--", sys.executable, "-m", "awslambdaric", "mian.handler"],
            "holdfast emulate: the handler 'mian.handler' names module 'mian', "
            "which is not in {dir}",
            "did you mean 'main'?",
        ),
        (
            ["proxy", "uvicorn", "main:app"],
            "holdfast proxy: the server's command must follow `--`, got 'uvicorn main:app'",
            "holdfast proxy -- uvicorn main:app",
        ),
        (
            ["proxy", "--port", "abc", "--", "uvicorn", "main:app"],
            "holdfast proxy: --port expects a port number (1-65535), got 'abc'",
            "--port 8000",
        ),
        (
            ["proxy", "--prot", "8000", "--", "uvicorn", "main:app"],
            "holdfast proxy: unknown option '--prot'",
            "did you mean --port?",
        ),
        (
            ["dev", "main:app", "--prot", "9000"],
            "holdfast dev: unknown option '--prot'",
            "did you mean --port?",
        ),
        (
            ["dev", "main:app", "--port", "abc"],
            "holdfast dev: --port expects a whole number, got 'abc'",
            "`holdfast dev --help` lists the options",
        ),
        (
            ["run", "--port", "9000"],
            "holdfast run: unknown option '--port'",
            "usage: holdfast run MODULE:ATTR",
        ),
    ],
)
def test_a_usage_mistake_gets_one_line_and_a_hint(app_dir, args, message, hint):
    done = holdfast_cli(*args, cwd=app_dir)
    assert done.returncode == 2
    assert one_line_and_a_hint(done) == (message.format(dir=app_dir), hint)


def test_a_port_in_use_under_emulate_is_one_line_and_a_hint(app_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = holdfast_cli(
            "emulate", "--port", str(port), "--", "holdfast", "run", "main:handler", cwd=app_dir
        )
    assert done.returncode == 1
    assert one_line_and_a_hint(done) == (
        f"holdfast emulate: port {port} is already in use on 127.0.0.1",
        f"stop what listens there, or pick another port: --port {port + 1}",
    )


def test_a_command_that_names_no_handler_is_not_checked():
    assert emulate_cli.handler_spec(["uvicorn", "main:app"]) is None
    assert emulate_cli.handler_spec([HOLDFAST, "run", "main:app"]) == "main:app"
    assert emulate_cli.handler_spec(["python3", "-m", "holdfast", "run", "a.b:c"]) == "a.b:c"
    assert emulate_cli.handler_spec(["python", "-m", "awslambdaric", "app.handler"]) == (
        "app.handler"
    )


# -- `holdfast emulate`: an init failure is said once ----------------------------------------


def test_emulate_says_an_init_failure_once(app_dir):
    # The init runs before "listening": a function that cannot start is said once, and exits.
    done = holdfast_cli(
        "emulate", "--port", "0", "--", HOLDFAST, "run", "main:nothing", cwd=app_dir
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "listening" not in output and "Traceback" not in output, output
    assert output.count("Handler 'nothing' missing on module 'main'") == 1, output
    assert "  hint: check the name after the module: 'nothing' in 'main'" in output


# -- `holdfast dev`: the app's frames, once, and a hint that is true ---------------------------


def test_dev_says_an_init_failure_once_with_the_apps_frames_only(app_dir):
    done = subprocess.run(
        [HOLDFAST, "dev", "raiser:app", "--port", "0", "--no-reload", "--no-worker"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=app_dir,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.count("DATABASE_URL is not set") == 2, output  # the message, the raise line
    assert output.count("RuntimeError: DATABASE_URL is not set") == 1, output
    assert "importlib" not in output and "<frozen" not in output, output
    assert f'File "{app_dir / "raiser.py"}", line 4, in <module>' in output
    assert "hint: the traceback above shows where the app failed to start" in output


def test_user_frames_keep_the_apps_and_the_raising_frame():
    frames = [
        f'  File "{importlib.__file__}", line 126, in import_module\n    x\n',
        '  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import\n',
        '  File "/srv/app/main.py", line 3, in <module>\n    import settings\n',
        f'  File "{os.path.dirname(json.__file__)}/decoder.py", line 9, in decode\n    raise\n',
    ]
    assert user_frames(frames) == [frames[2], frames[3]]
    library_only = frames[:2]
    assert user_frames(library_only) == library_only  # nothing of the app's: all is shown


def test_without_a_traceback_the_hint_does_not_point_above():
    body = json.dumps({"errorType": "Runtime.BackendError", "errorMessage": "boto3 is needed"})
    failure = init_failure(
        "app:app", "init_error", RuntimeResponse(body.encode(), error_type="Runtime.BackendError")
    )
    assert failure.details == []
    assert failure.hint is not None and "above" not in failure.hint
    assert "holdfast coldstart app:app" in failure.hint


def test_a_missing_dependency_is_named_as_such():
    body = json.dumps(
        {
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": "Unable to import module 'app': No module named 'boto3'",
        }
    )
    failure = init_failure("app:app", "init_error", RuntimeResponse(body.encode()))
    assert failure.hint == "'app' imports 'boto3', which is not installed here"


# -- after-response work cut by the deadline: a sentence -----------------------------------------


def test_the_deadline_message_for_the_apps_own_work_reads(caplog):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        await asyncio.Event().wait()  # the app's code after its final send never ends

    adapter = holdfast.Adapter(app, lifespan="off")

    async def one_request() -> None:
        invocation = adapter.begin(http_event("/"), None, streaming=False)
        await invocation.outcome()
        invocation.handed_over()
        await invocation.drain(0.05)

    try:
        with caplog.at_level(logging.ERROR, "holdfast"):
            adapter.engine.run(one_request())
    finally:
        adapter.close()
    assert (
        "after-response work in the app's request (BackgroundTasks, code after its final send) "
        "did not finish before the deadline and was cancelled"
    ) in caplog.text


# -- `holdfast proxy` with the server on another port ------------------------------------------


def test_the_proxy_names_the_polled_port_and_the_fix_at_once(tmp_path):
    settings = config.proxy_settings(None, environ={})
    lines = proxy_cli.readiness_lines(["uvicorn", "main:app"], settings)
    assert lines[0] == (
        "holdfast proxy: starting uvicorn main:app; ready once GET http://127.0.0.1:8080/ answers"
    )
    assert lines[1] == (
        "  hint: uvicorn listens on 8000 unless told; holdfast polls 8080: add `--port 8080` to "
        "the command, or set AWS_LWA_PORT=8000 (or holdfast proxy --port 8000)"
    )
    assert len(proxy_cli.readiness_lines(["uvicorn", "main:app", "--port", "8080"], settings)) == 1
    assert len(proxy_cli.readiness_lines(["node", "server.js"], settings)) == 1


def test_the_proxy_prints_those_lines_before_anything_else(tmp_path):
    # A "uvicorn" that exits at once: the proxy still said first where it waits.
    fake = tmp_path / "uvicorn"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        api = f"127.0.0.1:{closed.getsockname()[1]}"
    done = holdfast_cli(
        "proxy", "--", str(fake), "main:app", AWS_LAMBDA_RUNTIME_API=api, PATH=os.environ["PATH"]
    )
    assert done.returncode != 0
    first = done.stderr.splitlines()[:2]
    assert first[0].startswith(f"holdfast proxy: starting {fake} main:app; ready once GET")
    assert first[1].startswith("  hint: uvicorn listens on 8000 unless told; holdfast polls 8080")


def test_readiness_progress_is_a_warning_naming_where_it_polls(monkeypatch, caplog):
    monkeypatch.setattr(readiness, "LOG_INTERVAL", 0.0)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = config.ProxySettings(port=port, readiness_port=port)

    async def wait() -> None:
        alive = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, alive.set_result, 0)
        with pytest.raises(readiness.NotReady):
            await readiness.wait_ready(settings, None, alive=alive)

    with caplog.at_level(logging.WARNING, "holdfast"):
        asyncio.run(wait())
    # WARNING: shown by Python's last-resort handler with no logging configured.
    records = [r for r in caplog.records if "app is not ready after" in r.getMessage()]
    assert records and all(r.levelno == logging.WARNING for r in records)
    assert f"polling 127.0.0.1:{port}" in records[0].getMessage()


# -- warnings name their variable; a missing authorization header is said once -----------------


def test_config_warnings_name_the_variable(caplog, monkeypatch):
    monkeypatch.setattr(config, "_warned", set())  # each is said once per process
    with caplog.at_level(logging.WARNING, "holdfast"):
        config.invoke_mode(environ={"AWS_LWA_INVOKE_MODE": "streamy"})
        config.invoke_mode(environ={"HOLDFAST_INVOKE_MODE": "streamier"})
        config.proxy_settings(None, environ={"AWS_LWA_READINESS_CHECK_PROTOCOL": "udp"})
        config.compression(streaming=True, environ={"AWS_LWA_ENABLE_COMPRESSION": "true"})
    text = caplog.text
    assert "AWS_LWA_INVOKE_MODE='streamy' is not buffered or response_stream" in text
    assert "HOLDFAST_INVOKE_MODE='streamier' is not buffered or response_stream" in text
    assert "AWS_LWA_READINESS_CHECK_PROTOCOL='udp' is not http or tcp" in text
    assert "AWS_LWA_ENABLE_COMPRESSION: compression is not available with response streaming" in (
        text
    )


def test_a_missing_authorization_source_header_is_said_once(caplog):
    headers = [(b"host", b"example.com")]
    with caplog.at_level(logging.WARNING, "holdfast"):
        for _ in range(3):
            assert rewrite.move_authorization(headers, b"x-first-steps-auth") == headers
    assert caplog.text.count("x-first-steps-auth") == 1
    assert "AWS_LWA_AUTHORIZATION_SOURCE" in caplog.text


@pytest.fixture
def clean_invoke_mode(monkeypatch):
    monkeypatch.delenv("HOLDFAST_INVOKE_MODE", raising=False)
    monkeypatch.delenv("AWS_LWA_INVOKE_MODE", raising=False)


def test_emulate_takes_the_functions_invoke_mode(clean_invoke_mode, capsys):
    parse = emulate_cli.parse_config
    assert parse(["--", "x"]).invoke_mode == "buffered"
    streaming = ["--env", "AWS_LWA_INVOKE_MODE=response_stream", "--", "x"]
    assert parse(streaming).invoke_mode == "response_stream"
    assert capsys.readouterr().err == ""
    assert parse(["--invoke-mode", "buffered", *streaming]).invoke_mode == "buffered"
    assert capsys.readouterr().err == (
        "holdfast emulate: --invoke-mode buffered overrides "
        "AWS_LWA_INVOKE_MODE=response_stream for the function\n"
    )


def test_emulate_says_when_the_functions_own_variable_wins(clean_invoke_mode, capsys, monkeypatch):
    monkeypatch.setenv("HOLDFAST_INVOKE_MODE", "buffered")
    config_ = emulate_cli.parse_config(["--invoke-mode", "response_stream", "--", "x"])
    assert config_.invoke_mode == "response_stream"
    assert "the function's HOLDFAST_INVOKE_MODE=buffered stays" in capsys.readouterr().err


# -- the same 503 under holdfast run and awslambdaric -------------------------------------------


def test_a_listed_status_reads_the_same_under_both_runtimes(app_dir):
    payloads = {}
    for name, command in {
        "holdfast run": [sys.executable, "-m", "holdfast", "run", "main:handler"],
        "awslambdaric": [sys.executable, "-m", "awslambdaric", "main.handler"],
    }.items():
        with ThreadedEmulator(command, cwd=str(app_dir), port=0) as emulator:
            result = emulator.invoke(http_event("/"))
        assert result.function_error is not None, name
        payloads[name] = result.json()
    ours, theirs = payloads["holdfast run"], payloads["awslambdaric"]
    assert ours["errorType"] == theirs["errorType"] == "HTTPError.503"
    assert ours["errorMessage"] == theirs["errorMessage"] == '{"statusCode":503,"body":"down"}'
    assert ours["stackTrace"] == []
    # awslambdaric always adds the frame that raised: holdfast's line says it was on purpose.
    [frame] = theirs["stackTrace"]
    assert "a function error on purpose" in frame


# -- docs and code agree ---------------------------------------------------------------------------


def test_emulate_help_shows_the_adapter_and_the_bare_app():
    done = holdfast_cli("emulate", "--help")
    assert "holdfast emulate -- holdfast run app:handler" in done.stdout
    assert "holdfast run app:app       # the same Adapter (the module's)" in done.stdout


def test_the_docs_say_the_loader_reuses_the_modules_adapter():
    # tests/runtime/test_runtime_loader.py::test_module_app_and_module_handler_agree is the code.
    deploying = (ROOT / "docs" / "deploying.md").read_text()
    assert "the loader uses the one your module built around `app`" in deploying
    for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        text = path.read_text()
        assert "but without the options you gave" not in text, path
        assert "which would run without those options" not in text, path


def test_the_streaming_recipe_points_to_the_container_image():
    deploying = (ROOT / "docs" / "deploying.md").read_text()
    custom = deploying.split("Response streaming needs `holdfast run`")[1].split("## ")[0]
    assert "**Use\nthe [container image](#container-image)**" in custom
    assert "## Container image" in deploying
    dockerfile = (ROOT / "examples" / "shop" / "Dockerfile").read_text()
    assert 'CMD ["holdfast", "run",' in dockerfile  # the container path is holdfast run


# -- install ---------------------------------------------------------------------------------------


def test_the_readme_install_line_works_in_a_fresh_venv(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert "pip install './holdfast[aws,wsgi]'" in readme
    assert "do not\n`pip install holdfast`" in readme  # PyPI's holdfast is another project
    clone = tmp_path / "holdfast"  # what a clone holds of the package (not its build folders)
    clone.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, clone / name)
    shutil.copytree(ROOT / "src", clone / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    (tmp_path / "build").mkdir()  # a stray build/ beside it changes nothing
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "./holdfast[aws,wsgi]"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    check = "import holdfast, boto3, a2wsgi; print(holdfast.Adapter.__name__)"
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check], capture_output=True, text=True, timeout=120
    )
    assert ran.stdout.strip() == "Adapter", ran.stderr


# -- make test: the prerequisites it finds, or names --------------------------------------------


@pytest.fixture
def bare_path(tmp_path) -> Iterator[dict[str, str]]:
    empty = tmp_path / "bin"
    empty.mkdir()
    browsers = tmp_path / "browsers"
    browsers.mkdir()
    yield {"PATH": str(empty), "PLAYWRIGHT_BROWSERS_PATH": str(browsers), "HOME": str(tmp_path)}


def test_chromium_is_found_where_it_is_installed(tmp_path, bare_path):
    fake = Path(bare_path["PATH"]) / "google-chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert chromium.find_chromium(bare_path) == str(fake)
    assert chromium.find_chromium({**bare_path, "HOLDFAST_CHROMIUM": str(fake)}) == str(fake)
    assert (
        chromium.find_chromium({**bare_path, "HOLDFAST_CHROMIUM": str(tmp_path / "nope")}) is None
    )
    fake.unlink()
    assert chromium.find_chromium(bare_path) is None


def test_make_names_a_missing_chromium_instead_of_failing_cryptically(bare_path):
    make = shutil.which("make")
    assert make is not None, "make is needed to run make test"
    done = subprocess.run(
        [make, "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed", "chromium"],
        capture_output=True,
        text=True,
        timeout=300,
        env=bare_path,  # no apt-get, no sudo, no browser: nothing to install with
    )
    assert done.returncode != 0
    assert chromium.MISSING in done.stderr, done.stderr


# -- any command line: a config, or one line and a hint (never a usage block or a traceback) ----

_WORDS = st.sampled_from(
    [
        "--port",
        "--prot",
        "--timeout",
        "--env",
        "--event-format",
        "--invoke-mode",
        "--memory",
        "--",
        "-x",
        "abc",
        "0",
        "9000",
        "v1",
        "A=B",
        "=",
        "holdfast",
        "run",
        "main:handler",
        "",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_WORDS, st.text(max_size=8)), max_size=8))
def test_any_emulate_command_line_is_a_config_or_one_line_and_a_hint(argv):
    argv = [word for word in argv if word not in ("-h", "--help", "--hel", "--he", "--h")]
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            emulate_cli.parse_config(argv)
        except SystemExit as exited:
            assert exited.code == 2
            lines = errors.getvalue().splitlines()
            assert len(lines) == 2 and lines[0].startswith("holdfast emulate: "), lines
            assert lines[1].startswith("  hint: "), lines


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_WORDS, st.text(max_size=8)), max_size=8))
@example(["--port", "²"])  # a digit to str.isdigit, not to int()
def test_any_proxy_command_line_is_a_command_or_one_line_and_a_hint(argv):
    argv = [word for word in argv if word not in ("-h", "--help")]
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            proxy_cli._parse(argv)
        except SystemExit as exited:
            assert exited.code == 2
            lines = errors.getvalue().splitlines()
            assert len(lines) == 2 and lines[0].startswith("holdfast proxy: "), lines
            assert lines[1].startswith("  hint: "), lines
