"""An external extension that subscribes to the Telemetry API, as a user's would.

Started through an executable wrapper named `$EXT_NAME`. It listens on 127.0.0.1 (its
subscription names `sandbox.localdomain`, which the emulator maps there), subscribes with the
buffering in `$TELEMETRY_BUFFERING` (JSON) to the types in `$TELEMETRY_TYPES`, over HTTP or
(`$TELEMETRY_PROTOCOL=TCP`) NDJSON, and appends each batch it is sent to `$EXT_LOG` (one JSON
array a line; over TCP each event is its own "batch"). For each INVOKE it holds the invocation
until `platform.runtimeDone` for that request id has arrived, as an extension that ends an
invocation on runtimeDone does. On SHUTDOWN it waits (briefly) for the last `platform.report`,
then exits.
"""

import http.server
import json
import os
import socketserver
import sys
import threading
import time

from lambda_api import call, next_event, register

LOG = os.environ["EXT_LOG"]
received = []
condition = threading.Condition()


def take(batch):
    with condition:
        with open(LOG, "a") as log:
            log.write(json.dumps(batch) + "\n")
        received.extend(batch)
        condition.notify_all()


class Listener(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        take(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):  # quiet: our own output would become `extension` events
        pass


def wait_for(kind, request_id, limit):
    deadline = time.monotonic() + limit
    with condition:
        while not any(
            e["type"] == kind and e["record"].get("requestId") == request_id for e in received
        ):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            condition.wait(left)
    return True


class LineListener(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:  # NDJSON: one event a line
            take([json.loads(line)])


PROTOCOL = os.environ.get("TELEMETRY_PROTOCOL", "HTTP")
if PROTOCOL == "TCP":
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), LineListener)
    server.daemon_threads = True
    uri_scheme = ""
else:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    uri_scheme = "http://"
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

identifier = register(os.environ["EXT_NAME"], ["INVOKE", "SHUTDOWN"])
print(f"telemetry extension listening on {port}", flush=True)
subscription = {
    "schemaVersion": "2022-12-13",
    "types": json.loads(os.environ.get("TELEMETRY_TYPES", '["platform", "function", "extension"]')),
    "buffering": json.loads(os.environ.get("TELEMETRY_BUFFERING", '{"timeoutMs": 25}')),
    "destination": {
        "protocol": PROTOCOL,
        "URI": f"{uri_scheme}sandbox.localdomain:{port}" + ("/telemetry" if uri_scheme else ""),
    },
}
response, body = call(
    "PUT",
    "/2022-07-01/telemetry",
    {"Lambda-Extension-Identifier": identifier, "Content-Type": "application/json"},
    json.dumps(subscription),
)
assert response.status == 200, (response.status, body)

last = None
while True:
    event = next_event(identifier)
    if event["eventType"] == "SHUTDOWN":
        if last is not None:
            wait_for("platform.report", last, 1.5)
        sys.exit(0)
    last = event["requestId"]
    if os.environ.get("TELEMETRY_HOLD", "1") == "1":
        held = wait_for("platform.runtimeDone", last, 30)
        with condition, open(LOG, "a") as log:
            log.write(json.dumps({"held": last, "runtime_done_arrived": held}) + "\n")
