"""The after-response extension's Telemetry API listener on its own: what it accepts from the
platform (batches over kept-alive or closing connections, chunked bodies) and what it ignores
(malformed batches, other event types, records without a request id)."""

from __future__ import annotations

import asyncio
import json

import pytest

from holdfast.config import LambdaSettings
from holdfast.hosts.managed import AfterResponseExtension

pytestmark = pytest.mark.timeout(30)


class _NoAdapter:
    pass


def runtime_done(request_id: object, status: str = "success") -> dict:
    return {
        "time": "t",
        "type": "platform.runtimeDone",
        "record": {"requestId": request_id, "status": status},
    }


@pytest.fixture
def extension():
    ext = AfterResponseExtension(
        _NoAdapter(), LambdaSettings({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"})
    )  # type: ignore[arg-type]
    yield ext
    ext._loop.close()


def serve_and_post(extension, requests: list[bytes]) -> list[bytes]:
    """Start the listener on the extension's loop, send raw HTTP requests on one connection,
    and return the raw answers."""

    async def main():
        server = await asyncio.start_server(extension._receive_telemetry, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for request in requests:
            writer.write(request)
            await writer.drain()
            answers.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()
        await writer.wait_closed()
        server.close()
        # The listener's handlers see the end of the connection and return.
        handlers = asyncio.all_tasks() - {asyncio.current_task()}
        if handlers:
            await asyncio.wait(handlers, timeout=5)
        return answers

    return extension._loop.run_until_complete(main())


def post(body: bytes, *, close: bool = False, chunked: bool = False) -> bytes:
    head = "POST /telemetry HTTP/1.1\r\nHost: sandbox.localdomain\r\n"
    head += "Content-Type: application/json\r\n"
    if close:
        head += "Connection: close\r\n"
    if chunked:
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + payload
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_runtime_done_batches_are_read_on_a_kept_alive_connection(extension):
    first = json.dumps([runtime_done("a"), {"type": "platform.start", "record": {}}]).encode()
    second = json.dumps([runtime_done("b", "timeout")]).encode()
    answers = serve_and_post(extension, [post(first), post(second, chunked=True)])
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
    assert dict(extension._runtime_done) == {"a": "success", "b": "timeout"}


def test_a_closing_delivery_is_answered_and_closed(extension):
    body = json.dumps([runtime_done("c")]).encode()
    (answer,) = serve_and_post(extension, [post(body, close=True)])
    assert b"Connection: close" in answer
    assert "c" in extension._runtime_done


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"type": "platform.runtimeDone"}',
        json.dumps([runtime_done(7)]).encode(),
        json.dumps([{"type": "platform.runtimeDone", "record": "x"}]).encode(),
        b"[1, null]",
    ],
)
def test_malformed_batches_are_ignored(extension, body):
    (answer,) = serve_and_post(extension, [post(body)])
    assert answer.startswith(b"HTTP/1.1 200")
    assert not extension._runtime_done


def test_a_waiting_invoke_ends_on_its_runtime_done(extension):
    async def main():
        finished = asyncio.ensure_future(extension._finish("req-1", None))
        await asyncio.sleep(0)
        assert not finished.done()
        extension._telemetry(json.dumps([runtime_done("other")]).encode())
        await asyncio.sleep(0)
        assert not finished.done()
        extension._telemetry(json.dumps([runtime_done("req-1")]).encode())
        await asyncio.wait_for(finished, 5)

    extension._loop.run_until_complete(main())
    assert extension.foreign == 1
    assert "req-1" not in extension._runtime_done
