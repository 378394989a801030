"""The HTTP/1.1 server of the emulator and `holdfast dev`, over raw sockets: broken HTTP gets a
400 and nothing logged, slow or idle peers are timed out, connections are capped, and a response
header HTTP forbids is never written."""

import asyncio
import select
import socket
import threading

import pytest
from http11_support import read_to_close

from holdfast.http11.server import Request, Response

OK_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"

BROKEN = {
    "unicode digit length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xc2\xb2\r\n\r\nab",
    "latin-1 superscript length": b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nab",
    "two different lengths": b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "length list disagreeing": b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab",
    "negative length": b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    "signed length": b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na",
    "length and chunked": (
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "unknown coding": b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "NUL in a value": OK_HEAD + b"X-A: a\x00b\r\n\r\n",
    "bare CR in a value": OK_HEAD + b"X-A: a\rb\r\n\r\n",
    "bare CR ending a line": OK_HEAD + b"X-A: ab\r\r\n\r\n",
    "control character in a value": OK_HEAD + b"X-A: a\x1bb\r\n\r\n",
    "DEL in a value": OK_HEAD + b"X-A: a\x7fb\r\n\r\n",
    "control character in the method": b"GE\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "lower-case version": b"GET / http/1.1\r\nHost: x\r\n\r\n",
    "HTTP/2 request line": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "two spaces in the request line": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "space in the target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "obs-fold": OK_HEAD + b"X-A: a\r\n  folded\r\n\r\n",
    "space before the colon": OK_HEAD + b"X-A : a\r\n\r\n",
    "no colon": OK_HEAD + b"X-A a\r\n\r\n",
    "empty name": OK_HEAD + b": a\r\n\r\n",
    "name not a token": OK_HEAD + b"X(A): a\r\n\r\n",
    "oversized head": OK_HEAD + b"X-A: " + b"a" * (70 * 1024) + b"\r\n\r\n",
    "many fields": OK_HEAD + b"X-A: a\r\n" * 10_000 + b"\r\n",
    "bad chunk size": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk size with sign": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n",
    "bad trailer": (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX A: b\r\n\r\n"
    ),
}


@pytest.mark.parametrize("raw", BROKEN.values(), ids=BROKEN.keys())
def test_broken_http_gets_400_and_nothing_is_logged(serve, complaints, raw):
    served = serve()
    answer = served.exchange(raw)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Connection: close" in answer
    assert complaints.records == []
    assert served.exchange(OK_HEAD + b"\r\n").startswith(b"HTTP/1.1 200 "), "still serving"


def test_what_is_well_formed_is_accepted(serve, complaints):
    served = serve()
    cases = {
        b"POST /a?b=c HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab": b"ab",
        b"POST /a HTTP/1.1\r\ncontent-length:2\r\n\r\nab": b"ab",  # no space after the colon
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n2;x=y\r\nab\r\n0\r\nT: 1\r\n\r\n": (
            b"ab"
        ),
        b"GET /a HTTP/1.0\nX-A:\tb c \t\nX-B: \xe9\n\n": b"",  # bare LF, tabs, obs-text
    }
    for raw, body in cases.items():
        answer = served.exchange(raw)
        assert answer.startswith(b"HTTP/1.1 200 "), (raw, answer)
        assert answer.endswith(body)
    assert complaints.records == []


def test_headers_keep_their_spelling_and_values_lose_surrounding_whitespace(serve):
    seen = []

    async def handler(request: Request) -> Response:
        seen.append(request.headers.items())
        return Response(204)

    serve(handler).exchange(b"GET / HTTP/1.1\r\nX-Mixed-Case:  a b \t\r\nX-Mixed-Case: c\r\n\r\n")
    assert seen == [[("X-Mixed-Case", "a b"), ("X-Mixed-Case", "c")]]


