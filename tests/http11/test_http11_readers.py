"""One response reader, two clients: the Runtime API client and the proxy refuse the same broken
responses, over a real socket."""

import asyncio

import pytest

from holdfast.http11.grammar import ProtocolError
from holdfast.proxy.upstream import Upstream, UpstreamError
from holdfast.runtime.client import RuntimeClient, parse_headers

pytestmark = pytest.mark.timeout(30)

NEXT_HEADERS = (
    b"Lambda-Runtime-Aws-Request-Id: r1\r\nLambda-Runtime-Deadline-Ms: 1\r\n"
    b"Lambda-Runtime-Invoked-Function-Arn: arn\r\n"
)
BROKEN = {
    "two different lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "unicode digit length": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n{}",
    "length and chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n"
    ),
    "unknown coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
    "bare CR in a value": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\n{}",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
    "space before colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}",
    "bad status line": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}",
    "not HTTP": b"SSH-2.0-OpenSSH\r\n\r\n",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
    "chunk without CRLF": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n"
    ),
    "oversized head": b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70_000 + b"\r\n\r\n",
}


class Canned:
    """Answers every request on a connection with `answer` (after reading its head and body)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0

    async def __aenter__(self) -> "Canned":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")  # requests without a body here
            writer.write(self.answer)
            await writer.drain()
            await reader.read()  # until the client closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
def test_both_clients_refuse_a_broken_response(answer):
    async def scenario():
        async with Canned(
            answer.replace(b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS, 1)
        ) as server:
            client = RuntimeClient(f"127.0.0.1:{server.port}")
            try:
                with pytest.raises(ConnectionError):
                    await client.next()
            finally:
                await client.close()
            assert server.connections == 1, "broken HTTP is not retried"
        async with Canned(answer) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=False, idle_timeout=0)
            with pytest.raises(UpstreamError):
                response = await upstream.request("GET", "/", [], b"")
                async for _ in response.body():
                    pass

    asyncio.run(scenario())


def test_both_clients_read_a_well_formed_response():
    answer = (
        b"HTTP/1.1 200 OK\r\n" + NEXT_HEADERS + b"Content-Length: 2, 2\r\nX-Obs: caf\xe9\r\n"
        b"X-Tab:\tv \r\n\r\n{}"
    )

    async def scenario():
        async with Canned(answer) as server:
            client = RuntimeClient(f"127.0.0.1:{server.port}")
            try:
                invocation = await client.next()
            finally:
                await client.close()
        async with Canned(answer) as server:
            upstream = Upstream("127.0.0.1", server.port, reuse=False, idle_timeout=0)
            response = await upstream.request("GET", "/", [], b"")
            body = b"".join([chunk async for chunk in response.body()])
        return invocation, response.headers, body

    invocation, headers, body = asyncio.run(scenario())
    assert (invocation.request_id, invocation.body) == ("r1", b"{}")
    assert body == b"{}"
    assert (b"x-obs", b"caf\xe9") in headers and (b"x-tab", b"v") in headers


def test_the_telemetry_listener_helpers_are_strict():
    with pytest.raises(ProtocolError):
        parse_headers(["Content-Length: 1", "X-A: a\x00"])
    assert parse_headers(["Content-Length: 1", "X-A:  b ", ""]) == {
        "content-length": "1",
        "x-a": "b",
    }
