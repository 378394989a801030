"""A Flask app behind the standard library's WSGI server, with holdfast's WSGI completion
middleware; started as `python wsgi_server.py PORT` by `holdfast proxy` in the tests.

`GET /work` answers at once; the 300 ms that follow run in Werkzeug's `call_on_close`, i.e. when
the server closes the response after sending it (Flask's way to work after a response). The
finish time goes to HOLDFAST_TEST_RECORD.
"""

import os
import sys
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Flask, jsonify, request

from holdfast.completion import WSGICompletionMiddleware

flask_app = Flask(__name__)


@flask_app.get("/work")
def work():
    request_id = request.headers["holdfast-request-id"]

    def finish() -> None:
        time.sleep(0.3)
        with open(os.environ["HOLDFAST_TEST_RECORD"], "a") as record:
            record.write(f"task {request_id} {time.monotonic()}\n")

    response = jsonify(request_id=request_id)
    response.call_on_close(finish)
    return response


app = WSGICompletionMiddleware(flask_app)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    server = make_server(
        "127.0.0.1", int(sys.argv[1]), app, server_class=_Server, handler_class=_Quiet
    )
    server.serve_forever()
