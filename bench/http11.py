"""holdfast's strict hand-written HTTP/1.1 server parsing vs h11, per request cycle.

    .venv/bin/python bench/http11.py          # needs `pip install h11` for the comparison

One cycle is what the emulator's Runtime API does for each posted response: parse the request
(head and a small body) and write a 202 with a small JSON body. An invocation through the
emulator's front passes about three such cycles (front request, runtime `/next`, runtime post).
Both run in one process, alternating, 7 rounds; the figures are the medians.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from holdfast.http11 import server

REQUEST = (
    b"POST /2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response"
    b" HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: holdfast/0.1 (Python 3.11.9)\r\n"
    b"Content-Type: application/json\r\n"
    b"Lambda-Runtime-Invocation-Id: 0c1f2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b\r\n"
    b'Content-Length: 18\r\n\r\n{"statusCode":200}'
)
ANSWER = b'{"status":"OK"}'
CYCLES = 5000


class _Sink:
    """The transport's part a connection writes to."""

    def write(self, data: bytes) -> None:
        pass


async def _serve(connection: server._Connection) -> None:
    pass


async def _holdfast() -> float:
    sink = _Sink()
    started = time.perf_counter()
    for _ in range(CYCLES):
        connection = server._Connection(_serve)
        connection.transport = sink  # type: ignore[assignment]
        connection.data_received(REQUEST)
        request = await server._read_request(connection, None)
        assert request is not None
        await request.body.read()
        response = server.Response(202, [("Content-Type", "application/json")], ANSWER)
        response = server._refuse_forbidden_fields(request, response)
        await server._write_response(connection, response, keep_alive=True)
    return (time.perf_counter() - started) / CYCLES


def _h11() -> float:
    import h11

    started = time.perf_counter()
    for _ in range(CYCLES):
        connection = h11.Connection(h11.SERVER)
        connection.receive_data(REQUEST)
        event = connection.next_event()
        assert isinstance(event, h11.Request)
        while not isinstance(event := connection.next_event(), h11.EndOfMessage):
            pass
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))]
        connection.send(h11.Response(status_code=202, headers=headers))
        connection.send(h11.Data(data=ANSWER))
        connection.send(h11.EndOfMessage())
    return (time.perf_counter() - started) / CYCLES


def main() -> None:
    try:
        import h11  # noqa: F401
    except ImportError:
        h11_available = False
    else:
        h11_available = True
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(7):
        ours.append(asyncio.run(_holdfast()))
        if h11_available:
            theirs.append(_h11())
    print(f"holdfast.http11 (strict): {statistics.median(ours) * 1e6:6.1f} us per request cycle")
    if theirs:
        ratio = statistics.median(theirs) / statistics.median(ours)
        print(
            f"h11:                      {statistics.median(theirs) * 1e6:6.1f} us per request"
            f" cycle ({ratio:.1f}x)"
        )
    else:
        print("h11 is not installed: pip install h11 for the comparison")


if __name__ == "__main__":
    main()
