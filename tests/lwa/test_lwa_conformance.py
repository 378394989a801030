"""The Lambda Web Adapter's test-pinned behaviour (lwa-compat.md §11), walked against each way
holdfast runs an app, under `holdfast emulate` (a local Lambda that freezes):

* ``run``: ``holdfast run conformance_app:app`` — the app in-process, holdfast's runtime;
* ``proxy``: ``holdfast proxy -- uvicorn conformance_app:app`` — the app in its own server;
* ``awslambdaric``: ``handler = holdfast.Adapter(app)`` under AWS's unmodified runtime client
  (buffered only: the managed Python runtime cannot stream).

Settings come from LWA's variables (``AWS_LWA_*``), as a migrated function has them. Parsing
details (status lists, durations, flags, aliases) are pinned by test_lwa_config.py; here each
checklist item is observed end to end: what reaches the app, and what Lambda's caller gets.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from holdfast.emulator import ThreadedEmulator

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "fixtures" / "events"
TEXT = "Hello World! This body is long enough to be compressed, ok?"

SETTINGS = {
    "AWS_LWA_ERROR_STATUS_CODES": "502, 504",
    "AWS_LWA_REMOVE_BASE_PATH": "/api/",
    "AWS_LWA_AUTHORIZATION_SOURCE": "X-Custom-Auth",
    "AWS_LWA_ENABLE_COMPRESSION": "true",
    "AWS_LWA_READINESS_CHECK_PATH": "/health",
    # In-process, the Web Adapter's context headers are asked for (the proxy always sends them).
    "HOLDFAST_CONTEXT_HEADERS": "true",
}


def command(host: str) -> list[str]:
    if host == "run":
        return [sys.executable, "-m", "holdfast", "run", "conformance_app:app"]
    if host == "awslambdaric":
        return [sys.executable, "-m", "awslambdaric", "conformance_handler.handler"]
    # Each execution environment starts its own copy of the command; on Lambda each has its own
    # loopback, here they share one: every copy picks a free port for its app.
    script = (
        'port=$("$0" -c "import socket; s = socket.socket(); s.bind((\'127.0.0.1\', 0));'
        ' print(s.getsockname()[1])") && exec "$0" -m holdfast proxy --port "$port" --'
        ' "$0" -m uvicorn conformance_app:app --port "$port" --log-level warning'
    )
    return ["/bin/sh", "-c", script, sys.executable]


def start(host: str, env: dict[str, str] | None = None, **options) -> ThreadedEmulator:
    options.setdefault("timeout", 30)
    options.setdefault("init_timeout", 30)
    options.setdefault("log", lambda line: None)
    emulator = ThreadedEmulator(
        command(host), cwd=str(HERE), env={**SETTINGS, **(env or {})}, **options
    )
    emulator.start()
    return emulator


@pytest.fixture(scope="module", params=["run", "proxy", "awslambdaric"])
def function(request):
    emulator = start(request.param, concurrency=4)
    yield emulator
    emulator.close()


@pytest.fixture(scope="module", params=["run", "proxy"])
def streaming(request):
    emulator = start(
        request.param, {"AWS_LWA_INVOKE_MODE": "response_stream"}, invoke_mode="response_stream"
    )
    yield emulator
    emulator.close()


# -- talking to the function --------------------------------------------------------------------
def request(emulator, method, path, body=None, headers=None):
    host, port = emulator.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def echo(emulator, method="GET", path="/echo", body=None, headers=None):
    status, _, data = request(emulator, method, path, body, headers)
    assert status == 200, data
    return json.loads(data)


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def http_api_event(path, headers=None, query=""):
    event = fixture("apigateway-http-api")
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "GET"
    event["requestContext"]["stage"] = "$default"
    event["rawQueryString"] = query
    event["headers"] = headers or {}
    event.pop("cookies", None)
    event.pop("body", None)
    return event


def invoke(emulator, event):
    return emulator.invoke(event)


def header_values(document, name):
    return [value for key, value in document["headers"] if key == name]


# -- 6. paths and queries -------------------------------------------------------------------------
def test_non_ascii_path_is_percent_encoded(function):
    # An HTTP API delivers the path decoded; the app gets it encoded (LWA test_http_path_encoding).
    result = invoke(function, http_api_event("/Año_1234")).json()
    document = json.loads(result["body"])
    assert document["raw_path"] == "/A%C3%B1o_1234"


def test_query_is_forwarded_and_an_empty_one_adds_nothing(function):
    assert echo(function, path="/echo?foo=bar&fizz=buzz")["query"] == "foo=bar&fizz=buzz"
    assert echo(function, path="/echo")["query"] == ""


def test_plus_in_a_rest_api_query_survives(function):
    event = fixture("apigateway-aws-proxy")
    event["httpMethod"] = "GET"
    event["path"] = "/echo"
    event["requestContext"]["path"] = "/prod/echo"
    event["headers"], event["multiValueHeaders"] = {}, {}  # no Accept-Encoding: plain JSON back
    event["queryStringParameters"] = {"q": "a+b c"}
    event["multiValueQueryStringParameters"] = {"q": ["a+b c"]}
    event["body"] = None
    result = invoke(function, event).json()
    assert json.loads(result["body"])["query"] == "q=a%2Bb+c"


# -- 7. verbs and bodies ----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_verbs(function, method):
    assert echo(function, method)["method"] == method


@pytest.mark.parametrize(
    "body",
    [b'{"name": "holdfast"}', b"", bytes([0x00, 0x01, 0x02, 0xFF, 0xFE, 0x89, 0x50, 0x4E, 0x47])],
    ids=["json", "empty", "binary"],
)
def test_request_bodies(function, body):
    assert echo(function, "POST", body=body)["body"] == body.hex()


def test_multi_value_headers_are_all_forwarded(function):
    event = fixture("apigateway-aws-proxy")
    event["httpMethod"] = "GET"
    event["path"] = "/echo"
    event["requestContext"]["path"] = "/prod/echo"
    event["body"] = None
    event["multiValueHeaders"] = {"X-Multi": ["one", "two"], "Host": ["example.com"]}
    event["headers"] = {"X-Multi": "two", "Host": "example.com"}
    document = json.loads(invoke(function, event).json()["body"])
    assert header_values(document, "x-multi") == ["one", "two"]


# -- 8 and 15. platform context headers -------------------------------------------------------
def test_context_headers_are_present_single_and_not_spoofable(function):
    forged = {
        "x-amzn-request-context": '{"forged": true}',
        "x-amzn-lambda-context": '{"request_id": "forged"}',
        "x-amz-tenant-id": "forged",
    }
    event = http_api_event("/echo", headers=forged)
    result = function.invoke(event)
    document = json.loads(result.json()["body"])
    [request_context] = header_values(document, "x-amzn-request-context")
    [lambda_context] = header_values(document, "x-amzn-lambda-context")
    assert json.loads(request_context) == event["requestContext"]
    context = json.loads(lambda_context)
    assert context["request_id"] == result.request_id
    assert isinstance(context["deadline"], int) and context["deadline"] > 0
    assert context["invoked_function_arn"].startswith("arn:aws:lambda:")
    assert header_values(document, "x-amz-tenant-id") == []  # forged copy gone, none given


def test_tenant_id_header_from_the_invocation(function):
    result = function.invoke(http_api_event("/echo"), tenant_id="tenant-42")
    document = json.loads(result.json()["body"])
    assert header_values(document, "x-amz-tenant-id") == ["tenant-42"]
    [lambda_context] = header_values(document, "x-amzn-lambda-context")
    assert json.loads(lambda_context)["tenant_id"] == "tenant-42"


def test_control_bytes_never_reach_the_context_headers(function):
    event = http_api_event("/echo")
    event["requestContext"]["http"]["userAgent"] = "scanner\x01\x7f"
    document = json.loads(function.invoke(event).json()["body"])
    [request_context] = header_values(document, "x-amzn-request-context")
    assert not any(ord(char) < 0x20 or ord(char) == 0x7F for char in request_context)
    assert json.loads(request_context)["http"]["userAgent"] == "scanner\x01\x7f"


# -- 9. response bodies -----------------------------------------------------------------------
def test_json_suffix_content_type_is_returned_as_text(function):
    result = invoke(function, http_api_event("/graphql")).json()
    assert result["isBase64Encoded"] is False
    assert json.loads(result["body"]) == {"data": {"x": 1}}


def test_binary_response_is_base64(function):
    result = invoke(function, http_api_event("/binary")).json()
    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == bytes([0, 1, 2, 255, 254])


# -- 10. error status codes ---------------------------------------------------------------------
def test_error_status_code_fails_the_invocation_with_status_and_body(function):
    result = invoke(function, http_api_event("/status/502"))
    assert result.function_error is not None
    error = result.json()
    assert error["errorType"] == "HTTPError.502"
    # LWA's message: {"statusCode":502,"body":"..."}
    assert json.loads(error["errorMessage"]) == {
        "statusCode": 502,
        "body": "status body status/502",
    }


def test_other_status_codes_pass_through(function):
    result = invoke(function, http_api_event("/status/404"))
    assert result.function_error is None
    assert result.json()["statusCode"] == 404


# -- 11. authorization source -------------------------------------------------------------------
def test_authorization_source_replaces_authorization(function):
    headers = {"X-Custom-Auth": "Bearer token", "Authorization": "AWS4-HMAC-SHA256 signature"}
    document = echo(function, headers=headers)
    assert header_values(document, "authorization") == ["Bearer token"]
    assert header_values(document, "x-custom-auth") == []


def test_missing_authorization_source_changes_nothing(function):
    document = echo(function, headers={"Authorization": "Basic abc"})
    assert header_values(document, "authorization") == ["Basic abc"]
    assert header_values(echo(function), "authorization") == []


# -- 12. base path --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "routed"),
    [
        ("/api/echo/data", "/echo/data"),
        ("/other/path", "/other/path"),
        ("/api", "/"),
        ("/apiorder", "/apiorder"),
        ("/api/api/order", "/api/order"),
    ],
)
def test_base_path_is_removed_once_on_a_segment_boundary(function, path, routed):
    document = echo(function, path=path)
    assert document["route_path"] == routed


# -- 5. compression -------------------------------------------------------------------------------
def test_compression_with_gzip(function):
    status, headers, body = request(function, "GET", "/text", headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert dict(headers).get("content-encoding") == "gzip"
    assert gzip.decompress(body).decode() == TEXT


def test_no_compression_without_accept_encoding(function):
    _, headers, body = request(function, "GET", "/text")
    assert "content-encoding" not in dict(headers)
    assert body.decode() == TEXT


def test_pre_compressed_body_is_untouched(function):
    _, headers, body = request(
        function, "GET", "/precompressed", headers={"Accept-Encoding": "gzip, br"}
    )
    assert dict(headers).get("content-encoding") == "gzip"
    assert gzip.decompress(body).decode() == TEXT


def test_event_stream_is_not_compressed(function):
    _, headers, body = request(
        function, "GET", "/events-stream", headers={"Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in dict(headers)
    assert body.decode().startswith("data: ")


def test_error_statuses_keep_a_readable_body(function):
    event = http_api_event("/status/504", headers={"accept-encoding": "gzip"})
    error = invoke(function, event).json()
    assert json.loads(error["errorMessage"])["body"] == "status body status/504"


# -- streaming (and 5: compression is off under it) -------------------------------------------
def test_streaming_delivers_the_chunks_uncompressed(streaming):
    status, headers, body = request(
        streaming, "GET", "/stream", headers={"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert "content-encoding" not in dict(headers)
    assert body == b"first\nsecond\n"


# -- 14. concurrency ------------------------------------------------------------------------------
def test_concurrent_requests_are_isolated(function):
    bodies = [f"body {index}".encode() * (index + 1) for index in range(4)]
    with ThreadPoolExecutor(4) as pool:
        documents = list(pool.map(lambda body: echo(function, "POST", "/slow", body), bodies))
    assert [document["body"] for document in documents] == [body.hex() for body in bodies]


# -- pass-through (§6) ------------------------------------------------------------------------
def test_non_http_event_is_posted_to_the_pass_through_path(function):
    event = fixture("sqs-receive-message")
    result = invoke(function, event)
    assert result.function_error is None
    assert result.json() == {"got": event}


# -- 2 and 13. readiness (proxy mode) -----------------------------------------------------------
def readiness_function(tmp_path, init_timeout=10, **env):
    record = tmp_path / "hits.txt"
    record.touch()
    emulator = start(
        "proxy", {"HOLDFAST_TEST_RECORD": str(record), **env}, init_timeout=init_timeout
    )
    return emulator, record


@pytest.mark.parametrize(
    ("health", "env", "ready"),
    # Every probe status against the healthy set is pinned in test_lwa_proxy_parts.py; here the
    # whole init: an unhealthy app fails it, a configured healthy set or TCP mode passes it.
    [
        ("403", {"AWS_LWA_READINESS_CHECK_HEALTHY_STATUS": "200-399"}, False),
        ("500", {"AWS_LWA_READINESS_CHECK_HEALTHY_STATUS": "200-599"}, True),
        ("500", {"AWS_LWA_READINESS_CHECK_PROTOCOL": "tcp"}, True),
    ],
    ids=["403-bad-when-configured", "500-ok-when-configured", "tcp"],
)
def test_readiness(tmp_path, health, env, ready):
    env = {"HOLDFAST_TEST_HEALTH": health, **env}
    init_timeout = 10
    if not ready:
        # Long enough for the app to start and answer the probe (unhealthy), even on a loaded
        # machine where uvicorn + FastAPI take seconds to import; the init limit stays above it.
        env["AWS_LWA_READINESS_CHECK_TIMEOUT_SECONDS"] = "12"
        init_timeout = 30
    emulator, record = readiness_function(tmp_path, init_timeout, **env)
    try:
        result = invoke(emulator, http_api_event("/echo"))
        if ready:
            assert result.function_error is None
        else:
            assert result.function_error is not None
            assert "/health" in record.read_text().splitlines()  # it was up, and unhealthy
    finally:
        emulator.close()


def test_async_init_ready_at_init_does_not_check_again(tmp_path):
    emulator, record = readiness_function(tmp_path, AWS_LWA_ASYNC_INIT="true")
    try:
        for _ in range(2):
            assert invoke(emulator, http_api_event("/echo")).function_error is None
        assert record.read_text().splitlines() == ["/health"]
    finally:
        emulator.close()
