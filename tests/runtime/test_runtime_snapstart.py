"""SnapStart: hooks around GET /runtime/restore/next and AWS's error reporting."""

from __future__ import annotations

import pytest
import runtime_apps
import snapshot_restore_py
from snapshot_restore_py import register_after_restore, register_before_snapshot

from holdfast.runtime.loader import Target

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _fresh_hook_registries(monkeypatch):
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", [])
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])


def target() -> Target:
    return Target(handler=runtime_apps.handler)


def test_hooks_run_around_restore_next_in_aws_order(serve):
    order = []
    register_before_snapshot(order.append, "before 1")
    register_before_snapshot(order.append, "before 2")
    register_after_restore(order.append, "after 1")

    async def after_2():
        order.append("after 2 (async)")

    register_after_restore(after_2)

    async def scenario(fake, task):
        fake.snapstart = True
        fake.observers.append(lambda entry: order.append(entry))
        request_id = fake.add_event({"x": 1})
        await fake.wait_result(request_id)

    serve(target(), scenario, snapstart=True)
    requests = [entry for entry in order if not entry.startswith(("end ", "chunk "))]
    assert requests[:5] == [
        "before 2",
        "before 1",
        "GET /2018-06-01/runtime/restore/next",
        "after 1",
        "after 2 (async)",
    ]
    assert requests[5] == "GET /2018-06-01/runtime/invocation/next"


def test_a_refused_restore_next_is_a_before_snapshot_error(serve):
    async def scenario(fake, task):
        return await task, fake.find("POST", "/init/error")

    status, (init_error,) = serve(target(), scenario, snapstart=True)  # fake: SnapStart off
    assert status == 64
    assert init_error.json()["errorType"] == "RuntimeAPIError"


@pytest.mark.parametrize(
    ("register", "exception", "status", "endpoint", "category"),
    [
        (
            register_before_snapshot,
            RuntimeError("cannot close pool"),
            64,
            "/init/error",
            "Runtime.BeforeSnapshotError",
        ),
        (
            register_after_restore,
            ConnectionError("reconnect failed"),
            65,
            "/restore/error",
            "Runtime.AfterRestoreError",
        ),
    ],
)
def test_a_failing_hook_is_reported_and_ends_the_process(
    serve, register, exception, status, endpoint, category
):
    def fail():
        raise exception

    register(fail)

    async def scenario(fake, task):
        fake.snapstart = True
        return await task, fake.find("POST", endpoint), fake.nexts()

    exit_status, (error,), nexts = serve(target(), scenario, snapstart=True)
    assert exit_status == status
    assert error.headers["lambda-runtime-function-error-type"] == category
    assert error.json()["errorType"] == type(exception).__name__
    assert error.json()["errorMessage"] == str(exception)
    assert nexts == 0
