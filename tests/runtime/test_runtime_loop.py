"""The runtime loop against a fake Runtime API: what is posted, in which order, on which
connection: buffered and streamed responses, function errors, plain handlers, concurrency."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import pytest
import runtime_apps

import holdfast
from holdfast.runtime.loader import Target
from lambda_events import http_event

pytestmark = pytest.mark.timeout(30)

EVENTS = Path(__file__).parent.parent / "fixtures" / "events"
SQS = json.loads((EVENTS / "sqs-receive-message.json").read_text())


def app_target(app=runtime_apps.app, **options) -> Target:
    return Target(adapter=holdfast.Adapter(app, **options))


def body_of(result) -> dict:
    response = result.json()
    return json.loads(response["body"])


def split_stream(body: bytes) -> tuple[dict, bytes]:
    prelude, separator, rest = body.partition(b"\x00" * 8)
    assert separator, "no 8-NUL separator after the prelude"
    return json.loads(prelude), rest


# -- buffered HTTP ---------------------------------------------------------------------------------
def test_buffered_response_is_posted_and_the_runtime_asks_for_the_next_event(serve):
    async def scenario(fake, task):
        request_id = fake.add_event(http_event("/hello"))
        result = await fake.wait_result(request_id)
        await fake.wait_for(lambda: fake.nexts() == 2)
        return result, fake.requests

    result, requests = serve(app_target(), scenario)
    assert result.path.endswith("/response")
    assert result.headers["content-type"] == "application/json"
    response = result.json()
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"message": "hello"}
    runtime_api = [r for r in requests if r.path.startswith("/2018-06-01/runtime/")]
    assert len({r.connection for r in runtime_api}) == 1  # one kept-alive connection


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streamed"])
def test_response_goes_out_before_background_work_and_next_only_after_it(serve, streaming):
    target = app_target()
    seen = []  # (request the Runtime API saw begin, what the app had done at that moment)

    async def scenario(fake, task):
        fake.observers.append(lambda entry: seen.append((entry, list(runtime_apps.log))))
        request_id = fake.add_event(http_event("/background"))
        await fake.wait_result(request_id)
        # The background task starts once the response is out, and is blocked on the gate: the
        # caller has its answer regardless.
        await fake.wait_for(lambda: runtime_apps.log[-1:] == ["background started"])
        assert fake.nexts() == 1
        runtime_apps.app.state.gate.set()
        await fake.wait_for(lambda: fake.nexts() == 2)

    serve(target, scenario, streaming=streaming)
    requests = [
        (entry, app_log) for entry, app_log in seen if entry.startswith(("GET /2018", "POST /2018"))
    ]
    (first_next, _), (response, at_response), (second_next, at_next) = requests
    assert first_next.endswith("/next") and second_next.endswith("/next")
    assert response.endswith("/response")
    assert "background finished" not in at_response
    assert at_next[-1] == "background finished"
    if not streaming:
        # Streamed, the fake sees the last chunk before the runtime collects the invocation's
        # pending set, and may open the gate first: the work still ends before /next (above),
        # but it may be finished by the time it would be counted.
        assert target.adapter.counts["drained"] == 1


def test_after_response_work_drains_before_next(serve):
    async def scenario(fake, task):
        fake.add_event(http_event("/after"))
        await fake.wait_for(lambda: fake.nexts() == 2)
        return list(runtime_apps.log)

    assert serve(app_target(), scenario)[-1] == "after_response ran"


def test_pending_work_is_cut_off_at_the_deadline(serve):
    target = app_target(drain_margin=0.5)

    async def scenario(fake, task):
        deadline = int(time.time() * 1000) + 600  # leaves at most 0.1 s to drain
        fake.add_event(http_event("/background"), deadline_ms=deadline)
        await fake.wait_for(lambda: fake.nexts() == 2)

    serve(target, scenario)
    assert "background started" in runtime_apps.log
    assert "background finished" not in runtime_apps.log
    assert target.adapter.counts["cancelled"] == 1


def test_context_and_trace_id_per_invocation(serve):
    async def scenario(fake, task):
        traced = fake.add_event(
            http_event("/context"), headers={"Lambda-Runtime-Trace-Id": "Root=1-5e1b-abc;Sampled=1"}
        )
        untraced = fake.add_event(http_event("/context"))
        return body_of(await fake.wait_result(traced)), body_of(await fake.wait_result(untraced))

    traced, untraced = serve(app_target(), scenario)
    assert traced["trace_id"] == "Root=1-5e1b-abc;Sampled=1"
    assert untraced["trace_id"] is None
    assert traced["function_name"] == "my-function"
    assert traced["memory_limit_in_mb"] == "512"
    assert traced["remaining_positive"] is True
    assert traced["aws_request_id"] != untraced["aws_request_id"]
    assert "_X_AMZN_TRACE_ID" not in os.environ


def test_an_app_exception_is_a_500_without_details(serve):
    async def scenario(fake, task):
        return (await fake.wait_result(fake.add_event(http_event("/boom")))).json()

    response = serve(app_target(), scenario)
    assert response["statusCode"] == 500
    assert "secret" not in json.dumps(response)


def test_wsgi_app_through_the_runtime(serve):
    async def scenario(fake, task):
        return body_of(await fake.wait_result(fake.add_event(http_event("/hello"))))

    target = Target(adapter=holdfast.Adapter(wsgi=runtime_apps.flask_app))
    assert serve(target, scenario) == {"message": "hello from flask"}


# -- function errors -------------------------------------------------------------------------------
def test_a_non_http_event_is_an_invalid_event_function_error(serve):
    async def scenario(fake, task):
        result = await fake.wait_result(fake.add_event(SQS))
        await fake.wait_for(lambda: fake.nexts() == 2)
        return result

    result = serve(app_target(), scenario)
    assert result.path.endswith("/error")
    assert result.headers["lambda-runtime-function-error-type"] == "Function.InvalidEvent"
    error = result.json()
    assert error["errorType"] == "InvalidEvent"
    assert "aws:sqs" in error["errorMessage"]
    assert error["stackTrace"] == []


def test_error_status_codes_become_function_errors_after_which_pending_work_drains(serve):
    async def scenario(fake, task):
        result = await fake.wait_result(fake.add_event(http_event("/status/502")))
        await fake.wait_for(lambda: fake.nexts() == 2)
        return result

    result = serve(app_target(error_status_codes="500,502-504"), scenario)
    assert result.path.endswith("/error")
    assert result.headers["lambda-runtime-function-error-type"] == "Function.HTTPError"
    error = result.json()
    assert error["errorType"] == "HTTPError.502"
    assert "status 502" in error["errorMessage"]


def test_undecodable_payload_is_an_unmarshal_error(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event(b"{not json"))

    result = serve(app_target(), scenario)
    assert result.headers["lambda-runtime-function-error-type"] == "Runtime.UnmarshalError"
    assert result.json()["errorMessage"].startswith("Unable to unmarshal input")


def test_malformed_client_context_is_a_context_unmarshal_error(serve):
    async def scenario(fake, task):
        headers = {"Lambda-Runtime-Client-Context": "{broken"}
        return await fake.wait_result(fake.add_event(http_event("/hello"), headers=headers))

    result = serve(app_target(), scenario)
    assert result.json()["errorType"] == "Runtime.LambdaContextUnmarshalError"


def test_a_refused_post_does_not_stop_the_runtime(serve):
    async def scenario(fake, task):
        fake.post_failures.append(413)
        fake.add_event(http_event("/hello"))
        second = fake.add_event(http_event("/hello"))
        return await fake.wait_result(second)

    assert serve(app_target(), scenario).json()["statusCode"] == 200


def test_a_failing_next_ends_the_runtime_with_status_1(serve):
    async def scenario(fake, task):
        fake.next_failures.append(500)
        return await task

    assert serve(app_target(), scenario) == 1


# -- streaming -------------------------------------------------------------------------------------
def test_streamed_response_has_the_http_integration_prelude(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event(http_event("/stream")))

    result = serve(app_target(), scenario, streaming=True)
    assert result.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert result.headers["content-type"] == ("application/vnd.awslambda.http-integration-response")
    prelude, body = split_stream(result.body)
    assert prelude["statusCode"] == 200
    assert prelude["headers"]["x-kind"] == "stream"
    assert prelude["headers"]["content-type"].startswith("text/plain")
    assert prelude["cookies"][0].startswith("session=abc")
    assert body == b"one two three"
    # The prelude went out as its own chunk, before the body: the client sees headers early.
    assert result.chunks[0].endswith(b"\x00" * 8)
    assert result.trailers == {}


def test_an_error_after_the_first_byte_is_reported_in_trailers(serve):
    async def scenario(fake, task):
        result = await fake.wait_result(fake.add_event(http_event("/stream-fails")))
        await fake.wait_for(lambda: fake.nexts() == 2)
        return result

    result = serve(app_target(), scenario, streaming=True)
    _, body = split_stream(result.body)
    assert body == b"partial"
    assert result.trailers["lambda-runtime-function-error-type"] == "Function.ValueError"
    error = json.loads(base64.b64decode(result.trailers["lambda-runtime-function-error-body"]))
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "broke mid-stream"
    assert any("runtime_apps.py" in line for line in error["stackTrace"])


def test_an_error_before_the_first_byte_streams_a_500(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event(http_event("/boom")))

    result = serve(app_target(), scenario, streaming=True)
    prelude, body = split_stream(result.body)
    assert prelude["statusCode"] == 500
    assert b"secret" not in body
    assert result.trailers == {}


def test_streamed_error_status_codes_are_held_back_as_function_errors(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event(http_event("/status/503")))

    result = serve(app_target(error_status_codes="503"), scenario, streaming=True)
    assert result.path.endswith("/error")
    assert result.json()["errorType"] == "HTTPError.503"


def test_streaming_non_http_event_is_an_error_before_any_byte(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event(SQS))

    result = serve(app_target(), scenario, streaming=True)
    assert result.path.endswith("/error")
    assert result.json()["errorType"] == "InvalidEvent"


# -- plain handlers --------------------------------------------------------------------------------
def test_sync_handler_runs_as_is(serve):
    async def scenario(fake, task):
        return (await fake.wait_result(fake.add_event({"a": 1}, request_id="r-1"))).json()

    assert serve(Target(handler=runtime_apps.handler), scenario) == {
        "echo": {"a": 1},
        "request_id": "r-1",
    }


def test_sync_handler_may_run_its_own_event_loop(serve):
    async def scenario(fake, task):
        return (await fake.wait_result(fake.add_event({"n": 21}))).json()

    assert serve(Target(handler=runtime_apps.runs_its_own_loop), scenario) == {"n": 42}


def test_async_handler_and_its_after_response_work(serve):
    async def scenario(fake, task):
        result = await fake.wait_result(fake.add_event({"x": 1}, request_id="r-2"))
        await fake.wait_for(lambda: fake.nexts() == 2)
        return result.json()

    assert serve(Target(handler=runtime_apps.async_handler), scenario) == {
        "async": True,
        "echo": {"x": 1},
    }
    assert runtime_apps.log[-1] == "after r-2"


def test_handler_exception_is_reported_with_its_stack_trace(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event({}))

    result = serve(Target(handler=runtime_apps.failing_handler), scenario)
    assert result.path.endswith("/error")
    assert result.headers["lambda-runtime-function-error-type"] == "Function.ValueError"
    error = result.json()
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad input")
    assert any("failing_handler" in line for line in error["stackTrace"])
    assert not any("holdfast/runtime" in line for line in error["stackTrace"])


def test_bytes_results_are_posted_raw(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event({}))

    result = serve(Target(handler=runtime_apps.bytes_handler), scenario)
    assert result.body == b"\x00raw"
    assert result.headers["content-type"] == "application/unknown"


def test_unserializable_result_is_a_marshal_error(serve):
    async def scenario(fake, task):
        return await fake.wait_result(fake.add_event({}))

    result = serve(Target(handler=runtime_apps.unserializable_handler), scenario)
    assert result.json()["errorType"] == "Runtime.MarshalError"


def test_non_json_payloads_reach_handlers_as_bytes(serve):
    async def scenario(fake, task):
        request_id = fake.add_event(b"plain text", headers={"Content-Type": "text/plain"})
        return (await fake.wait_result(request_id)).json()

    assert serve(Target(handler=runtime_apps.raw_event_handler), scenario) == {
        "type": "bytes",
        "size": 10,
    }


# -- concurrency -----------------------------------------------------------------------------------
def test_max_concurrency_runs_invocations_at_once_each_on_its_own_connection(serve):
    async def scenario(fake, task):
        ids = [fake.add_event(http_event("/wait")) for _ in range(3)]
        # All three are inside the app at once: none can answer before the gate opens.
        await fake.wait_for(lambda: runtime_apps.log.count("waiting") == 3)
        assert all(fake.result(request_id) is None for request_id in ids)
        runtime_apps.app.state.gate.set()
        return [await fake.wait_result(request_id) for request_id in ids]

    results = serve(app_target(), scenario, concurrency=3)
    assert all(r.json()["statusCode"] == 200 for r in results)
    assert len({r.connection for r in results}) == 3


def test_concurrent_sync_handlers_run_in_threads(serve):
    async def scenario(fake, task):
        ids = [fake.add_event({"n": n}) for n in range(4)]
        return [(await fake.wait_result(request_id)).json() for request_id in ids]

    results = serve(Target(handler=runtime_apps.runs_its_own_loop), scenario, concurrency=2)
    assert results == [{"n": 0}, {"n": 2}, {"n": 4}, {"n": 6}]


def test_invalid_concurrency_is_refused():
    from holdfast.hosts.custom import CustomRuntime as Runtime

    with pytest.raises(ValueError):
        Runtime(Target(handler=runtime_apps.handler), "127.0.0.1:1", concurrency=0)


def test_workers_share_one_loop(serve):
    loops = set()

    async def record_loop(event, context):
        loops.add(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return {}

    async def scenario(fake, task):
        ids = [fake.add_event({}) for _ in range(4)]
        for request_id in ids:
            await fake.wait_result(request_id)
        return asyncio.get_running_loop()

    loop = serve(Target(handler=record_loop), scenario, concurrency=4)
    assert loops == {loop}


# -- init and robustness ---------------------------------------------------------------------------
def test_an_extension_is_registered_before_the_first_next_to_earn_sigterm(serve):
    async def scenario(fake, task):
        await fake.wait_for(lambda: fake.nexts() == 1)
        return list(fake.log), fake.extensions

    log, extensions = serve(app_target(), scenario)
    assert extensions == ["holdfast-shutdown"]
    assert log.index("end POST /2020-01-01/extension/register") < log.index(
        "GET /2018-06-01/runtime/invocation/next"
    )


def test_no_extension_without_a_lifespan_to_shut_down(serve):
    async def scenario(fake, task):
        await fake.wait_result(fake.add_event({}))
        return fake.extensions

    assert serve(Target(handler=runtime_apps.handler), scenario) == []


def test_a_failure_inside_the_runtime_is_reported_and_the_runtime_goes_on(serve, monkeypatch):
    from holdfast.hosts import custom as loop

    def broken_context(request, function):
        raise TypeError("a runtime bug")

    monkeypatch.setattr(loop, "RuntimeContext", broken_context)

    async def scenario(fake, task):
        result = await fake.wait_result(fake.add_event({}))
        await fake.wait_for(lambda: fake.nexts() == 2)
        return result

    result = serve(Target(handler=runtime_apps.handler), scenario)
    assert result.headers["lambda-runtime-function-error-type"] == "Runtime.TypeError"
    assert result.json()["errorMessage"] == "a runtime bug"


def test_decimals_in_handler_results_become_numbers():
    from decimal import Decimal

    from holdfast.hosts.custom import _marshal

    body, content_type = _marshal({"count": Decimal("3"), "price": Decimal("9.5")})
    assert json.loads(body) == {"count": 3, "price": 9.5}
    assert content_type == "application/json"


def test_the_prelude_never_contains_nul():
    from holdfast.outcome import Streamed
    from holdfast.runtime.streaming import prelude

    async def no_body():
        yield b""

    encoded = prelude(Streamed(200, {"x-odd": "a\x00b,c"}, ["a=1"], no_body()))
    assert b"\x00" not in encoded
    assert json.loads(encoded) == {
        "statusCode": 200,
        "headers": {"x-odd": "a\x00b,c"},
        "cookies": ["a=1"],
    }
