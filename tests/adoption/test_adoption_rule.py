"""The adoption rule in process: whose tasks join an invocation, and the ways to override it."""

import asyncio
import importlib
import json
import os
import sys
import sysconfig
import textwrap
import threading

import pytest

import holdfast
from holdfast import adoption, appcode
from holdfast.pending import PendingWork
from lambda_events import http_event

EVENT = http_event("/")


def respond(send):
    async def go():
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return go()


@pytest.fixture
def adapters():
    made = []

    def make(app, **options):
        adapter = holdfast.Adapter(app, lifespan="off", **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close(timeout=5)


@pytest.fixture
def lambda_package(tmp_path, monkeypatch):
    """A directory laid out as `pip install -t` leaves a Lambda package: the app's module beside
    an installed library (with its dist-info), both importable from sys.path."""
    (tmp_path / "lazylib").mkdir()
    (tmp_path / "lazylib" / "__init__.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            _reaper = None

            async def _reap_forever():
                while True:
                    await asyncio.sleep(0.01)

            def connect():
                # As a pool does: its reaper starts lazily, with the first connection.
                global _reaper
                if _reaper is None:
                    _reaper = asyncio.get_running_loop().create_task(_reap_forever())
                return _reaper
            """
        )
    )
    info = tmp_path / "lazylib-1.0.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("lazylib/__init__.py,,\nlazylib-1.0.dist-info/RECORD,,\n")
    (tmp_path / "lambda_app.py").write_text("def here():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    appcode._installed_names.clear()
    appcode._app_file.clear()
    yield tmp_path
    sys.modules.pop("lazylib", None)
    appcode._installed_names.clear()
    appcode._app_file.clear()


def test_the_app_s_files_are_its_own_code(lambda_package):
    assert appcode.is_app_file(__file__)
    assert appcode.is_app_file(str(lambda_package / "lambda_app.py"))


def test_libraries_the_standard_library_and_holdfast_are_not(lambda_package):
    assert not appcode.is_app_file(asyncio.__file__)
    assert not appcode.is_app_file(json.__file__)
    assert not appcode.is_app_file(pytest.__file__)  # site-packages
    assert not appcode.is_app_file(adoption.__file__)
    assert not appcode.is_app_file("<frozen importlib._bootstrap>")
    assert not appcode.is_app_file("<string>")
    # Installed beside the app, as in a Lambda package: its RECORD names it.
    assert not appcode.is_app_file(str(lambda_package / "lazylib" / "__init__.py"))


def test_top_level_txt_names_a_distribution_s_packages_too(tmp_path, monkeypatch):
    (tmp_path / "vendored").mkdir()
    (tmp_path / "vendored" / "core.py").write_text("")
    info = tmp_path / "vendored_dist-2.0.dist-info"
    info.mkdir()
    (info / "top_level.txt").write_text("vendored\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    appcode._installed_names.clear()
    assert not appcode._is_app_file(str(tmp_path / "vendored" / "core.py"))
    assert appcode._is_app_file(str(tmp_path / "mine.py"))


def test_holdfast_s_demo_is_an_app(lambda_package):
    demo = os.path.join(os.path.dirname(appcode.__file__), "demo.py")
    assert appcode.is_app_file(demo)
    assert os.path.realpath(sysconfig.get_paths()["purelib"]) != os.path.dirname(demo)


def _app_that_starts_a_job():
    """``(app, job, finished)``: an app whose request starts a task that outlives its response,
    before the app's first await."""
    finished = []

    async def job():
        await asyncio.sleep(0.05)
        finished.append("job")

    async def app(scope, receive, send):
        if scope["type"] == "http":
            asyncio.create_task(job())  # noqa: RUF006
            await respond(send)

    return app, job, finished


def test_a_task_the_app_starts_is_drained_before_the_handler_returns(adapters):
    app, _, finished = _app_that_starts_a_job()
    handler = adapters(app)
    assert handler(EVENT, None)["body"] == "ok"
    assert finished == ["job"]
    assert handler.counts["drained"] == 1


def test_tasks_awaited_inside_the_request_cost_nothing(adapters):
    async def part():
        await asyncio.sleep(0)
        return 1

    async def app(scope, receive, send):
        if scope["type"] == "http":
            assert sum(await asyncio.gather(*(asyncio.create_task(part()) for _ in range(3)))) == 3
            await respond(send)

    handler = adapters(app)
    handler(EVENT, None)
    assert handler.counts["drained"] == 0  # ended before the response: nothing owed


def test_a_library_s_lazily_started_task_is_left_alone_unless_adopted(adapters, lambda_package):
    lazylib = importlib.import_module("lazylib")
    seen = {}

    async def app(scope, receive, send):
        if scope["type"] == "http":
            seen["reaper"] = lazylib.connect()
            await respond(send)

    handler = adapters(app)
    handler(EVENT, None)
    reaper = seen["reaper"]
    assert not reaper.done()  # still running, never waited for, never cancelled
    assert handler.counts == {"drained": 0, "failed": 0, "spilled": 0, "cancelled": 0, "overrun": 0}
    reaper.cancel()


def test_adopt_takes_in_a_library_task(adapters, lambda_package):
    lazylib = importlib.import_module("lazylib")

    async def finite():
        await asyncio.sleep(0.02)

    async def app(scope, receive, send):
        if scope["type"] == "http":
            lazylib._reaper = None
            reaper = lazylib.connect()
            reaper.cancel()  # the library's own: not adopted
            task = asyncio.get_running_loop().create_task(finite())
            assert holdfast.adopt(task) is task
            await respond(send)

    handler = adapters(app)
    handler(EVENT, None)
    assert handler.counts["drained"] == 1


def test_detach_keeps_the_app_s_own_task_out(adapters):
    seen = {}

    async def forever():
        await asyncio.sleep(3600)

    async def app(scope, receive, send):
        if scope["type"] == "http":
            seen["task"] = holdfast.detach(asyncio.create_task(forever()))
            await respond(send)

    handler = adapters(app)
    handler(EVENT, None)
    assert not seen["task"].done()
    assert handler.counts["drained"] == handler.counts["cancelled"] == 0
    seen["task"].cancel()


def test_adoption_can_be_turned_off(adapters, monkeypatch):
    seen = {}

    async def job():
        await asyncio.sleep(3600)

    async def app(scope, receive, send):
        if scope["type"] == "http":
            seen["task"] = asyncio.create_task(job())
            await respond(send)

    monkeypatch.setenv("HOLDFAST_ADOPT_TASKS", "false")
    handler = adapters(app)
    assert handler.adopt_tasks is False
    handler(EVENT, None)
    assert not seen["task"].done() and handler.counts["drained"] == 0
    seen["task"].cancel()
    assert adapters(app, adopt_tasks=True).adopt_tasks is True  # the argument wins


def test_tasks_started_in_lifespan_startup_are_not_adopted(adapters):
    seen = {}

    async def ticker():
        await asyncio.sleep(3600)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            seen["ticker"] = asyncio.create_task(ticker())
            await send({"type": "lifespan.startup.complete"})
            await receive()
            seen["ticker"].cancel()
            await send({"type": "lifespan.shutdown.complete"})
        else:
            await respond(send)

    handler = holdfast.Adapter(app, lifespan="on")
    try:
        handler(EVENT, None)
        assert not seen["ticker"].done()
        assert handler.counts["drained"] == handler.counts["cancelled"] == 0
    finally:
        handler.close(timeout=5)


def test_a_task_created_with_an_explicit_context_follows_that_context():
    loop = asyncio.new_event_loop()
    adoption.install(loop)
    work = PendingWork("r-ctx", loop)
    seen = []

    async def job():
        await asyncio.sleep(0)
        seen.append("ran")

    async def main():
        import contextvars

        from holdfast import pending

        token = pending.bind(work)
        context = contextvars.copy_context()
        pending.unbind(token)
        task = loop.create_task(job(), context=context)
        assert bool(work)  # adopted: the bound work was the explicit context's
        report = await work.drain(5)
        assert task.done()
        return report

    try:
        report = loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen == ["ran"] and report.drained == 1


def test_adopt_outside_a_request_is_an_error_and_detach_a_no_op():
    async def main():
        task = asyncio.create_task(asyncio.sleep(0))
        assert holdfast.detach(task) is task
        with pytest.raises(RuntimeError, match="outside a request"):
            holdfast.adopt(task)
        await task

    asyncio.run(main())


def test_sync_work_is_waited_for_past_the_drain_timeout_until_the_real_deadline():
    # The drain's timeout keeps a margin before the invocation's real deadline; a thread that
    # cannot be cancelled is waited for into it, so the environment is not reported idle.
    loop = asyncio.new_event_loop()
    release = threading.Event()
    work = PendingWork("r-grace", loop, margin=5.0)
    work.defer(release.wait)

    async def main():
        # Opened once the drain's own timeout has passed, well inside the grace.
        loop.call_later(0.2, release.set)
        return await work.drain(0.05)

    try:
        report = loop.run_until_complete(main())
    finally:
        loop.close()
    assert (report.drained, report.overrun, report.cancelled) == (1, [], [])


def test_sync_work_past_the_real_deadline_is_an_overrun(caplog):
    loop = asyncio.new_event_loop()
    release = threading.Event()
    work = PendingWork("r-over", loop, margin=0.25)
    work.defer(release.wait)
    try:
        report = loop.run_until_complete(work.drain(0.01))
        assert report.overrun == ["threading.Event.wait"] and report.cancelled == []
        assert "overruns" in caplog.text and "r-over" in caplog.text
    finally:
        release.set()
        loop.close()


def test_threads_the_app_started_are_named_library_threads_are_not(caplog):
    loop = asyncio.new_event_loop()
    stop = threading.Event()
    before = threading.Thread(target=lambda: stop.wait(), name="before")
    before.start()
    work = PendingWork("r-threads", loop)

    def app_worker():
        stop.wait()

    class AppThread(threading.Thread):
        def run(self):
            stop.wait()

    started = [
        threading.Thread(target=app_worker, name="app-target"),
        AppThread(name="app-subclass"),
        threading.Thread(target=stop.wait, name="library-target"),  # threading's own code
    ]
    for thread in started:
        thread.start()
    try:
        assert sorted(work.name_threads_left()) == ["app-subclass", "app-target"]
        assert "r-threads" in caplog.text and "test_adoption_rule.py:" in caplog.text
    finally:
        stop.set()
        for thread in [before, *started]:
            thread.join()
        assert PendingWork("r-none", loop).name_threads_left() == []  # all ended
        loop.close()


def test_a_task_factory_the_app_installs_makes_the_request_s_own_task_too(adapters):
    made = []

    def factory(loop, coro, **options):
        made.append(getattr(coro, "__qualname__", None))
        return asyncio.Task(coro, loop=loop, **options)

    async def app(scope, receive, send):
        await respond(send)

    handler = adapters(app)
    handler.engine.loop.set_task_factory(factory)  # as an app's instrumentation does
    assert handler(EVENT, None)["statusCode"] == 200
    assert made.count(app.__qualname__) == 1


def _begin_on_the_loop(handler, event):
    """What an async host does: begin on the adapter's running loop, await the outcome,
    hand it over, drain. Returns whether the outcome was ready as begin() returned."""

    async def host():
        await handler.startup()  # as every host does at init
        invocation = handler.begin(event, None)
        ready_at_once = invocation.ready()
        outcome = await invocation.outcome()
        invocation.handed_over()
        await invocation.drain(5)
        return ready_at_once, outcome

    return handler.engine.loop.run_until_complete(host())


def test_an_async_host_s_plain_endpoint_has_answered_as_begin_returns_on_312(adapters):
    async def app(scope, receive, send):
        await respond(send)

    ready_at_once, outcome = _begin_on_the_loop(adapters(app), EVENT)
    assert outcome.payload["body"] == "ok"
    # 3.12+ starts the request's task eagerly on a running loop: no turn of the loop to wait.
    assert ready_at_once is (sys.version_info >= (3, 12))


def test_a_task_started_before_the_app_s_first_await_is_adopted_on_an_async_host(adapters):
    app, _, finished = _app_that_starts_a_job()  # in the task's first step: eager on 3.12+
    handler = adapters(app)
    _, outcome = _begin_on_the_loop(handler, EVENT)
    assert outcome.payload["body"] == "ok"
    assert finished == ["job"]
    assert handler.counts["drained"] == 1


def test_the_request_s_own_task_is_never_its_after_response_work_on_an_async_host(adapters):
    """The app's task is made while its pending work already adopts (eager start): it must not
    adopt itself, or every request would wait for itself in its drain."""

    async def app(scope, receive, send):
        await respond(send)

    handler = adapters(app)
    for _ in range(3):
        _begin_on_the_loop(handler, EVENT)
    assert handler.counts["drained"] == 0


def test_a_factory_the_app_chains_in_front_of_holdfast_s_keeps_adoption_on(adapters):
    """Instrumentation often wraps the factory it finds: holdfast's then still sees every task,
    so what the request starts is adopted, and the request's own task (made through the chain
    before adoption is switched on) is not."""
    app, job, finished = _app_that_starts_a_job()
    made = []
    handler = adapters(app)
    loop = handler.engine.loop
    holdfast_s = loop.get_task_factory()

    def instrumented(loop, coro, **options):
        made.append(getattr(coro, "__qualname__", None))
        return holdfast_s(loop, coro, **options)

    loop.set_task_factory(instrumented)
    assert handler(EVENT, None)["body"] == "ok"
    assert app.__qualname__ in made and job.__qualname__ in made  # both through the chain
    assert finished == ["job"]
    assert handler.counts["drained"] == 1  # the job, not the request's own task


def test_a_task_class_from_before_eager_start_still_serves_on_an_async_host(adapters, monkeypatch):
    """A library may put its own Task class in asyncio's place, written before 3.12's
    ``eager_start`` (the loop never passes it): requests still run, started as the loop would
    start them."""

    class OlderTask(asyncio.Task):  # type: ignore[type-arg]
        def __init__(self, coro, *, loop=None, name=None, context=None):
            super().__init__(coro, loop=loop, name=name, context=context)

    async def app(scope, receive, send):
        await respond(send)

    handler = adapters(app)
    monkeypatch.setattr(asyncio.tasks, "Task", OlderTask)
    ready_at_once, outcome = _begin_on_the_loop(handler, EVENT)
    assert outcome.payload["body"] == "ok"
    assert ready_at_once is False  # not eager: its first step waited for a turn of the loop
