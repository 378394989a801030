"""The client socket reader (the Runtime API client's and the proxy's) against asyncio's own: any
bytes a server sends, in any pieces, read through `holdfast.http11.response` give the same head,
body or error from both, whether the reader waits in the socket or on the loop."""

import asyncio
import itertools
import math
import socket

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from holdfast.http11.client_socket import SocketReader
from holdfast.http11.response import body_chunks, read_head

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\n\r\nread to the end",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
]


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A response, perhaps cut short, perhaps with a byte changed; or any bytes at all."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=120))
    message = draw(st.sampled_from(RESPONSES))
    message = message[: draw(st.integers(0, len(message)))]
    if message and draw(st.booleans()):
        at = draw(st.integers(0, len(message) - 1))
        message = message[:at] + draw(st.binary(min_size=1, max_size=1)) + message[at + 1 :]
    return message


async def _outcome(reader: asyncio.StreamReader) -> tuple[object, ...]:
    try:
        head = await read_head(reader)
        body = b"".join([chunk async for chunk in body_chunks(reader, head)])
    except Exception as exc:  # the error itself is the outcome compared
        return (type(exc).__name__,)
    return (head.status, head.fields, head.length, head.keep_alive, body)


async def _through_socket(message: bytes, cuts: list[int], wait: float) -> tuple[object, ...]:
    """`message` sent in pieces (cut at `cuts`), each after the reader has had a turn."""
    loop = asyncio.get_running_loop()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    edges = [0, *sorted(cut for cut in cuts if cut < len(message)), len(message)]

    async def write() -> None:
        for start, end in itertools.pairwise(edges):
            peer.sendall(message[start:end])
            await asyncio.sleep(0)
        peer.shutdown(socket.SHUT_WR)

    writer = asyncio.ensure_future(write())
    try:
        return await _outcome(SocketReader(ours, loop, limit=1024 * 1024, wait=wait))
    finally:
        await writer
        ours.close()
        peer.close()


async def _through_stream_reader(message: bytes) -> tuple[object, ...]:
    reader = asyncio.StreamReader(limit=1024 * 1024)
    reader.feed_data(message)
    reader.feed_eof()
    return await _outcome(reader)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages(),
    st.lists(st.integers(0, 200), max_size=6),
    # Never waiting in the socket (a proxy's stream), a bounded wait, one as long as the loop
    # stays quiet (the Runtime API client).
    st.sampled_from([0.0, 0.005, math.inf]),
)
@example(RESPONSES[1], list(range(1, len(RESPONSES[1]))), 0.0)  # one byte at a time
@example(RESPONSES[1], list(range(1, len(RESPONSES[1]))), math.inf)
def test_socket_reader_reads_as_asyncios_stream_reader(message, cuts, wait):
    async def both() -> tuple[tuple[object, ...], tuple[object, ...]]:
        return await _through_socket(message, cuts, wait), await _through_stream_reader(message)

    ours, asyncios = asyncio.run(both())
    assert ours == asyncios


def test_socket_reader_is_quiet_only_with_nothing_unread_and_nothing_coming():
    async def scenario() -> list[bool]:
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        reader = SocketReader(ours, asyncio.get_running_loop(), limit=1024 * 1024)
        seen = [reader.quiet()]
        peer.sendall(b"HTTP/1.1 204 No Content\r\n\r\nextra")
        await read_head(reader)
        seen.append(reader.quiet())  # "extra": read from the socket, nobody asked for it
        assert await reader.read(5) == b"extra"
        seen.append(reader.quiet())
        peer.sendall(b"more")
        seen.append(reader.quiet())  # unasked bytes still in the socket
        assert await reader.read(4) == b"more"
        peer.close()
        seen.append(reader.quiet())  # the peer's close, not yet read
        assert await reader.read(5) == b""
        seen += [reader.quiet(), reader.at_eof()]
        ours.close()
        return seen

    assert asyncio.run(scenario()) == [True, False, True, False, False, False, True]