@pytest.mark.parametrize(
    "header",
    [
        ("X-Q", "a\r\nSet-Cookie: evil=1"),
        ("X-Q", "a\nb"),
        ("X-Q", "a\x00b"),
        ("X-Q", "caf\u00e9 \u2603"),  # beyond latin-1: cannot be sent as it is
        ("X Q", "a"),
        ("", "a"),
        ("X-Q\r\nSet-Cookie", "evil=1"),
    ],
)
def test_a_response_header_http_forbids_is_never_written(serve, complaints, header):
    async def handler(request: Request) -> Response:
        return Response(200, [("X-Fine", "yes"), header], b"body")

    answer = serve(handler).exchange(OK_HEAD + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in answer and b"X-Fine" not in answer
    [record] = complaints.records
    assert "is not valid HTTP" in record.getMessage() and not record.exc_info


def test_a_partial_head_is_timed_out(serve, complaints):
    served = serve(idle_timeout=30, head_timeout=0.2)
    with served.connect() as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert read_to_close(connection) == b"", "closed by the server, not by the test"
    assert complaints.records == []


def test_an_idle_keep_alive_connection_is_timed_out(serve, complaints):
    served = serve(idle_timeout=0.2, head_timeout=30)
    with served.connect() as connection:
        connection.sendall(OK_HEAD + b"\r\n")
        answer = b""
        while not answer.endswith(b"GET / HTTP/1.1\n"):  # the echo handler's whole body
            answer += connection.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert read_to_close(connection) == b"", "closed by the server once idle"
    with served.connect() as connection:  # a request line that never comes, alike
        assert read_to_close(connection) == b""
    assert complaints.records == []


def test_a_stalled_body_is_answered_408(serve, complaints):
    served = serve(body_timeout=0.2)
    with served.connect() as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
        assert read_to_close(connection).startswith(b"HTTP/1.1 408 ")
    assert complaints.records == []


def test_no_timeout_by_default_for_the_runtime_api(serve):
    # A runtime is frozen with its connection open: the Runtime API must not time it out.
    served = serve()
    with served.connect() as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
        connection.settimeout(0.5)
        with pytest.raises(TimeoutError):
            connection.recv(1)
        connection.settimeout(10)
        connection.sendall(b"ab")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_at_the_cap_the_longest_idle_connection_makes_room(serve, complaints):
    served = serve(max_connections=4)
    idle = [served.connect() for _ in range(4)]
    for connection in idle:
        connection.sendall(b"GET / HTTP/1.1\r\n")  # a head begun, never finished
    # Each accepted in turn; the server knows of all four once each has had an answer or
    # been counted: a request on a fifth connection closes the oldest.
    answer = served.exchange(OK_HEAD + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert read_to_close(idle[0]) == b""
    for connection in idle:
        connection.close()
    assert complaints.records == []


def test_at_the_cap_with_every_connection_busy_a_new_one_gets_503(serve, complaints):
    release = threading.Event()
    started = threading.Semaphore(0)

    async def handler(request: Request) -> Response:
        started.release()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
        return Response(200, body=b"done")

    served = serve(handler, max_connections=2)
    busy = [served.connect() for _ in range(2)]
    for connection in busy:
        connection.sendall(OK_HEAD + b"\r\n")
    for _ in busy:
        assert started.acquire(timeout=10)
    refused = served.exchange(OK_HEAD + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 503 ") and refused.endswith(b"too many connections\n")
    release.set()
    for connection in busy:
        connection.shutdown(socket.SHUT_WR)
        assert read_to_close(connection).startswith(b"HTTP/1.1 200 ")
        connection.close()
    [warning] = complaints.records
    assert "refused with 503" in warning.getMessage()


def test_a_slowloris_crowd_does_not_stop_the_server_answering(serve, complaints):
    served = serve(max_connections=32, head_timeout=30)
    crowd = []
    try:
        for _ in range(300):
            connection = served.connect()
            connection.sendall(b"GET / HTTP/1.1\r\nX-A: ")
            crowd.append(connection)
        for _ in range(5):
            assert served.exchange(OK_HEAD + b"\r\n").startswith(b"HTTP/1.1 200 ")
    finally:
        for connection in crowd:
            connection.close()
    assert complaints.records == []


def test_the_cap_defaults_to_well_under_the_descriptor_limit():
    import resource

    from holdfast.http11.server import default_max_connections

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = default_max_connections()
    assert 8 <= cap <= 1000
    if soft != resource.RLIM_INFINITY:
        assert 2 * cap < soft


def _read_until(connection, marker):
    answer = b""
    while marker not in answer:
        chunk = connection.recv(65536)
        assert chunk, f"closed before {marker!r}: {answer!r}"
        answer += chunk
    return answer


def test_a_response_to_a_pipelined_request_waits_for_the_next_request_s_handler(serve):
    # A runtime posts its response with `/next` right behind it: the 202 is held until the
    # `/next` handler ran (it freezes the runtime), so the frozen runtime is not woken by it.
    client = {}
    seen_before_second = []

    async def handler(request: Request) -> Response:
        if request.path == "/second":
            # The answer to /first, had it been written, would be readable here already.
            readable, _, _ = select.select([client["socket"]], [], [], 0)
            seen_before_second.append(bool(readable))
        return Response(200, [("Content-Type", "text/plain")], request.path.encode())

    served = serve(handler)
    with served.connect() as connection:
        client["socket"] = connection
        connection.sendall(b"GET /first HTTP/1.1\r\n\r\nGET /second HTTP/1.1\r\n\r\n")
        answer = _read_until(connection, b"/second")
    assert seen_before_second == [False]
    assert answer.index(b"/first") < answer.index(b"/second")
    assert answer.count(b"HTTP/1.1 200 OK") == 2


def test_a_held_response_goes_out_before_the_connection_closes(serve):
    # The bytes behind the first request are not a request: the held answer still goes out.
    served = serve()
    answer = served.exchange(OK_HEAD + b"\r\nGET /unfinished HT")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"GET / HTTP/1.1\n" in answer


def test_a_held_response_goes_out_before_a_100_continue(serve):
    served = serve()
    with served.connect() as connection:
        connection.sendall(
            OK_HEAD + b"\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = _read_until(connection, b"100 Continue")
        assert answer.startswith(b"HTTP/1.1 200 ") and b"GET / HTTP/1.1\n" in answer
        assert answer.index(b"GET / HTTP/1.1\n") < answer.index(b"100 Continue")
        connection.sendall(b"hi")
        assert b"POST /b HTTP/1.1\nhi" in _read_until(connection, b"POST /b HTTP/1.1\nhi")
