"""The Telemetry API: a user's extension subscribes and gets Lambda's events, in order, batched.

The extension (`telemetry_ext.py`) is a separate process with its own HTTP listener, exactly
what a user would write; it holds each invocation until `platform.runtimeDone` for it arrives,
so the environment can only freeze if the event was delivered while the extension held it.
"""

import asyncio
import http.client
import json
import re
import socket

import pytest
from emulator_support import call, reporter, ric, wait_until


def _events(batches):
    return [event for batch in batches for event in batch]


def _index(events, kind, request_id=None, record=None):
    for index, event in enumerate(events):
        if event["type"] != kind:
            continue
        if request_id is not None and event["record"].get("requestId") != request_id:
            continue
        if record is not None and event["record"] != record:
            continue
        return index
    raise AssertionError(f"no {kind} {request_id or record or ''} in {[e['type'] for e in events]}")


def test_extension_receives_lambda_events_in_order(emulators, telemetry_extension):
    emu = emulators(ric("shout"), **telemetry_extension())
    first = emu.invoke({"lines": 3})
    second = emu.invoke({"lines": 2})
    assert first.ok and second.ok
    emu.wait_idle(60)
    records = emu.freeze_log
    emu.close()
    batches, holds = telemetry_extension.read()
    events = _events(batches)

    # Each invocation was held until its platform.runtimeDone arrived, and still froze.
    assert holds == [
        {"held": first.request_id, "runtime_done_arrived": True},
        {"held": second.request_id, "runtime_done_arrived": True},
    ]
    assert [r.outcome for r in records] == ["frozen", "frozen"]

    # Init: initStart, the extension's registration and subscription, its own log line,
    # then the runtime's initRuntimeDone and the initReport.
    init_start = _index(events, "platform.initStart")
    assert events[init_start]["record"]["initializationType"] == "on-demand"
    assert events[init_start]["record"]["phase"] == "init"
    registered = _index(events, "platform.extension")
    assert events[registered]["record"]["name"] == "telemetry-extension"
    assert events[registered]["record"]["events"] == ["INVOKE", "SHUTDOWN"]
    subscribed = _index(events, "platform.telemetrySubscription")
    assert events[subscribed]["record"]["types"] == ["extension", "function", "platform"]
    assert any(e["type"] == "extension" and "listening on" in e["record"] for e in events)
    runtime_done = _index(events, "platform.initRuntimeDone")
    report = _index(events, "platform.initReport")
    assert init_start < registered < subscribed < runtime_done < report
    assert events[report]["record"]["status"] == "success"
    assert events[report]["record"]["metrics"]["durationMs"] > 0

    # Invocations: start, the function's lines, runtimeDone, report — each in its order.
    previous = report
    for result, lines in ((first, 3), (second, 2)):
        rid = result.request_id
        start = _index(events, "platform.start", rid)
        printed = [_index(events, "function", record=f"line {n} of {rid}") for n in range(lines)]
        done = _index(events, "platform.runtimeDone", rid)
        final = _index(events, "platform.report", rid)
        assert previous < start < printed[0] < printed[-1] < done < final
        assert printed == sorted(printed)
        done_record = events[done]["record"]
        assert done_record["status"] == "success"
        assert done_record["metrics"]["producedBytes"] == len(result.payload)
        assert {s["name"] for s in done_record["spans"]} == {
            "responseLatency",
            "responseDuration",
            "runtimeOverhead",
        }
        report_record = events[final]["record"]
        assert report_record["status"] == "success"
        assert report_record["metrics"]["memorySizeMB"] == 512
        assert report_record["tracing"]["value"] == events[start]["record"]["tracing"]["value"]
        previous = final
    assert (
        "initDurationMs"
        in events[_index(events, "platform.report", first.request_id)]["record"]["metrics"]
    )
    for event in events:
        assert event["time"].endswith("Z") and "T" in event["time"]


def test_batches_hold_at_most_max_items(emulators, telemetry_extension):
    buffering = json.dumps({"maxItems": 1000, "timeoutMs": 30000})
    emu = emulators(
        ric("shout"), **telemetry_extension(TELEMETRY_BUFFERING=buffering, TELEMETRY_HOLD="0")
    )
    result = emu.invoke({"lines": 1500})
    assert result.ok
    # The first 1000 events are due as soon as they are buffered (long before the 30 s timeout),
    # but nothing holds the invocation: the batch may reach the listener only after the thaw.
    emu.wait_idle(60)
    emu.close()  # thawed; the rest is flushed at shutdown
    batches, _ = telemetry_extension.read()
    assert len(batches[0]) == 1000
    assert all(len(batch) <= 1000 for batch in batches)
    lines = [e["record"] for e in _events(batches) if e["type"] == "function"]
    assert lines == [f"line {n} of {result.request_id}" for n in range(1500)]


