"""One HTTP stand-in on 127.0.0.1 for the telemetry back ends: a Datadog agent
(`/v0.4|v0.5/traces`, `/info`), an OTLP/HTTP collector (`/v1/traces`) and a Sentry ingest
(`/api/<project>/envelope/`). It records what arrives and when (time.monotonic(), one clock for
every process on Linux, so it compares with the emulator's freeze log)."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Arrival:
    at: float
    path: str
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        self._take()

    def do_PUT(self) -> None:
        self._take()

    def do_GET(self) -> None:
        self._answer(b'{"endpoints": ["/v0.4/traces", "/v0.5/traces"]}', "application/json")

    def _take(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else self._chunked()
        encoding = (self.headers.get("content-encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli

            body = brotli.decompress(body)
        self.server.take(Arrival(time.monotonic(), self.path, body))
        if self.path.startswith("/v1/"):
            self._answer(b"", "application/x-protobuf")  # an empty Export*ServiceResponse
        else:
            self._answer(b'{"rate_by_service": {}}', "application/json")

    def _chunked(self) -> bytes:
        if "chunked" not in (self.headers.get("transfer-encoding") or "").lower():
            return b""
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Collector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def take(self, arrival: Arrival) -> None:
        with self._lock:
            self.arrivals.append(arrival)

    def first_with(self, marker: str) -> Arrival | None:
        """The first arrival whose body carries ``marker`` (a request id)."""
        needle = marker.encode()
        with self._lock:
            return next((a for a in self.arrivals if needle in a.body), None)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


#: The environment each library's traced app needs (``{collector}``: the stand-in's URL). An agent
#: at a URL (a sidecar, or the agent extension) makes ddtrace buffer its traces and send them from
#: a background worker, as off Lambda; nothing else of ddtrace's talks.
LIBRARY_ENV: dict[str, dict[str, str]] = {
    "opentelemetry": {},
    "ddtrace": {
        "DD_TRACE_AGENT_URL": "{collector}",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_REMOTE_CONFIGURATION_ENABLED": "false",
        "DD_TRACE_STARTUP_LOGS": "false",
        "DD_DATA_STREAMS_ENABLED": "false",
        "DD_TRACE_STATS_COMPUTATION_ENABLED": "false",
    },
    "sentry": {},
}


def library_env(library: str, collector: Collector) -> dict[str, str]:
    """The environment of tests/telemetry/traced_apps.py for ``library``, sending to
    ``collector``."""
    env = {"HOLDFAST_TEST_TELEMETRY": library, "HOLDFAST_TEST_COLLECTOR": collector.url}
    return env | {
        name: value.format(collector=collector.url) for name, value in LIBRARY_ENV[library].items()
    }
