"""Handlers the emulator tests run, under awslambdaric or under `mini_runtime.py`.

Each is a plain `def handler(event, context)`; they coordinate with the tests through files
(paths passed in the event), never through timing.
"""

import base64
import json
import os
import sys
import threading
import time
from pathlib import Path

_ticker: threading.Thread | None = None


def echo(event, context):
    """The event and what the runtime learned about the invocation."""
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory_limit_in_mb": str(context.memory_limit_in_mb),
        "invoked_function_arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client_context": getattr(context.client_context, "custom", None),
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "runtime_api": os.environ.get("AWS_LAMBDA_RUNTIME_API"),
        "region": os.environ.get("AWS_REGION"),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
    }


def fail(event, context):
    raise ValueError("boom")


def crash(event, context):
    os._exit(int(event.get("code", 1)))


def sleep(event, context):
    time.sleep(float(event["seconds"]))
    return {"pid": os.getpid()}


def big(event, context):
    return "x" * int(event["size"])


def ticker(event, context):
    """Leave a thread behind that appends a line to event["path"] every 10 ms."""
    global _ticker
    if _ticker is None:
        path = Path(event["path"])

        def tick() -> None:
            count = 0
            while True:
                count += 1
                with path.open("a") as file:
                    file.write(f"{count}\n")
                time.sleep(0.01)

        _ticker = threading.Thread(target=tick, daemon=True)
        _ticker.start()
    if event.get("await_tick"):
        # Inside an invocation the environment is thawed: the thread must be ticking again.
        path = Path(event["path"])
        before = _line_count(path)
        for _ in range(2000):
            if _line_count(path) > before:
                return {"pid": os.getpid(), "resumed": True}
            time.sleep(0.01)
        return {"pid": os.getpid(), "resumed": False}
    return {"pid": os.getpid()}


def _line_count(path):
    return path.read_text().count("\n") if path.exists() else 0


def barrier(event, context):
    """Announce ourselves in event["mine"], then wait for the other invocation's file."""
    Path(event["mine"]).write_text(str(os.getpid()))
    other = Path(event["other"])
    for _ in range(2000):
        if other.exists():
            return {"pid": os.getpid(), "met": True}
        time.sleep(0.01)
    return {"pid": os.getpid(), "met": False}


def attempts(event, context):
    """Record each attempt; fail while event["fail"] is true."""
    with open(event["path"], "a") as file:
        file.write(context.aws_request_id + "\n")
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return "ok"


def http(event, context):
    """An HTTP handler for every integration; the path picks the answer."""
    path = event.get("rawPath") or event.get("path")
    if path == "/error":
        raise RuntimeError("handler failed")
    if path == "/plain":
        return {"hello": "world"}
    if path == "/malformed":
        return {"statusCode": "not a number"}
    if path == "/split":  # a route reflecting a query value into a header: response splitting
        return {"statusCode": 200, "headers": {"x-q": "a\r\nSet-Cookie: evil=1"}, "body": "x"}
    if path == "/binary":
        body = base64.b64encode(b"\x00\x01\xfe\xff").decode()
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": body,
            "isBase64Encoded": True,
        }
    response = {
        "statusCode": 201,
        "statusDescription": "201 Created",
        "headers": {"content-type": "application/json", "x-handler": "yes"},
        "body": json.dumps(event),
    }
    if event.get("version") == "2.0":
        response["cookies"] = ["a=1", "b=2"]
    else:
        response["multiValueHeaders"] = {"set-cookie": ["a=1", "b=2"], "x-handler": ["yes"]}
    return response


def stream_http(event, context):
    """(mini_runtime) A streamed HTTP response: prelude, one chunk, a pause, the rest.

    Between the chunks it waits for the file event["go"] names (the test creates it once it has
    read the first chunk), so the test can prove the first chunk arrived before the rest existed.
    """
    go = Path(json.loads(event.get("body") or "{}").get("go", "/nonexistent"))
    prelude = {"statusCode": 207, "headers": {"x-streamed": "yes"}, "cookies": ["s=1"]}
    yield json.dumps(prelude).encode() + b"\0" * 8
    yield b"first chunk;"
    for _ in range(2000):
        if go.exists():
            break
        time.sleep(0.01)
    yield b"second chunk"


def stream_fail(event, context):
    """(mini_runtime) A stream that fails after its first bytes."""
    yield json.dumps({"statusCode": 200}).encode() + b"\0" * 8
    yield b"partial"
    raise RuntimeError("failed mid-stream")


def spawn(event, context):
    """Start a child process and leave it running (unless event["spawn"] is false)."""
    import subprocess

    if event.get("spawn") is False:
        return {"pid": os.getpid()}
    child = subprocess.Popen(["sleep", "60"])
    return {"pid": os.getpid(), "child": child.pid}


def gate(event, context):
    """Mark our start in event["started"], then wait until the file event["gate"] exists."""
    Path(event["started"]).write_text(context.aws_request_id)
    gate_file = Path(event["gate"])
    for _ in range(3000):
        if gate_file.exists():
            break
        time.sleep(0.01)
    return {"pid": os.getpid()}


def shout(event, context):
    """Print `event["lines"]` numbered lines (default 3), then answer."""
    for number in range(int(event.get("lines", 3))):
        print(f"line {number} of {context.aws_request_id}")
    return {"request_id": context.aws_request_id, "tenant_id": getattr(context, "tenant_id", None)}


def environment(event, context):
    """Selected environment variables, and who we are."""
    names = event.get("names", ["AWS_LAMBDA_MAX_CONCURRENCY", "AWS_LAMBDA_INITIALIZATION_TYPE"])
    return {
        "env": {name: os.environ.get(name) for name in names},
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
    }


def xoptions(event, context):
    """The interpreter's `-X` options (a wrapper script may have added some)."""
    return {"xoptions": sorted(sys._xoptions)}