def test_function_error_status(emulators, telemetry_extension):
    emu = emulators(ric("fail"), **telemetry_extension(TELEMETRY_HOLD="0"))
    failed = emu.invoke({})
    assert failed.error_type == "ValueError"
    emu.wait_idle(60)
    emu.close()
    events = _events(telemetry_extension.read()[0])
    done = events[_index(events, "platform.runtimeDone", failed.request_id)]["record"]
    assert done["status"] == "error"
    report = events[_index(events, "platform.report", failed.request_id)]["record"]
    assert report["status"] == "error"


def test_timeout_is_reported_before_the_reset(emulators, telemetry_extension):
    emu = emulators(ric("sleep"), timeout=1, **telemetry_extension())
    result = emu.invoke({"seconds": 30})
    assert result.error_type == "Sandbox.Timedout"
    emu.wait_idle(60)
    emu.close()
    events = _events(telemetry_extension.read()[0])
    done = events[_index(events, "platform.runtimeDone", result.request_id)]["record"]
    assert done["status"] == "timeout"
    assert done["errorType"] == "Sandbox.Timedout"
    report = events[_index(events, "platform.report", result.request_id)]["record"]
    assert report["status"] == "timeout"


# -- subscription requests answered as Lambda answers them ---------------------------------------


GOOD = {
    "schemaVersion": "2022-12-13",
    "types": ["platform", "function"],
    "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
    "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/t"},
}


@pytest.mark.parametrize(
    "change",
    [
        {"schemaVersion": "2021-01-01"},
        {"types": []},
        {"types": ["platform", "network"]},
        {"buffering": {"maxItems": 10}},
        {"buffering": {"timeoutMs": 10}},
        {"buffering": {"maxBytes": 1024}},
        {"destination": {"protocol": "HTTP", "URI": "http://example.com:8080/"}},
        {"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain/"}},
        {"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9001/"}},
        {"destination": {"protocol": "UDP", "URI": "sandbox.localdomain:8080"}},
        {"destination": None},
    ],
)
def test_bad_subscriptions_get_validation_errors(emulators, tmp_path, change):
    address = _manual_environment(emulators, tmp_path)
    identifier = _register(address)
    status, _, body = call(
        address,
        "PUT",
        "/2022-07-01/telemetry",
        json.dumps({**GOOD, **change}),
        {"Lambda-Extension-Identifier": identifier},
    )
    assert status == 400
    assert json.loads(body)["errorType"] == "ValidationError"


def test_only_registered_extensions_may_subscribe(emulators, tmp_path):
    address = _manual_environment(emulators, tmp_path)
    status, _, body = call(address, "PUT", "/2022-07-01/telemetry", json.dumps(GOOD))
    assert (status, json.loads(body)["errorType"]) == (403, "Extension.MissingExtensionIdentifier")
    identifier = _register(address)
    headers = {"Lambda-Extension-Identifier": identifier}
    status, _, body = call(address, "PUT", "/2022-07-01/telemetry", json.dumps(GOOD), headers)
    assert (status, json.loads(body)) == (200, "OK")


def _manual_environment(emulators, tmp_path):
    """An environment whose "runtime" only reports its Runtime API address (the test plays it)."""
    address_file = tmp_path / "address"
    emu = emulators(reporter(address_file), init_timeout=30)
    emu.submit(emu.emulator.invoke({}))  # starts the environment; never answered
    wait_until(lambda: address_file.exists() and address_file.read_text(), "the runtime started")
    return address_file.read_text()


def _register(address):
    connection = http.client.HTTPConnection(address)
    connection.request(
        "POST",
        "/2020-01-01/extension/register",
        body=json.dumps({"events": ["INVOKE"]}),
        headers={"Lambda-Extension-Name": "internal-telemetry"},
    )
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    return response.getheader("Lambda-Extension-Identifier")


