"""Telemetry without code: with OpenTelemetry's SDK, ddtrace or sentry_sdk in use, each
request's trace or event reaches its (stand-in) back end before its invocation freezes, after
the response, under `holdfast run` and unmodified awslambdaric with `holdfast.Adapter(app)`."""

import http.client
import json
import sys
from pathlib import Path

import pytest
from standins import LIBRARY_ENV, Collector, library_env

from holdfast.emulator import ThreadedEmulator

HERE = Path(__file__).parent
HOSTS = {
    "awslambdaric": [sys.executable, "-m", "awslambdaric", "traced_apps.handler"],
    "holdfast-run": [sys.executable, "-m", "holdfast", "run", "traced_apps:app"],
}
# Sentry's transport sends from its worker thread as soon as it can (the flush waits for that
# queue to empty); the others export on a timer, so what arrives comes from the flush.
BUFFERED_ON_A_TIMER = ("ddtrace", "opentelemetry")


def get(url: str, path: str) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("library", sorted(LIBRARY_ENV))
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_every_request_s_telemetry_arrives_before_its_freeze(host, library):
    with Collector() as collector:
        env = library_env(library, collector)
        emulator = ThreadedEmulator(HOSTS[host], cwd=str(HERE), env=env, timeout=30)
        emulator.start()
        try:
            answers = [get(emulator.url, "/traced") for _ in range(4)]
            emulator.wait_idle(timeout=60)
            arrivals = {
                body["request_id"]: collector.first_with(body["request_id"]) for _, body in answers
            }
            freezes = {entry.request_id: entry for entry in emulator.freeze_log}
        finally:
            emulator.close()

    for status, body in answers:
        request_id = body["request_id"]
        assert status == 200
        arrival = arrivals[request_id]
        freeze = freezes[request_id]
        assert arrival is not None, (library, request_id, [a.path for a in collector.arrivals])
        assert freeze.outcome == "frozen"
        # Sent inside its own invocation, before the environment froze ...
        assert arrival.at < freeze.frozen_at, (library, request_id)
        if host == "holdfast-run" and library in BUFFERED_ON_A_TIMER:
            # ... and only after the response had gone out: the flush did not delay it.
            assert freeze.response_sent_at < arrival.at, (library, request_id)
