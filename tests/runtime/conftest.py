"""Fixtures of the runtime tests: a clean environment and ``serve``, which runs a holdfast
``Runtime`` in-process against a fake Runtime API on the loop the runtime would use."""

from __future__ import annotations

import asyncio

import pytest
import runtime_apps
from runtime_fake import FakeRuntimeAPI

from holdfast.engine import Engine
from holdfast.hosts.custom import CustomRuntime as Runtime
from holdfast.runtime.context import FunctionInfo
from holdfast.runtime.loader import Target

FUNCTION = FunctionInfo("my-function", "$LATEST", "512", "/aws/lambda/my-function", "stream")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in (
        "HOLDFAST_ERROR_STATUS_CODES",
        "AWS_LWA_ERROR_STATUS_CODES",
        "HOLDFAST_BASE_PATH",
        "AWS_LWA_REMOVE_BASE_PATH",
        "HOLDFAST_INVOKE_MODE",
        "AWS_LWA_INVOKE_MODE",
        "AWS_LAMBDA_MAX_CONCURRENCY",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "_X_AMZN_TRACE_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    runtime_apps.log.clear()


@pytest.fixture
def serve():
    """``serve(target, scenario, **runtime_options)``: run ``await scenario(fake, task)`` while
    a Runtime serves ``target``; the runtime is cancelled afterwards unless it ended."""
    engines = []

    def run(target: Target, scenario, **options):
        engine = target.adapter.engine if target.adapter is not None else Engine()
        engines.append(engine)

        async def main():
            fake = FakeRuntimeAPI()
            address = await fake.start()
            runtime = Runtime(target, address, function=FUNCTION, **options)
            task = asyncio.get_running_loop().create_task(runtime.run())
            fake.watch(task)
            try:
                result = await scenario(fake, task)
                if not task.done():  # let the last invocation drain its pending work
                    await fake.wait_for(lambda: fake.idle(options.get("concurrency", 1)))
                return result
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await fake.close()
                if target.adapter is not None:
                    await target.adapter.shutdown(5)

        return engine.run(main())

    yield run
    for engine in engines:
        if engine is not None and not engine.loop.is_closed():
            engine.close()