def test_tcp_destination_gets_ndjson(emulators, telemetry_extension):
    emu = emulators(ric("shout"), **telemetry_extension(TELEMETRY_PROTOCOL="TCP"))
    result = emu.invoke({"lines": 2})
    emu.wait_idle(60)
    emu.close()
    batches, holds = telemetry_extension.read()
    assert holds == [{"held": result.request_id, "runtime_done_arrived": True}]
    events = _events(batches)
    start = _index(events, "platform.start", result.request_id)
    line = _index(events, "function", record=f"line 1 of {result.request_id}")
    done = _index(events, "platform.runtimeDone", result.request_id)
    assert start < line < done < _index(events, "platform.report", result.request_id)


def test_internal_extension_ends_invocations_on_runtime_done(emulators, tmp_path):
    """An extension inside the runtime process (as holdfast's is) learns from runtimeDone that
    the runtime is finished with an invocation, so nothing waits for the timeout."""
    log = tmp_path / "ended.log"
    emu = emulators(ric("telemetry_internal.handler"), timeout=15, env={"EXT_LOG": str(log)})
    results = [emu.invoke({}) for _ in range(3)]
    assert all(result.ok for result in results)
    emu.wait_idle(60)
    ended = [json.loads(line) for line in log.read_text().splitlines()]
    assert ended == [{"ended": r.request_id, "runtime_done_arrived": True} for r in results]
    assert [r.outcome for r in emu.freeze_log] == ["frozen"] * 3
    assert [report.status for report in emu.reports] == [None] * 3


def test_managed_instances_emit_runtime_done_when_the_result_is_posted(
    emulators, telemetry_extension
):
    emu = emulators(ric("shout"), max_concurrency=2, **telemetry_extension())
    results = [emu.invoke({"lines": 1}) for _ in range(2)]
    emu.wait_idle(60)
    emu.close()
    batches, holds = telemetry_extension.read()
    assert holds == [{"held": r.request_id, "runtime_done_arrived": True} for r in results]
    events = _events(batches)
    init = events[_index(events, "platform.initStart")]["record"]
    assert init["initializationType"] == "lambda-managed-instances"
    for result in results:
        rid = result.request_id
        line = _index(events, "function", record=f"line 0 of {rid}")
        done = _index(events, "platform.runtimeDone", rid)
        assert _index(events, "platform.start", rid) < line < done
        assert done < _index(events, "platform.report", rid)
        assert events[done]["record"]["status"] == "success"


def test_a_full_buffer_drops_events_and_says_so_with_logs_dropped():
    """A listener that is away: the subscriber's buffer stops at its bound, later events are
    counted, not kept, and once deliveries resume `platform.logsDropped` says how many."""
    from holdfast.emulator.telemetry import BACKLOG_BATCHES, TelemetryHub, parse_subscription

    async def main():
        received = []
        got_drop_notice = asyncio.Event()

        async def listener(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head)[1])
            batch = json.loads(await reader.readexactly(length))
            received.extend(batch)
            if any(e["type"] == "platform.logsDropped" for e in batch):
                got_drop_notice.set()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        subscription = parse_subscription(
            json.dumps(
                {
                    "schemaVersion": "2022-12-13",
                    "types": ["platform", "function"],
                    "buffering": {"maxItems": 10000, "maxBytes": 262144, "timeoutMs": 25},
                    "destination": {"protocol": "HTTP", "URI": f"http://0.0.0.0:{port}/"},
                }
            ).encode()
        )
        hub = TelemetryHub()
        hub.init_done()
        hub.subscribe("ext", subscription)
        line = "x" * 1000
        total = BACKLOG_BATCHES * 262144 // 1000 + 500  # more than the buffer holds
        for _ in range(total):
            hub.emit("function", line)
        # Nobody listens yet: deliveries fail and are retried; the listener comes up.
        server = await asyncio.start_server(listener, "127.0.0.1", port)
        try:
            await asyncio.wait_for(got_drop_notice.wait(), 60)
            await asyncio.wait_for(hub.flush(), 60)
        finally:
            server.close()
            await hub.close()
        lines = [e for e in received if e["type"] == "function"]
        notice = next(e for e in received if e["type"] == "platform.logsDropped")["record"]
        assert 0 < len(lines) < total
        assert notice["droppedRecords"] == total - len(lines)
        assert notice["droppedBytes"] > 0 and "slower" in notice["reason"]

    asyncio.run(main())
