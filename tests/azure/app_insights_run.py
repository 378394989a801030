"""One request through holdfast.azure with Application Insights' OpenTelemetry exporter set up the
way `azure-monitor-opentelemetry` does it (a global TracerProvider, a batch processor), against a
local stand-in of the ingestion endpoint. Run in its own interpreter (the provider is global);
prints the order of events as JSON."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from worker_standin import StreamingWorker

import holdfast
import holdfast.azure

events: list[str] = []
lock = threading.Lock()


def note(event: str) -> None:
    with lock:
        events.append(event)


class Ingestion(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.endswith("/v2.1/track") and b"RemoteDependency" in body + b"Request":
            note(f"ingested {self.path}")
        answer = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingestion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
    exporter = AzureMonitorTraceExporter(
        connection_string=(
            f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={endpoint}"
        ),
        disable_offline_storage=True,
    )
    provider = TracerProvider()
    # A long schedule: without holdfast's flush the span would wait for the next timer tick.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("shop")

    api = FastAPI()

    @api.get("/order")
    async def order() -> dict:
        with tracer.start_as_current_span("charge card", kind=trace.SpanKind.CLIENT):
            pass
        return {"ok": True}

    app = holdfast.azure.FunctionApp(holdfast.Adapter(api), streaming=True)

    async def call() -> int:
        async with StreamingWorker() as worker:
            worker.on_response = lambda: note("client has the response")
            worker.on_end = lambda: note("invocation ended")
            return (await worker.call(app, "GET", "/api/order")).status

    status = asyncio.run(call())
    print(json.dumps({"status": status, "events": events}))


if __name__ == "__main__":
    main()
