"""The server's connection protocol over raw sockets: bytes as they really arrive (a request in
many segments, a pipelined burst, a peer sending faster than it is read, a peer gone mid-body),
and an answer written early from a callback (`Request.answer`)."""

import asyncio
import socket
import struct
import threading
import time

from http11_support import read_to_close

from holdfast.http11.server import ProtocolError, Request, Response


def _nodelay(connection: socket.socket) -> socket.socket:
    # Each send leaves as a segment of its own: the server really sees the pieces.
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _read_answers(connection: socket.socket, count: int) -> list[bytes]:
    """`count` answers with a Content-Length body each, as they come."""
    answers: list[bytes] = []
    buffer = b""
    while len(answers) < count:
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            chunk = connection.recv(65536)
            assert chunk, f"closed after {len(answers)} answers"
            buffer += chunk
        head = buffer[:end]
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(buffer) < end + 4 + length:
            chunk = connection.recv(65536)
            assert chunk, f"closed inside answer {len(answers) + 1}"
            buffer += chunk
        answers.append(buffer[: end + 4 + length])
        buffer = buffer[end + 4 + length :]
    return answers


def test_a_request_sent_byte_by_byte_is_read_whole(serve, complaints):
    served = serve(head_timeout=10, body_timeout=10)
    request = b"POST /split?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
    chunked = (
        b"POST /chunked HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    with _nodelay(served.connect()) as connection:
        for raw in (request, chunked):
            for byte in raw:
                connection.sendall(bytes([byte]))
        first, second = _read_answers(connection, 2)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert first.endswith(b"POST /split?q=1 HTTP/1.1\nhello world")
    assert second.endswith(b"POST /chunked HTTP/1.1\nhello world")
    assert complaints.records == []


def test_a_pipelined_burst_is_answered_in_order(serve, complaints):
    served = serve()
    burst = b"".join(
        b"POST /%d HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
        % (n, len(b"body%d" % n), b"body%d" % n)
        if n % 2
        else b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n
        for n in range(200)
    )
    with served.connect() as connection:
        connection.sendall(burst)
        answers = _read_answers(connection, 200)
    for n, answer in enumerate(answers):
        expected = b"POST /%d HTTP/1.1\nbody%d" % (n, n) if n % 2 else b"GET /%d HTTP/1.1\n" % n
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(expected)
    assert complaints.records == []


def test_a_body_sent_faster_than_it_is_read_arrives_whole(serve):
    # Far more than the connection buffers before it stops reading the socket: the server
    # pauses the peer while the handler does not read, and resumes it as the handler reads.
    release = threading.Event()
    size = 32 * 1024 * 1024
    buffered: list[int] = []

    async def slow_reader(request: Request) -> Response:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
        total = 0
        async for chunk in request.body.chunks():
            total += len(chunk)
        return Response(200, [("Content-Type", "text/plain")], str(total).encode())

    def paused() -> bool:
        connections = list(served.server._connections.values())
        buffered[:] = [len(connection.buffer) for connection in connections]
        return any(connection._reading_paused for connection in connections)

    served = serve(slow_reader)
    with served.connect() as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size)
        sender = threading.Thread(target=connection.sendall, args=(b"x" * size,))
        sender.start()
        deadline = time.monotonic() + 30
        while not paused():  # polled: the pause is the server's own state, no event says it
            assert sender.is_alive(), "all of it was taken in without a pause"
            assert time.monotonic() < deadline, "the server never paused the peer"
            time.sleep(0.01)
        assert max(buffered) <= 2 * 1024 * 1024 + 64 * 1024
        release.set()
        sender.join(60)
        (answer,) = _read_answers(connection, 1)
    assert answer.endswith(b"\r\n\r\n%d" % size)


