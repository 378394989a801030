"""Small ASGI apps for the adapter tests: one records what it was given, one answers what it
is told, and the Lambda context object they receive."""

from __future__ import annotations


class LambdaContext:
    """The parts of Lambda's context object holdfast reads."""

    function_name = "holdfast-test"
    memory_limit_in_mb = 128

    def __init__(self, request_id: str = "4d8a6c1e-req-0001") -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


async def serve_lifespan(receive, send, on_startup=None):
    """Play the app's side of the lifespan protocol; ``on_startup()`` runs at startup."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if on_startup is not None:
                on_startup()
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


class Recorder:
    """An ASGI app that keeps every request's scope and body and answers ``200 ok``."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.lifespans = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            self.lifespans += 1
            await serve_lifespan(receive, send)
            return
        body = await read_body(receive)
        self.requests.append((scope, body))
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    @property
    def scope(self) -> dict:
        return self.requests[-1][0]

    @property
    def body(self) -> bytes:
        return self.requests[-1][1]


def responder(status=200, headers=(), chunks=(b"",)):
    """An ASGI app answering every request with ``status``, ``headers`` and the body ``chunks``
    (one ``http.response.body`` message each)."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await read_body(receive)
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


#: The context headers holdfast sets from the event and context (tested on their own).
PLATFORM_HEADERS = frozenset(
    {b"x-amzn-request-context", b"x-amzn-lambda-context", b"x-amz-tenant-id"}
)


def client_headers(scope) -> list[tuple[bytes, bytes]]:
    """The scope's headers without the platform context headers: what the client sent."""
    return [(name, value) for name, value in scope["headers"] if name not in PLATFORM_HEADERS]
