"""The Runtime API client on the wire: requests, headers, keep-alive, streaming, trailers."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from runtime_fake import API, FakeRuntimeAPI

from holdfast.runtime.client import RuntimeAPIError, RuntimeClient
from holdfast.runtime.report import ErrorReport

pytestmark = pytest.mark.timeout(20)


def exchange(scenario):
    """Run ``await scenario(fake, client)`` against a fresh fake Runtime API."""

    async def main():
        fake = FakeRuntimeAPI()
        client = RuntimeClient(await fake.start())
        try:
            return await scenario(fake, client)
        finally:
            await client.close()
            await fake.close()

    return asyncio.run(main())


def test_next_parses_the_invocation_headers():
    async def scenario(fake, client):
        fake.add_event(
            {"hello": "world"},
            request_id="req-1",
            deadline_ms=1700000000123,
            headers={
                "Lambda-Runtime-Trace-Id": "Root=1-abc;Parent=def;Sampled=1",
                "Lambda-Runtime-Client-Context": '{"custom": {"a": 1}}',
                "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId": "id"}',
                "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
            },
        )
        return await client.next()

    request = exchange(scenario)
    assert request.request_id == "req-1"
    assert request.deadline_ms == 1700000000123
    assert request.invoked_function_arn.endswith(":function:f")
    assert request.trace_id == "Root=1-abc;Parent=def;Sampled=1"
    assert request.client_context == '{"custom": {"a": 1}}'
    assert request.cognito_identity == '{"cognitoIdentityId": "id"}'
    assert request.tenant_id == "tenant-7"
    assert request.content_type == "application/json"
    assert json.loads(request.body) == {"hello": "world"}


def test_absent_optional_headers_are_none():
    async def scenario(fake, client):
        fake.add_event({})
        return await client.next()

    request = exchange(scenario)
    assert request.trace_id is None
    assert request.client_context is None
    assert request.cognito_identity is None
    assert request.tenant_id is None


def test_one_kept_alive_connection_carries_every_call():
    async def scenario(fake, client):
        for n in range(3):
            fake.add_event({"n": n}, request_id=f"r{n}")
            request = await client.next()
            await client.respond(request.request_id, b'{"ok": true}')
        return fake.requests

    requests = exchange(scenario)
    assert [r.method for r in requests] == ["GET", "POST"] * 3
    assert {r.connection for r in requests} == {1}
    post = requests[1]
    assert post.path == f"{API}/invocation/r0/response"
    assert post.headers["content-type"] == "application/json"
    assert post.body == b'{"ok": true}'
    assert post.headers["host"]


def test_a_connection_closed_while_idle_is_reopened_and_the_call_retried():
    async def scenario(fake, client):
        fake.add_event({}, request_id="a")
        fake.add_event({}, request_id="b")
        fake.close_after = 1  # the server drops the connection after answering /next
        await client.next()
        await client.respond("a", b"{}")
        await client.next()
        return fake.requests

    requests = exchange(scenario)
    assert [(r.method, r.connection) for r in requests] == [("GET", 1), ("POST", 2), ("GET", 2)]


def test_next_can_follow_a_response_in_the_same_write():
    async def scenario(fake, client):
        fake.add_event({}, request_id="a")
        fake.add_event({}, request_id="b")
        await client.next()
        await client.respond("a", b'{"ok": true}', then_next=True)
        assert client.next_sent
        # The /next reached the API before the client asked for the next event.
        await fake.wait_for(lambda: fake.nexts() == 2)
        request = await client.next()
        return request, fake.requests

    request, requests = exchange(scenario)
    assert request.request_id == "b"
    assert [(r.method, r.connection) for r in requests] == [("GET", 1), ("POST", 1), ("GET", 1)]
    assert requests[1].body == b'{"ok": true}'


def test_a_refused_response_still_gets_the_next_sent_behind_it():
    async def scenario(fake, client):
        fake.add_event({}, request_id="b")
        fake.post_failures.append(413)
        with pytest.raises(RuntimeAPIError) as caught:
            await client.respond("a", b"{}", then_next=True)
        request = await client.next()
        return caught.value.status, request, fake.requests

    status, request, requests = exchange(scenario)
    assert status == 413
    assert request.request_id == "b"
    assert [(r.method, r.connection) for r in requests] == [("POST", 1), ("GET", 1)]


def test_a_next_lost_with_its_connection_is_sent_again():
    async def scenario(fake, client):
        fake.add_event({}, request_id="b")
        fake.close_after = 1  # the server answers the response, then drops the connection
        await client.respond("a", b"{}", then_next=True)
        request = await client.next()
        return request, fake.requests

    request, requests = exchange(scenario)
    assert request.request_id == "b"
    assert requests[-1].method == "GET"
    assert requests[-1].connection == 2


def test_error_posts_carry_the_body_and_the_category_header():
    async def scenario(fake, client):
        report = ErrorReport("ValueError", "bad input", "Function.ValueError", ["  File x\n"])
        await client.error("req-9", report)
        await client.init_error(ErrorReport.runtime("ImportModuleError", "no module"))
        return fake.requests

    error, init_error = exchange(scenario)
    assert error.path == f"{API}/invocation/req-9/error"
    assert error.headers["lambda-runtime-function-error-type"] == "Function.ValueError"
    assert error.json() == {
        "errorMessage": "bad input",
        "errorType": "ValueError",
        "stackTrace": ["  File x\n"],
    }
    assert init_error.path == f"{API}/init/error"
    assert init_error.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    assert init_error.json()["errorType"] == "Runtime.ImportModuleError"


def test_an_unexpected_status_raises_with_the_status():
    async def scenario(fake, client):
        fake.next_failures.append(500)
        with pytest.raises(RuntimeAPIError) as caught:
            await client.next()
        return caught.value

    error = exchange(scenario)
    assert error.status == 500
    assert "Sandbox.Failure" in str(error)


def test_streamed_response_is_chunked_with_the_streaming_headers():
    async def scenario(fake, client):
        stream = client.stream("req-s", "text/plain")
        await stream.write(b"first ")
        await fake.wait_for(lambda: bool(fake.log))  # the head went out with the first chunk
        await stream.write(b"")  # an empty write must not end the body
        await stream.write(b"second")
        await stream.close()
        return fake.requests

    (post,) = exchange(scenario)
    assert post.path == f"{API}/invocation/req-s/response"
    assert post.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert post.headers["transfer-encoding"] == "chunked"
    assert post.headers["content-type"] == "text/plain"
    assert post.headers["trailer"] == (
        "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    )
    assert post.chunks == [b"first ", b"second"]
    assert post.trailers == {}


def test_a_failed_stream_ends_with_the_error_trailers():
    async def scenario(fake, client):
        stream = client.stream("req-f", "text/plain")
        await stream.write(b"partial")
        await stream.fail(ErrorReport("ValueError", "broke", "Function.ValueError"))
        # The connection stays usable after the stream.
        fake.add_event({}, request_id="next-one")
        await client.next()
        return fake.requests

    post, following = exchange(scenario)
    assert post.body == b"partial"
    assert post.trailers["lambda-runtime-function-error-type"] == "Function.ValueError"
    body = json.loads(base64.b64decode(post.trailers["lambda-runtime-function-error-body"]))
    assert body == {"errorMessage": "broke", "errorType": "ValueError", "stackTrace": []}
    assert following.connection == post.connection


def test_restore_next_and_restore_error():
    async def scenario(fake, client):
        fake.snapstart = True
        await client.restore_next()
        await client.restore_error(ErrorReport("KeyError", "'x'", "Runtime.AfterRestoreError"))
        return fake.requests

    restore, error = exchange(scenario)
    assert (restore.method, restore.path) == ("GET", f"{API}/restore/next")
    assert error.path == f"{API}/restore/error"
    assert error.headers["lambda-runtime-function-error-type"] == "Runtime.AfterRestoreError"


def test_large_bodies_are_sent_whole():
    body = b"x" * (3 * 1024 * 1024)

    async def scenario(fake, client):
        await client.respond("big", body)
        return fake.requests

    (post,) = exchange(scenario)
    assert post.body == body


@pytest.mark.parametrize("address", ["localhost", "localhost:²"])
def test_malformed_address_is_refused(address):
    with pytest.raises(ValueError, match="host:port"):
        RuntimeClient(address)


def test_a_stream_whose_connection_was_lost_fails_instead_of_writing_elsewhere():
    async def scenario(fake, client):
        stream = client.stream("req-l", "text/plain")
        await stream.write(b"partial")
        await client.close()  # the connection breaks under the stream
        with pytest.raises(ConnectionError):
            await stream.write(b"more")
        fake.add_event({}, request_id="after")
        request = await client.next()  # the client itself recovers on a new connection
        return request, fake.requests

    request, requests = exchange(scenario)
    assert request.request_id == "after"
    assert [r.path.rsplit("/", 1)[-1] for r in requests] == ["response", "next"]
    assert requests[0].connection != requests[1].connection