def test_a_peer_gone_mid_body_ends_the_read_and_nothing_is_logged(serve, complaints):
    outcomes: list[BaseException] = []
    read_failed = threading.Event()

    async def reader(request: Request) -> Response:
        try:
            await request.body.read()
        except ConnectionError as exc:  # ProtocolError at the end of stream, else the reset
            outcomes.append(exc)
            read_failed.set()
            raise
        return Response(200, [("Content-Type", "text/plain")], b"whole")

    served = serve(reader)
    for abrupt in (False, True):
        with _nodelay(served.connect()) as connection:
            connection.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part")
            if abrupt:  # a reset rather than an end of stream
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert read_failed.wait(10), "the handler's read never ended"
        read_failed.clear()
    assert isinstance(outcomes[0], ProtocolError) and len(outcomes) == 2
    # The server goes on serving.
    answer = served.exchange(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"whole")
    assert complaints.records == []


def test_an_answer_given_from_a_callback_goes_out_before_the_handler_returns(serve, complaints):
    returned = threading.Event()
    may_return = threading.Event()
    early = Response(200, [("Content-Type", "text/plain")], b"early")

    async def handler(request: Request) -> Response:
        if request.path == "/later":
            return Response(200, [("Content-Type", "text/plain")], b"later")
        loop = asyncio.get_running_loop()
        given: asyncio.Future[bool] = loop.create_future()
        loop.call_soon(lambda: given.set_result(request.answer(early)))
        assert await given
        assert request.answered is early
        assert not request.answer(Response(500, [], b"second")), "one answer per request"
        await loop.run_in_executor(None, may_return.wait, 30)
        returned.set()
        return early

    served = serve(handler)
    with served.connect() as connection:
        connection.sendall(b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
        (answer,) = _read_answers(connection, 1)
        assert answer.endswith(b"early") and not returned.is_set()
        may_return.set()
        connection.sendall(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
        (later,) = _read_answers(connection, 1)
        connection.shutdown(socket.SHUT_WR)
        assert read_to_close(connection) == b"", "the early answer was written once"
    assert later.endswith(b"later")
    assert complaints.records == []


def test_an_answer_cannot_go_early_before_the_body_is_read_or_to_a_head_request(serve):
    refused: list[bool] = []

    async def handler(request: Request) -> Response:
        response = Response(200, [("Content-Type", "text/plain")], b"late")
        refused.append(request.answer(response))
        await request.body.read()
        return response

    served = serve(handler)
    answer = served.exchange(
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nab"
    )
    # The first body arrived with its head but is still unread when the handler answers.
    assert refused == [False, False, False]
    assert answer.count(b"HTTP/1.1 200 OK") == 3 and answer.count(b"late") == 2


def test_an_answer_kept_held_leaves_with_the_next_one_in_one_piece(serve):
    # What the emulator does while an environment is frozen: the runtime's 202 (held, as its
    # `/next` was pipelined behind its post) is not written until the next event is.
    answered: list[bool] = []
    next_given = threading.Event()
    kept = threading.Event()
    returned = threading.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/post":
            return Response(202, [("Content-Type", "text/plain")], b"accepted")
        loop = asyncio.get_running_loop()
        served.server.keep_held()  # as the freeze does, inside the `/next` handler
        await asyncio.sleep(0)  # the round in which the 202 would otherwise have gone out
        kept.set()
        await loop.run_in_executor(None, next_given.wait, 30)
        event = Response(200, [("Content-Type", "text/plain")], b"event")
        answered.append(request.answer(event))
        returned.set()
        return event

    served = serve(handler)
    with _nodelay(served.connect()) as connection:
        connection.sendall(
            b"POST /post HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert kept.wait(10)
        connection.setblocking(False)
        try:
            early = connection.recv(65536)
        except BlockingIOError:
            early = b""
        finally:
            connection.settimeout(10)
            next_given.set()
        assert early == b"", "the held 202 went out before the next answer"
        answers = _read_answers(connection, 2)
    assert answers[0].endswith(b"accepted") and answers[1].endswith(b"event")
    assert returned.wait(10) and answered == [True], "written by `answer`, not on return"
