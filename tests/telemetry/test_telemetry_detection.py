"""Which telemetry libraries count as in use, and the flush each gets. In a fresh interpreter:
tracer providers, ddtrace's patches and sentry_sdk's client are process-wide."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    from holdfast import telemetry
    from holdfast.pending import PendingWork

    def flushes():
        work = PendingWork("r-1", asyncio.new_event_loop())
        telemetry.flush_in_use(work)
        return [getattr(fn, "__qualname__", repr(fn)) for fn in work._final]

    seen = {"nothing": flushes()}

    import ddtrace, sentry_sdk, opentelemetry.sdk.trace
    seen["imported only"] = flushes()

    from opentelemetry import trace
    trace.set_tracer_provider(opentelemetry.sdk.trace.TracerProvider())
    seen["opentelemetry"] = flushes()

    ddtrace.patch(fastapi=True)
    seen["ddtrace patched"] = flushes()

    flushed = []

    class Transport(sentry_sdk.transport.Transport):
        def capture_envelope(self, envelope):
            pass

        def flush(self, timeout, callback=None):
            flushed.append(timeout)

    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", transport=Transport)
    seen["sentry"] = flushes()

    # Through the adapter: the flushes run after the response, the last of its work.
    import holdfast

    order = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            holdfast.after_response(lambda: order.append("work"))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    event = {"version": "2.0", "rawPath": "/", "rawQueryString": "", "headers": {},
             "requestContext": {"http": {"method": "GET", "sourceIp": "192.0.2.1"}}}
    handler = holdfast.Adapter(app, lifespan="off")
    Transport.flush = lambda self, timeout, callback=None: order.append("sentry flush")
    handler(event, None)
    seen["order"] = list(order)
    off = holdfast.Adapter(app, lifespan="off", flush_telemetry=False)
    order.clear()
    off(event, None)
    seen["off"] = order
    print(json.dumps(seen))
    """
)


def test_the_libraries_in_use_are_flushed_last_and_only_they():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["nothing"] == []
    # Imported is not in use: no provider set, nothing patched, no client initialised.
    assert seen["imported only"] == []
    assert seen["opentelemetry"] == ["opentelemetry_flush"]
    assert seen["ddtrace patched"] == ["opentelemetry_flush", "ddtrace_flush"]
    assert seen["sentry"] == ["opentelemetry_flush", "ddtrace_flush", "sentry_flush"]
    assert seen["order"] == ["work", "sentry flush"]
    assert seen["off"] == ["work"]
