"""The trivial ASGI app bench/proxy_transport.py serves with uvicorn: ``GET /plain`` answers a
small JSON document, with nothing of a framework in the way (the transport alone is measured)."""

BODY = b'{"ok":true}'


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})
