"""An app traced by the library named in HOLDFAST_TEST_TELEMETRY (opentelemetry, ddtrace,
sentry), exporting to the stand-in at HOLDFAST_TEST_COLLECTOR. Every request's trace or event
carries its request id. No holdfast telemetry code: only `holdfast.Adapter(app)`."""

import os

from fastapi import FastAPI, Request

import holdfast

LIBRARY = os.environ["HOLDFAST_TEST_TELEMETRY"]
COLLECTOR = os.environ["HOLDFAST_TEST_COLLECTOR"]

if LIBRARY == "ddtrace":
    import ddtrace

    ddtrace.patch(fastapi=True)
elif LIBRARY == "opentelemetry":
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    # The batch processor exports on its timer (the default 5 s): before the freeze, only a
    # flush gets a span out.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{COLLECTOR}/v1/traces")))
    trace.set_tracer_provider(provider)
elif LIBRARY == "sentry":
    import sentry_sdk

    sentry_sdk.init(dsn=COLLECTOR.replace("http://", "http://public@") + "/1")

app = FastAPI()


@app.get("/traced")
async def traced(request: Request) -> dict:
    request_id = request.scope["aws.context"].aws_request_id
    if LIBRARY == "ddtrace":
        span = ddtrace.tracer.current_root_span()
        assert span is not None  # the FastAPI integration traces the request
        span.set_tag("request_id", request_id)
    elif LIBRARY == "opentelemetry":
        with trace.get_tracer("traced_apps").start_as_current_span(f"request {request_id}"):
            pass
    elif LIBRARY == "sentry":
        sentry_sdk.capture_message(f"request {request_id}")
    return {"request_id": request_id}


handler = holdfast.Adapter(app)
