"""A real moto_server for the tests (and bench/tasks.py) that need SQS, DynamoDB or
CloudFormation: on a free 127.0.0.1 port, with dummy credentials in the environment; and the
SQS event Lambda's poller would build from messages received there.

Importable by name from every test directory (see tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping

REGION = "us-east-1"
#: Dummy credentials, and no user configuration that could point boto3 anywhere else.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_server(env: Mapping[str, str] = AWS_ENV) -> Iterator[str]:
    """Run moto_server, yielding its endpoint; ``env`` is set in ``os.environ`` meanwhile (boto3
    here and in the processes the tests start use it), then restored."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint, process)
        yield endpoint
    finally:
        process.kill()
        process.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """The event Lambda's SQS poller would send for ``messages`` (as ``receive_message`` returned
    them, with ``AttributeNames`` and ``MessageAttributeNames`` ``["All"]``)."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    name: {"stringValue": value.get("StringValue"), "dataType": "String"}
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def _wait_until_up(endpoint: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto server exited")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto server did not start")
