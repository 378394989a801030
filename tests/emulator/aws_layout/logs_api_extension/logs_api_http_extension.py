#!/usr/bin/env python3
"""A Logs API extension in the sample's shape: its name is its file name; it listens, subscribes
to the Logs API (`http://sandbox:PORT`, or 0.0.0.0 under AWS SAM's local mode) for platform and
function logs, and at each event writes the batches received meanwhile to `$EXT_LOG`."""

import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from queue import Queue
from threading import Thread

NAME = os.path.basename(__file__)
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
PORT = int(os.environ["LISTENER_PORT"])
ADDRESS = "0.0.0.0" if os.getenv("AWS_SAM_LOCAL") == "true" else "sandbox"


def call(method, path, body, headers):
    request = urllib.request.Request(f"http://{API}{path}", data=body, method=method)
    for key, value in headers.items():
        request.add_header(key, value)
    with urllib.request.urlopen(request) as response:
        return response.status, dict(response.headers), response.read()


def listen(queue):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            queue.put(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", PORT), Handler)
    Thread(target=server.serve_forever, daemon=True).start()


def main():
    queue = Queue()
    registration = json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode()
    _, headers, _ = call(
        "POST", "/2020-01-01/extension/register", registration, {"Lambda-Extension-Name": NAME}
    )
    extension_id = headers["Lambda-Extension-Identifier"]
    listen(queue)
    subscription = {
        "destination": {"protocol": "HTTP", "URI": f"http://{ADDRESS}:{PORT}"},
        "types": ["platform", "function"],
        "buffering": {"timeoutMs": 1000, "maxBytes": 262144, "maxItems": 10000},
    }
    status, _, body = call(
        "PUT",
        "/2020-08-15/logs",
        json.dumps(subscription).encode(),
        {"Lambda-Extension-Identifier": extension_id, "Content-Type": "application/json"},
    )
    if status != 200:
        print(f"Could not subscribe to Logs API: {status} {body}", flush=True)
        sys.exit(1)
    while True:
        _, _, body = call(
            "GET",
            "/2020-01-01/extension/event/next",
            None,
            {"Lambda-Extension-Identifier": extension_id},
        )
        event = json.loads(body)
        with open(os.environ["EXT_LOG"], "a") as log:
            while not queue.empty():
                log.write(json.dumps(queue.get_nowait()) + "\n")
        if event["eventType"] == "SHUTDOWN":
            sys.exit(0)


if __name__ == "__main__":
    main()
