"""Process hygiene, in real interpreter processes: an Adapter starts nothing until called, a
script that calls one exits (whatever its app left behind), and exit leaves no warning."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

PRELUDE = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from adapter_events import Request, function_url_event
import holdfast
"""


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA", "HOLDFAST_"))}
    # A hang is the failure this guards against: the bound only keeps the suite from hanging.
    return subprocess.run(
        [sys.executable, "-W", "always", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )


def assert_clean(result: subprocess.CompletedProcess[str], stdout: str) -> None:
    assert result.stderr == ""
    assert result.returncode == 0
    assert result.stdout == stdout


def test_a_script_calling_a_sync_fastapi_endpoint_once_exits(tmp_path):
    # FastAPI runs sync endpoints in an AnyIO worker thread (not a daemon) that is stopped by a
    # callback on the adapter's loop: the adapter must run it before the interpreter joins it.
    result = run_script(
        tmp_path,
        """
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/")
        def home():
            return {"sync": True}

        handler = holdfast.Adapter(app)
        print(handler(function_url_event(Request()), None)["body"])
        """,
    )
    assert_clean(result, '{"sync":true}\n')


def test_a_started_lifespan_is_shut_down_at_exit_without_a_pending_task(tmp_path):
    result = run_script(
        tmp_path,
        """
        import contextlib
        from fastapi import FastAPI

        @contextlib.asynccontextmanager
        async def lifespan(app):
            print("startup")
            yield
            print("shutdown")

        app = FastAPI(lifespan=lifespan)

        @app.get("/")
        def home():
            return {"ok": True}

        handler = holdfast.Adapter(app)
        print(handler(function_url_event(Request()), None)["body"])
        """,
    )
    assert_clean(result, 'startup\n{"ok":true}\nshutdown\n')


def test_an_adapter_dropped_without_close_leaks_no_loop(tmp_path):
    result = run_script(
        tmp_path,
        """
        import contextlib, gc
        from fastapi import FastAPI

        @contextlib.asynccontextmanager
        async def lifespan(app):
            yield
            print("shutdown")

        app = FastAPI(lifespan=lifespan)

        @app.get("/")
        async def home():
            return {"ok": True}

        def once():
            handler = holdfast.Adapter(app)
            print(handler(function_url_event(Request()), None)["body"])

        once()
        gc.collect()
        print("collected")
        """,
    )
    assert_clean(result, '{"ok":true}\nshutdown\ncollected\n')


def test_constructing_an_adapter_outside_lambda_starts_nothing(tmp_path):
    result = run_script(
        tmp_path,
        """
        import signal, threading
        from fastapi import FastAPI

        started = []

        async def lifespan(app):
            started.append(True)
            yield

        app = FastAPI(lifespan=__import__("contextlib").asynccontextmanager(lifespan))
        handler = holdfast.Adapter(app)
        print(started, threading.active_count(), handler.engine.started,
              sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        handler(function_url_event(Request()), None)
        print(started, handler.engine.started)
        """,
    )
    assert_clean(result, "[] 1 False []\n[True] True\n")


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "left-open"])
def test_an_async_caller_that_uses_a_thread_exits_cleanly(tmp_path, closed):
    result = run_script(
        tmp_path,
        f"""
        import asyncio
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/")
        def home():
            return {{"ok": True}}

        handler = holdfast.Adapter(app)

        async def main():
            result = await asyncio.to_thread(handler, function_url_event(Request()), None)
            print(result["body"])
            if {closed}:
                handler.close()

        asyncio.run(main())
        """,
    )
    assert_clean(result, '{"ok":true}\n')
