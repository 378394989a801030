"""Telemetry flushes run as the last after-response work, after spans closed by middleware."""

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import holdfast
from holdfast.telemetry import FlushAfterResponse, flush_after_response, opentelemetry_flush

EVENT = {
    "version": "2.0",
    "rawPath": "/",
    "rawQueryString": "",
    "headers": {"host": "example.lambda-url.us-east-1.on.aws"},
    "requestContext": {"http": {"method": "GET", "sourceIp": "192.0.2.1"}, "requestId": "r-1"},
}


@pytest.fixture
def tracing():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    # A batch processor exports on a timer: before a freeze, only an explicit flush gets it out.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    yield provider, exporter
    provider.shutdown()


def _traced_app(provider, *, background_ms=0):
    tracer = provider.get_tracer("test")

    async def work():
        await asyncio.sleep(background_ms / 1000)

    async def endpoint(request):
        return PlainTextResponse("ok", background=BackgroundTask(work))

    inner = Starlette(routes=[Route("/", endpoint)])

    async def tracing_middleware(scope, receive, send):
        # Like OpenTelemetry's ASGI middleware: the span ends when the app's coroutine returns,
        # which is after the background tasks.
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        with tracer.start_as_current_span("request"):
            await inner(scope, receive, send)

    return tracing_middleware


def test_the_flush_exports_the_span_closed_after_background_work(tracing):
    provider, exporter = tracing
    app = FlushAfterResponse(_traced_app(provider, background_ms=50), opentelemetry_flush(provider))
    handler = holdfast.Adapter(app, lifespan="off")
    try:
        assert handler(EVENT, None)["statusCode"] == 200
        assert [span.name for span in exporter.get_finished_spans()] == ["request"]
    finally:
        handler.close()


def test_without_the_flush_the_span_stays_in_the_batch(tracing):
    provider, exporter = tracing
    handler = holdfast.Adapter(_traced_app(provider), lifespan="off")
    try:
        assert handler(EVENT, None)["statusCode"] == 200
        assert exporter.get_finished_spans() == ()
    finally:
        handler.close()


def test_flush_after_response_outside_a_request_is_an_error():
    with pytest.raises(RuntimeError, match="outside a request"):
        flush_after_response(lambda: None)


def test_on_response_sent_runs_after_the_last_chunk():
    order = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        holdfast.on_response_sent(lambda: order.append("callback"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        order.append("last chunk")
        await send({"type": "http.response.body", "body": b"done"})

    handler = holdfast.Adapter(app, lifespan="off")
    try:
        assert handler(EVENT, None)["body"] == "done"
        assert order == ["last chunk", "callback"]
        assert handler.counts["drained"] == 1
    finally:
        handler.close()
