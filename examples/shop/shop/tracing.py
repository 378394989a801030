"""Tracing with OpenTelemetry, flushed after each response and before Lambda's freeze.

Spans are batched and exported only when flushed (the batch timer rarely fires on Lambda, where
the environment is frozen between requests). `holdfast.FlushAfterResponse` runs the
flush as the last after-response step, once the request span — which covers the BackgroundTasks
too — has ended. The exporter here writes JSON lines to a file; a real service would use OTLP.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from holdfast import FlushAfterResponse, opentelemetry_flush

from .logs import request_id


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            for span in spans:
                file.write(json.dumps(_as_dict(span)) + "\n")
        return SpanExportResult.SUCCESS


def _as_dict(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}" if context else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
    }


def tracer_provider(spans: Path) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    # A minute between timed exports: on Lambda only the flush after each response exports.
    provider.add_span_processor(
        BatchSpanProcessor(JsonLinesExporter(spans), schedule_delay_millis=60_000)
    )
    return provider


class TracingMiddleware:
    """One server span per HTTP request, ended when the app is done with it (background work
    included), tagged with the Lambda request id."""

    def __init__(self, app: Any, provider: TracerProvider) -> None:
        self.app = app
        self.tracer = provider.get_tracer("shop")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = f"{scope['method']} {scope['path']}"
        with self.tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
            span.set_attribute("faas.invocation_id", request_id.get() or "")

            async def traced_send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, traced_send)


def instrument(app: Any, spans: Path) -> TracerProvider:
    """Trace ``app`` (a FastAPI/Starlette app) and flush the spans after every response."""
    provider = tracer_provider(spans)
    app.add_middleware(TracingMiddleware, provider)
    app.add_middleware(FlushAfterResponse, opentelemetry_flush(provider))
    return provider
