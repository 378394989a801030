"""How the hosts and the task queue plug into the core, in process: the adapter-created hook,
the one host choice, the event kinds a component claims, the spill registration, the one
shutdown budget and the one WSGI detection."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from holdfast import dispatch, hosts, pending
from holdfast.adapter import Adapter, _created_hooks, app_kind, on_created
from holdfast.config import LambdaSettings
from holdfast.hosts import shutdown
from holdfast.outcome import Buffered
from holdfast.sources import Codecs


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def hooks():
    saved = list(_created_hooks)
    yield _created_hooks
    _created_hooks[:] = saved


@pytest.fixture
def claims():
    saved = list(dispatch._claims)
    yield
    dispatch._claims[:] = saved


# -- the adapter-created hook ---------------------------------------------------------------------
def test_every_adapter_is_announced_once_complete(hooks):
    seen: list[tuple[Adapter, bool]] = []

    def hook(adapter: Adapter) -> None:
        seen.append((adapter, adapter.drainer is None and adapter.codecs is not None))

    on_created(hook)
    on_created(hook)  # registering twice announces once
    first, second = Adapter(asgi_app), Adapter(asgi_app)
    assert seen == [(first, True), (second, True)]
    first.close()
    second.close()


def test_outside_lambda_attach_starts_nothing(hooks, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    on_created(hosts.attach)
    adapter = Adapter(asgi_app)
    assert (adapter.started, adapter.engine.started, adapter.drainer) == (False, False, None)
    adapter.close()


def test_on_lambda_with_the_custom_runtime_installed_only_startup_runs(hooks, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
    monkeypatch.setattr(hosts, "_installed", "custom")
    on_created(hosts.attach)
    adapter = Adapter(asgi_app)
    # Startup belongs to the init phase; the custom runtime drains itself: no drainer.
    assert (adapter.started, adapter.drainer) == (True, None)
    adapter.close()


# -- the one host choice --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "installed", "kind"),
    [
        ({}, None, "none"),
        ({"AWS_LAMBDA_RUNTIME_API": "x:1"}, None, "managed"),
        ({"AWS_LAMBDA_RUNTIME_API": "x:1", "HOLDFAST_EXTENSION": "off"}, None, "none"),
        ({"AWS_LAMBDA_RUNTIME_API": "x:1", "HOLDFAST_EXTENSION": "FALSE"}, None, "none"),
        ({"AWS_LAMBDA_RUNTIME_API": "x:1", "AWS_LAMBDA_MAX_CONCURRENCY": "4"}, None, "instances"),
        # awslambdaric checks the variable's presence: an empty value still means several.
        ({"AWS_LAMBDA_RUNTIME_API": "x:1", "AWS_LAMBDA_MAX_CONCURRENCY": ""}, None, "instances"),
        ({"AWS_LAMBDA_RUNTIME_API": "x:1"}, "custom", "custom"),
        ({}, "custom", "custom"),
    ],
)
def test_select_decides_from_the_settings(monkeypatch, environ, installed, kind):
    monkeypatch.setattr(hosts, "_installed", installed)
    assert hosts.select(LambdaSettings(environ)) == kind


def test_lambda_settings_are_read_once_into_one_object():
    settings = LambdaSettings(
        {
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "AWS_LWA_LAMBDA_RUNTIME_API_PROXY": "127.0.0.1:9009",
            "AWS_LAMBDA_MAX_CONCURRENCY": "8",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
            "_HANDLER": "app.handler",
            "LAMBDA_TASK_ROOT": "/var/task",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.on_lambda and settings.snapstart and settings.managed_instances
    assert settings.max_concurrency == 8
    assert settings.runtime_loop_api == "127.0.0.1:9009"  # the loop's calls go to the proxy
    assert settings.runtime_api == "127.0.0.1:9001"  # registration goes to Lambda itself
    assert (settings.handler, settings.task_root) == ("app.handler", "/var/task")
    assert (settings.log_format, settings.log_level) == ("JSON", "DEBUG")
    empty = LambdaSettings({})
    assert not empty.on_lambda and not empty.managed_instances and empty.extension
    assert (empty.max_concurrency, empty.runtime_loop_api, empty.handler) == (1, None, None)


# -- event kinds a component claims ---------------------------------------------------------------
def _sqs(source_arn: str = "arn:aws:sqs:eu-west-1:1:jobs") -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": source_arn, "body": "{}"}]}


def test_a_claimed_kind_is_named_only_for_its_sources_and_accepted_events(claims):
    async def handle(event: Any, context: Any) -> Any:
        return {"handled": True}

    dispatch.claim("jobs", ("sqs",), lambda event: "jobs" in str(event), handle)
    codecs = Codecs(frozenset())
    assert dispatch.dispatch(_sqs(), codecs).name == "jobs"
    assert dispatch.dispatch(_sqs("arn:aws:sqs:eu-west-1:1:other"), codecs).name == "sqs"
    assert dispatch.dispatch({"jobs": 1}, codecs).name == "custom"  # not one of its sources
    assert dispatch.dispatch(_sqs(), codecs).handler is handle


def test_claiming_a_kind_again_replaces_its_claim(claims):
    dispatch.claim("jobs", ("sqs",), lambda event: True, lambda e, c: 1)
    dispatch.claim("jobs", ("custom",), lambda event: True, lambda e, c: 2)
    codecs = Codecs(frozenset())
    assert dispatch.dispatch(_sqs(), codecs).name == "sqs"
    assert dispatch.dispatch({"x": 1}, codecs).name == "jobs"


def test_claims_come_after_http_and_before_the_warmer(claims):
    dispatch.claim("everything", ("custom",), lambda event: True, lambda e, c: None)
    codecs = Codecs(frozenset())
    http = {"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}}}
    assert dispatch.dispatch(http, codecs).is_http
    assert dispatch.dispatch({"warmer": True}, codecs).name == "everything"


def test_the_claimed_handler_answers_unless_the_app_has_its_own(claims):
    dispatch.claim("jobs", ("sqs",), lambda event: True, lambda e, c: {"by": "claim"})
    adapter = Adapter(asgi_app)
    assert adapter(_sqs()) == {"by": "claim"}

    @adapter.on(lambda event: "Records" in event)
    def own(event: Any, context: Any) -> Any:
        return {"by": "app"}

    assert adapter(_sqs()) == {"by": "app"}
    adapter.close()


def test_an_async_host_waits_for_a_claimed_handler_that_takes_a_while(claims):
    async def slow(event: Any, context: Any) -> Any:
        for _ in range(3):
            await asyncio.sleep(0)
        return {"slow": True}

    dispatch.claim("jobs", ("sqs",), lambda event: True, slow)
    adapter = Adapter(asgi_app)

    async def host() -> Any:
        invocation = adapter.begin(_sqs(), None)
        assert not invocation.ready()
        outcome = await asyncio.wait_for(invocation.outcome(), 5)
        invocation.handed_over()
        await invocation.drain(None)
        return outcome

    assert adapter.engine.run(host()) == Buffered({"slow": True})
    adapter.close()


# -- the spill of work the deadline cuts off -----------------------------------------------------
def test_work_a_registered_spiller_knows_is_spilled_not_cancelled(monkeypatch):
    monkeypatch.setattr(pending, "_spillers", [])
    spilled: list[tuple[Any, ...]] = []

    async def forever(name: str) -> None:
        await asyncio.Event().wait()

    def spiller(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if fn is not forever:
            return None

        async def spill() -> str:
            spilled.append(args)
            return "queued-1"

        return spill

    pending.spill_with(spiller)
    pending.spill_with(spiller)  # once is enough
    assert pending._spillers == [spiller]

    async def drain() -> tuple[pending.DrainReport, list[pending.WorkHandle]]:
        work = pending.PendingWork("r-1", asyncio.get_running_loop())
        handles = [work.defer(forever, "a"), work.defer(forever, "b")]
        report = await work.drain(0.01)
        return report, handles

    report, handles = asyncio.run(drain())
    assert (report.spilled, report.cancelled) == (2, [])
    assert spilled == [("a",), ("b",)]
    assert [handle.spilled_as for handle in handles] == ["queued-1", "queued-1"]


def test_work_no_spiller_knows_is_cancelled_and_reported(monkeypatch, caplog):
    monkeypatch.setattr(pending, "_spillers", [lambda fn, args, kwargs: None])

    async def forever() -> None:
        await asyncio.Event().wait()

    async def drain() -> pending.DrainReport:
        work = pending.PendingWork("r-2", asyncio.get_running_loop())
        work.defer(forever)
        return await work.drain(0.01)

    with caplog.at_level(logging.ERROR, "holdfast"):
        report = asyncio.run(drain())
    assert (report.spilled, len(report.cancelled)) == (0, 1)
    assert "did not finish before the deadline and was cancelled" in caplog.text


# -- the one shutdown budget ----------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(shutdown, "time", fake)
    return fake


def test_the_budget_keeps_lifespan_its_share(clock):
    budget = shutdown.Budget(0.4)
    assert budget.for_in_flight() == pytest.approx(0.4 * (1 - shutdown.LIFESPAN_SHARE))
    assert budget.remaining() == pytest.approx(0.4)
    clock.now += 0.25
    assert budget.for_in_flight() == pytest.approx(0.05)
    assert budget.remaining() == pytest.approx(0.15)
    clock.now += 1.0  # spent: never negative
    assert (budget.for_in_flight(), budget.remaining()) == (0.0, 0.0)


def test_without_a_lifespan_in_flight_work_may_take_the_whole_budget(clock):
    budget = shutdown.Budget(0.4, lifespan=False)
    assert budget.for_in_flight() == pytest.approx(0.4)
    clock.now += 0.1
    assert budget.for_in_flight() == budget.remaining() == pytest.approx(0.3)


class _Lifespan:
    """An adapter as wind_down sees it: it records the time its shutdown was given."""

    def __init__(self) -> None:
        self.given: list[float] = []

    async def shutdown(self, timeout: float | None = None) -> None:
        assert timeout is not None
        self.given.append(timeout)


def test_wind_down_cancels_in_flight_work_past_its_share_then_shuts_the_lifespan_down():
    adapter = _Lifespan()

    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        stuck = loop.create_task(asyncio.Event().wait())
        finishing = loop.create_task(asyncio.sleep(0))
        budget = shutdown.Budget(0.2)
        await shutdown.wind_down(adapter, budget, [stuck, finishing])  # type: ignore[arg-type]
        return stuck.cancelled(), finishing.done() and not finishing.cancelled()

    cancelled, finished = asyncio.run(main())
    assert (cancelled, finished) == (True, True)
    # Lifespan shutdown got what was left: at most its share plus any unspent in-flight time.
    [given] = adapter.given
    assert 0.0 <= given <= 0.2 * shutdown.LIFESPAN_SHARE + 0.01


def test_wind_down_with_nothing_in_flight_gives_lifespan_the_whole_budget():
    adapter = _Lifespan()
    asyncio.run(shutdown.wind_down(adapter, shutdown.Budget(30.0)))  # type: ignore[arg-type]
    [given] = adapter.given
    assert 29.0 < given <= 30.0


# -- the one WSGI detection -----------------------------------------------------------------------
def wsgi(environ: Any, start_response: Any) -> Any:
    return []


def handler(event: Any, context: Any) -> Any:
    return {}


async def async_handler(event: Any, context: Any) -> Any:
    return {}


class Flaskish:
    def wsgi_app(self, environ: Any, start_response: Any) -> Any:
        return []

    def __call__(self, a: Any, b: Any) -> Any:
        return self.wsgi_app(a, b)


@pytest.mark.parametrize(
    ("obj", "in_adapter", "in_runtime"),
    [
        (asgi_app, "asgi", "asgi"),
        (wsgi, "wsgi", "wsgi"),
        (Flaskish(), "wsgi", "wsgi"),
        (handler, "wsgi", "handler"),  # an adapter takes no handlers: two parameters are WSGI
        (async_handler, "asgi", "handler"),
        (lambda *args: None, "asgi", "asgi"),
        (lambda event: None, "asgi", "handler"),
    ],
)
def test_one_detection_tells_asgi_wsgi_and_handlers_apart(obj, in_adapter, in_runtime):
    assert app_kind(obj) == in_adapter
    assert app_kind(obj, handlers=True) == in_runtime
