"""A handler module whose import starts an internal extension that uses the Telemetry API from
inside the runtime process: it ends each INVOKE as soon as `platform.runtimeDone` for its
request id arrives (what an after-response extension does for an invocation it was never
handed). Each INVOKE it ended is appended to `$EXT_LOG` with whether runtimeDone came.
"""

import http.server
import json
import os
import threading

from lambda_api import call, next_event, register

_done = set()
_condition = threading.Condition()


class _Listener(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with _condition:
            for event in batch:
                if event["type"] == "platform.runtimeDone":
                    _done.add(event["record"]["requestId"])
            _condition.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _run(identifier):
    while True:
        request_id = next_event(identifier)["requestId"]
        with _condition:
            arrived = _condition.wait_for(lambda rid=request_id: rid in _done, timeout=30)
        with open(os.environ["EXT_LOG"], "a") as log:
            log.write(json.dumps({"ended": request_id, "runtime_done_arrived": arrived}) + "\n")


_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
threading.Thread(target=_server.serve_forever, daemon=True).start()
_identifier = register("after-response", ["INVOKE"])
_response, _body = call(
    "PUT",
    "/2022-07-01/telemetry",
    {"Lambda-Extension-Identifier": _identifier},
    json.dumps(
        {
            "schemaVersion": "2022-12-13",
            "types": ["platform"],
            "buffering": {"timeoutMs": 25},
            "destination": {
                "protocol": "HTTP",
                "URI": f"http://sandbox.localdomain:{_server.server_address[1]}/",
            },
        }
    ),
)
assert _response.status == 200, _body
threading.Thread(target=_run, args=(_identifier,), daemon=True).start()


def handler(event, context):
    """A handler that answers by itself (a warmer, say): nothing hands the invocation over."""
    return {"request_id": context.aws_request_id}
