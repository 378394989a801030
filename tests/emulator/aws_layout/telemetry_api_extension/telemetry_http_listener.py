"""The HTTP listener Telemetry API batches are posted to, on a thread; each batch is queued.

Under AWS SAM's local mode (`AWS_SAM_LOCAL`) the sample's listener is on 0.0.0.0 and subscribes
with that address; this one listens on 127.0.0.1 only but subscribes the same way. Requests are
logged to stderr, as `BaseHTTPRequestHandler` does by default: every delivered batch makes an
`extension` log line, which is itself telemetry.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Event, Thread

ADDRESS = "0.0.0.0" if os.getenv("AWS_SAM_LOCAL") else "sandbox.localdomain"
BIND = "127.0.0.1" if os.getenv("AWS_SAM_LOCAL") else ADDRESS
PORT = int(os.environ["LISTENER_PORT"])


def start_http_listener(queue):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            content = self.rfile.read(length)
            self.send_response(200)
            self.end_headers()
            queue.put(json.loads(content.decode("utf-8")))

    server = HTTPServer((BIND, PORT), Handler)
    started = Event()

    def serve():
        started.set()
        server.serve_forever()

    Thread(target=serve, daemon=True).start()
    if not started.wait(timeout=9):
        raise RuntimeError("the listener thread did not start")
    return f"http://{ADDRESS}:{PORT}"
