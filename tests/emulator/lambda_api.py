"""A tiny Runtime/Extensions API client shared by the tests' runtime and extensions."""

import http.client
import json
import os

EXTENSION = "/2020-01-01/extension"


def call(method, path, headers=None, body=None, connection=None):
    """One request to $AWS_LAMBDA_RUNTIME_API; returns (response, body bytes)."""
    connection = connection or http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response, response.read()


def register(name, events):
    """Register an extension; returns its identifier."""
    response, _ = call(
        "POST",
        f"{EXTENSION}/register",
        {"Lambda-Extension-Name": name},
        json.dumps({"events": events}),
    )
    assert response.status == 200, response.status
    return response.getheader("Lambda-Extension-Identifier")


def next_event(identifier):
    """Block until the extension's next event and return it."""
    _, body = call("GET", f"{EXTENSION}/event/next", {"Lambda-Extension-Identifier": identifier})
    return json.loads(body)
