"""A minimal custom runtime for the emulator tests (awslambdaric cannot stream).

`python mini_runtime.py module.function` from this directory. Buffered and streamed responses
(a handler returning a generator streams, with error trailers if it raises), plus, on request:
an internal extension (`MINI_EXTENSION=1`) and a SIGTERM handler that records the signal in
`$MINI_SIGTERM_FILE` before exiting.
"""

import base64
import http.client
import importlib
import inspect
import json
import os
import signal
import socket
import sys
import threading
import time

from lambda_api import call, next_event, register

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
HOST, PORT = API.split(":")
RUNTIME = "/2018-06-01/runtime"
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"


class Context:
    def __init__(self, response):
        self.aws_request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = response.getheader("Lambda-Runtime-Invoked-Function-Arn")
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.client_context = None
        self._deadline = int(response.getheader("Lambda-Runtime-Deadline-Ms"))

    def get_remaining_time_in_millis(self):
        return self._deadline - int(time.time() * 1000)


def _stream(request_id, chunks):
    sock = socket.create_connection((HOST, int(PORT)))
    head = (
        f"POST {RUNTIME}/invocation/{request_id}/response HTTP/1.1\r\n"
        f"Host: {API}\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
        f"Content-Type: {os.environ.get('MINI_STREAM_CONTENT_TYPE', HTTP_INTEGRATION)}\r\n\r\n"
    )
    sock.sendall(head.encode())
    trailers = b""
    try:
        for chunk in chunks:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except Exception as exc:
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
        encoded = base64.b64encode(json.dumps(error).encode())
        trailers = (
            b"Lambda-Runtime-Function-Error-Type: Function.StreamError\r\n"
            b"Lambda-Runtime-Function-Error-Body: " + encoded + b"\r\n"
        )
    sock.sendall(b"0\r\n" + trailers + b"\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    sock.close()


def _internal_extension():
    identifier = register("mini-ext", ["INVOKE"])

    def loop():
        # A process-directed SIGTERM goes to any thread not blocking it; Python runs handlers
        # only in the main thread, which would sleep on in its /next if this one took it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        while True:
            next_event(identifier)

    threading.Thread(target=loop, daemon=True).start()


def _on_sigterm(signum, frame):
    with open(os.environ["MINI_SIGTERM_FILE"], "w") as file:
        file.write("SIGTERM")
    sys.exit(0)


def main():
    module, _, name = sys.argv[1].rpartition(".")
    sys.path.insert(0, os.getcwd())
    handler = getattr(importlib.import_module(module), name)
    if os.environ.get("MINI_SIGTERM_FILE"):
        signal.signal(signal.SIGTERM, _on_sigterm)
    if os.environ.get("MINI_EXTENSION"):
        _internal_extension()
    connection = http.client.HTTPConnection(API)
    while True:
        response, body = call("GET", f"{RUNTIME}/invocation/next", connection=connection)
        event = json.loads(body)
        context = Context(response)
        base = f"{RUNTIME}/invocation/{context.aws_request_id}"
        try:
            result = handler(event, context)
            if inspect.isgenerator(result):
                _stream(context.aws_request_id, result)
            else:
                call("POST", f"{base}/response", body=json.dumps(result), connection=connection)
        except Exception as exc:
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
            headers = {"Lambda-Runtime-Function-Error-Type": f"Function.{type(exc).__name__}"}
            call("POST", f"{base}/error", headers, json.dumps(error), connection)


if __name__ == "__main__":
    main()
