"""Lambda's 2025-2026 Runtime API semantics under `holdfast run`: the invocation id echoed, a
410 Gone dropped (never carried into a later invocation), the tenant id in the context, the
trace id per invocation, and AWS_LAMBDA_LOG_FORMAT=JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
import runtime_apps
from test_runtime_loop import app_target

from holdfast.runtime import logs
from holdfast.runtime.client import InvocationRequest
from holdfast.runtime.context import enter_invocation, trace_id
from holdfast.runtime.loader import Target
from lambda_events import http_event

pytestmark = pytest.mark.timeout(30)


def invocation_headers(invocation_id: str, **extra: str) -> dict[str, str]:
    return {"Lambda-Runtime-Invocation-Id": invocation_id, **extra}


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streamed"])
def test_the_invocation_id_is_echoed_on_the_response(serve, streaming):
    async def scenario(fake, task):
        request_id = fake.add_event(http_event("/hello"), headers=invocation_headers("inv-1"))
        return await fake.wait_result(request_id)

    result = serve(app_target(), scenario, streaming=streaming)
    assert result.path.endswith("/response")
    assert result.headers["lambda-runtime-invocation-id"] == "inv-1"


def test_the_invocation_id_is_echoed_on_an_error(serve):
    async def scenario(fake, task):
        request_id = fake.add_event({"k": 1}, headers=invocation_headers("inv-2"))
        return await fake.wait_result(request_id)

    result = serve(Target(handler=runtime_apps.failing_handler), scenario)
    assert result.path.endswith("/error")
    assert result.headers["lambda-runtime-invocation-id"] == "inv-2"


def test_no_invocation_id_header_when_next_carried_none(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event(http_event("/hello")))

    result = serve(app_target(), scenario)
    assert "lambda-runtime-invocation-id" not in result.headers


@pytest.mark.parametrize("target", ["app", "handler"])
def test_a_410_gone_is_dropped_and_the_runtime_carries_on(serve, target, caplog):
    chosen = app_target() if target == "app" else Target(handler=runtime_apps.handler)
    event = http_event("/hello") if target == "app" else {"k": 1}

    async def scenario(fake, task):
        fake.post_failures.append(410)  # the first invocation timed out before it answered
        late = fake.add_event(event, headers=invocation_headers("inv-late"))
        await fake.wait_result(late)
        fresh = fake.add_event(event, headers=invocation_headers("inv-fresh"))
        return late, fresh, await fake.wait_result(fresh), fake.requests

    with caplog.at_level(logging.WARNING, logger="holdfast"):
        late, fresh, result, requests = serve(chosen, scenario)
    posts = [r for r in requests if r.path.startswith("/2018-06-01/runtime/invocation/")]
    posts = [r for r in posts if r.method == "POST"]
    # One post per invocation, each to its own request id with its own invocation id.
    assert [(r.path.split("/")[4], r.headers["lambda-runtime-invocation-id"]) for r in posts] == [
        (late, "inv-late"),
        (fresh, "inv-fresh"),
    ]
    assert result.path.endswith(f"{fresh}/response")
    assert f"request {late}: the invocation timed out" in caplog.text


def test_tenant_id_reaches_the_context(serve):
    async def scenario(fake, task):
        headers = {"Lambda-Runtime-Aws-Tenant-Id": "tenant-7"}
        return await fake.wait_result(fake.add_event(http_event("/context"), headers=headers))

    result = serve(app_target(), scenario)
    assert json.loads(result.json()["body"])["tenant_id"] == "tenant-7"


def test_each_concurrent_invocation_sees_its_own_trace_id(serve):
    seen: dict[str, str | None] = {}

    async def traced(event, context):
        await asyncio.sleep(0.05)  # overlap with the others
        seen[context.aws_request_id] = trace_id()
        return {}

    async def scenario(fake, task):
        ids = [
            fake.add_event({}, headers={"Lambda-Runtime-Trace-Id": f"Root=1-{i}"}) for i in range(3)
        ]
        for request_id in ids:
            await fake.wait_result(request_id)
        return ids

    ids = serve(Target(handler=traced), scenario, concurrency=3)
    assert [seen[request_id] for request_id in ids] == [f"Root=1-{i}" for i in range(3)]


def test_trace_id_env_is_set_only_when_one_invocation_runs_at_a_time(monkeypatch):
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    request = _request("r1", trace_id="Root=1-abc", tenant_id=None)
    enter_invocation(request, process_wide=True)
    import os

    assert os.environ["_X_AMZN_TRACE_ID"] == "Root=1-abc"
    enter_invocation(_request("r2", trace_id="Root=1-def", tenant_id=None), process_wide=False)
    assert "_X_AMZN_TRACE_ID" not in os.environ
    assert trace_id() == "Root=1-def"


def test_trace_id_env_reaches_python_code_but_never_the_c_environment(monkeypatch):
    # glibc's setenv keeps every distinct value forever: a C-level setenv per invocation is a
    # leak. Python code (and `env=os.environ`) sees the id; the C environment, which a child
    # started with the inherited environment gets, never holds one.
    import ctypes
    import os
    import subprocess
    import sys

    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-stale")  # a C-level value from before
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    enter_invocation(_request("r1", trace_id="Root=1-abc", tenant_id=None), process_wide=True)
    assert os.environ["_X_AMZN_TRACE_ID"] == "Root=1-abc"
    assert getenv(b"_X_AMZN_TRACE_ID") is None
    show = [sys.executable, "-c", "import os; print(os.environ.get('_X_AMZN_TRACE_ID'))"]
    inherited = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    given = subprocess.run(show, env=os.environ, capture_output=True, text=True, check=True)
    assert (inherited.strip(), given.stdout.strip()) == ("None", "Root=1-abc")
    enter_invocation(_request("r2", trace_id=None, tenant_id=None), process_wide=True)
    assert "_X_AMZN_TRACE_ID" not in os.environ
    assert getenv(b"_X_AMZN_TRACE_ID") is None


def _request(request_id: str, *, trace_id: str | None, tenant_id: str | None) -> InvocationRequest:
    return InvocationRequest(
        request_id=request_id,
        deadline_ms=0,
        invoked_function_arn="arn",
        trace_id=trace_id,
        client_context=None,
        cognito_identity=None,
        tenant_id=tenant_id,
        content_type="application/json",
        body=b"{}",
    )


# -- logs ------------------------------------------------------------------------------
@pytest.fixture
def root_logger():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


def test_json_log_lines_in_the_managed_runtime_shape(root_logger):
    stream = io.StringIO()
    logs.configure("JSON", "INFO", stream)
    enter_invocation(_request("req-1", trace_id=None, tenant_id="t-1"), process_wide=False)
    logging.getLogger("app").info("hello %s", "world", extra={"order": 7})
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("app.db").exception("failed")
    logging.getLogger("app").debug("not shown at INFO")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    fields = {"timestamp", "level", "message", "logger", "requestId", "tenantId", "order"}
    assert set(first) == fields
    assert first["level"] == "INFO" and first["message"] == "hello world"
    assert first["logger"] == "app" and first["requestId"] == "req-1" and first["order"] == 7
    assert first["timestamp"].endswith("Z") and first["tenantId"] == "t-1"
    assert second["level"] == "ERROR" and second["errorType"] == "ValueError"
    assert second["errorMessage"] == "broken" and second["stackTrace"]


def test_log_level_alone_installs_text_lines_with_the_request_id(root_logger):
    stream = io.StringIO()
    logs.configure("Text", "debug", stream)
    enter_invocation(_request("req-2", trace_id=None, tenant_id=None), process_wide=False)
    logging.getLogger("app").debug("details")
    level, _, request_id, message = stream.getvalue().rstrip("\n").split("\t")
    assert (level, request_id, message) == ("[DEBUG]", "req-2", "details")


def test_no_log_settings_install_nothing(root_logger):
    before = list(root_logger.handlers)
    assert logs.configure(None, None) is None
    assert logs.configure("Text", "") is None
    assert root_logger.handlers == before
