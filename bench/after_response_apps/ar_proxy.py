"""The Lambda Web Adapter architecture: ``awslambdaric ar_proxy.handler`` forwarding to uvicorn.

At import, uvicorn starts serving the app on a free 127.0.0.1 port in a background thread (the
import waits until it accepts connections). ``handler(event, context)`` turns the Function URL
(payload 2.0) event into a real HTTP request over one kept-alive connection, adds the request id
as ``x-amzn-request-id``, and returns uvicorn's answer as a 2.0 response as soon as it has it —
so the environment freezes while a background task still runs; it resumes on the next thaw.
"""

import base64
import http.client
import socket
import threading
import time

import uvicorn
from ar_app import app

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}
)
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def _start_server() -> int:
    # proto=IPPROTO_TCP, as uvicorn's own sockets have it: asyncio sets TCP_NODELAY on accepted
    # connections only then (with proto 0, Nagle + delayed ACKs add ~40 ms to every answer).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        if server.started:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                pass
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.005)


PORT = _start_server()
_connection: http.client.HTTPConnection | None = None


def _send(
    method: str, target: str, body: bytes | None, headers: dict[str, str]
) -> http.client.HTTPResponse:
    global _connection
    for attempt in range(2):
        reused = _connection is not None
        if _connection is None:
            _connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        try:
            _connection.request(method, target, body=body, headers=headers)
            return _connection.getresponse()
        except (http.client.HTTPException, OSError):
            _connection.close()
            _connection = None
            if not reused or attempt:  # only a stale kept-alive connection is worth a retry
                raise
    raise AssertionError("unreachable")


def handler(event, context):
    target = event.get("rawPath") or "/"
    if event.get("rawQueryString"):
        target += "?" + event["rawQueryString"]
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    headers["x-amzn-request-id"] = context.aws_request_id
    body = event.get("body")
    if body is not None:
        body = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    response = _send(event["requestContext"]["http"]["method"], target, body, headers)
    payload = response.read()

    out_headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in response.getheaders():
        name = name.lower()
        if name == "set-cookie":
            cookies.append(value)
        elif name not in _HOP_BY_HOP:
            out_headers[name] = f"{out_headers[name]},{value}" if name in out_headers else value
    content_type = out_headers.get("content-type", "")
    result = {"statusCode": response.status, "headers": out_headers, "cookies": cookies}
    if content_type.startswith(_TEXT_TYPES):
        try:
            return {**result, "body": payload.decode(), "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {**result, "body": base64.b64encode(payload).decode(), "isBase64Encoded": True}
