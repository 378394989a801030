"""The `--port` listener: the RIE-style Invoke API and the HTTP front, over real HTTP."""

import base64
import json
import logging
import socket

import httpx
import pytest
from emulator_support import ric

INVOKE = "/2015-03-31/functions/function/invocations"


def test_v2_http_front(emulators):
    emu = emulators(ric("http"))
    with httpx.Client(base_url=emu.url) as client:
        response = client.get("/items/a%20b?x=1&x=2", headers={"Cookie": "c=3; d=4"})
        assert response.status_code == 201
        assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
        assert response.headers["x-handler"] == "yes"
        assert response.headers["x-amzn-requestid"]
        event = response.json()
        assert event["rawPath"] == "/items/a%20b"
        assert event["rawQueryString"] == "x=1&x=2"
        assert event["queryStringParameters"] == {"x": "1,2"}
        assert event["cookies"] == ["c=3", "d=4"]
        assert event["requestContext"]["http"]["method"] == "GET"

        posted = client.post("/upload", content=b"\x00\x01", headers={"content-type": "image/png"})
        assert posted.json()["isBase64Encoded"] is True
        assert base64.b64decode(posted.json()["body"]) == b"\x00\x01"

        plain = client.get("/plain")
        assert (plain.status_code, plain.json()) == (200, {"hello": "world"})
        binary = client.get("/binary")
        assert binary.content == b"\x00\x01\xfe\xff"
        assert binary.headers["content-type"] == "application/octet-stream"
        for broken in ("/malformed", "/error"):
            failed = client.get(broken)
            assert (failed.status_code, failed.json()) == (
                502,
                {"message": "Internal Server Error"},
            )


def test_v1_http_front(emulators):
    emu = emulators(ric("http"), event_format="v1")
    with httpx.Client(base_url=emu.url) as client:
        response = client.get("/items?x=1&x=2")
        assert response.status_code == 201
        assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
        event = response.json()
        assert event["resource"] == "/{proxy+}" and event["path"] == "/items"
        assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
        assert event["requestContext"]["stage"] == "prod"
        failed = client.get("/error")
        assert (failed.status_code, failed.json()) == (502, {"message": "Internal server error"})


def test_alb_http_front_multi_value(emulators):
    emu = emulators(ric("http"), event_format="alb", alb_multi_value=True)
    with httpx.Client(base_url=emu.url) as client:
        response = client.get("/q?a=%20b&a=c")
        assert response.status_code == 201, "statusDescription is ignored"
        assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
        event = response.json()
        assert event["multiValueQueryStringParameters"] == {"a": ["%20b", "c"]}
        assert "elb" in event["requestContext"]
        failed = client.get("/error")
        assert failed.status_code == 502 and "502 Bad Gateway" in failed.text


def test_invoke_api(emulators):
    emu = emulators(ric("echo"))
    with httpx.Client(base_url=emu.url) as client:
        context = base64.b64encode(json.dumps({"custom": {"who": "me"}}).encode()).decode()
        ok = client.post(INVOKE, content=b'{"a": 1}', headers={"X-Amz-Client-Context": context})
        assert ok.status_code == 200 and "x-amz-function-error" not in ok.headers
        assert ok.json()["event"] == {"a": 1}
        assert ok.json()["client_context"] == {"who": "me"}
        assert ok.headers["x-amz-executed-version"] == "$LATEST"

        bad_json = client.post(INVOKE, content=b"{nope")
        assert bad_json.status_code == 400
        assert bad_json.headers["x-amzn-errortype"] == "InvalidRequestContentException"
        assert "Could not parse request body into json" in bad_json.json()["message"]
        too_big = client.post(INVOKE, content=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
        assert too_big.status_code == 413
        assert too_big.headers["x-amzn-errortype"] == "RequestEntityTooLargeException"
        dry = client.post(INVOKE, content=b"{}", headers={"X-Amz-Invocation-Type": "DryRun"})
        assert dry.status_code == 204
        assert client.post(INVOKE, content=b"{}").status_code == 200, "connection still usable"


def test_invoke_api_function_error(emulators):
    emu = emulators(ric("fail"))
    response = httpx.post(emu.url + INVOKE, content=b"{}")
    assert response.status_code == 200
    assert response.headers["x-amz-function-error"] == "Unhandled"
    assert response.json()["errorType"] == "ValueError"


def test_async_invoke_is_retried_twice(emulators, tmp_path):
    emu = emulators(ric("attempts"), async_retry_delays=(0.01, 0.01))
    failing, passing = tmp_path / "failing", tmp_path / "passing"
    with httpx.Client(base_url=emu.url) as client:
        headers = {"X-Amz-Invocation-Type": "Event"}
        answer = client.post(INVOKE, json={"path": str(failing), "fail": True}, headers=headers)
        assert answer.status_code == 202 and answer.content == b""
        assert client.post(INVOKE, json={"path": str(passing)}, headers=headers).status_code == 202
    emu.wait_idle(60)
    attempts = failing.read_text().split()
    assert len(attempts) == 3, "one attempt and two retries"
    assert len(set(attempts)) == 1, "retries keep the request id"
    assert attempts[0] == answer.headers["x-amzn-requestid"]
    assert len(passing.read_text().split()) == 1


def test_tenant_id_reaches_awslambdaric_context(emulators):
    emu = emulators(ric("shout"))
    with httpx.Client(base_url=emu.url) as client:
        answer = client.post(INVOKE, json={"lines": 0}, headers={"X-Amz-Tenant-Id": "acme-1"})
        assert answer.json()["tenant_id"] == "acme-1"
        assert client.post(INVOKE, json={"lines": 0}).json()["tenant_id"] is None
        refused = client.post(INVOKE, json={}, headers={"X-Amz-Tenant-Id": "a b"})
        assert refused.status_code == 400
        assert refused.headers["x-amzn-errortype"] == "InvalidParameterValueException"


def test_forwarded_headers_as_the_services_add_them(emulators):
    emu = emulators(ric("http"), event_format="v1")
    port = int(emu.url.rsplit(":", 1)[1])
    spoofed = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "gopher",
        "X-Forwarded-Port": "1",
    }
    with httpx.Client(base_url=emu.url) as client:
        event = client.get("/items", headers=spoofed).json()
        assert event["multiValueHeaders"]["X-Forwarded-For"] == ["203.0.113.9, 127.0.0.1"]
        assert event["multiValueHeaders"]["X-Forwarded-Proto"] == ["http"]
        assert event["multiValueHeaders"]["X-Forwarded-Port"] == [str(port)]
        plain = client.get("/items").json()["headers"]
        assert plain["X-Forwarded-For"] == "127.0.0.1"
    emu = emulators(ric("http"))
    with httpx.Client(base_url=emu.url) as client:
        headers = client.get("/items", headers=spoofed).json()["headers"]
        assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-port"] == emu.url.rsplit(":", 1)[1]


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",  # not a hex size
        b"-5\r\nhello\r\n0\r\n\r\n",  # negative
        b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the chunk
        b"ffffffffffffffffffff\r\n",  # absurd size
        b"10\r\nshort",  # connection closed inside the chunk
        b"1" * (1024 * 1024 + 100),  # a size line longer than any line may be (1 MiB)
    ],
)
def test_malformed_chunked_request_gets_400_without_a_traceback(emulators, caplog, body):
    emu = emulators(ric("http"))
    host, port = emu.url.removeprefix("http://").split(":")
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with (
        caplog.at_level(logging.DEBUG, logger="holdfast.emulator"),
        socket.create_connection((host, int(port))) as connection,
    ):
        connection.sendall(head + body)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the emulator's log"
    assert httpx.get(emu.url + "/plain").json() == {"hello": "world"}, "still serving"


def test_overlong_request_line_gets_400(emulators, caplog):
    emu = emulators(ric("http"))
    host, port = emu.url.removeprefix("http://").split(":")
    with (
        caplog.at_level(logging.DEBUG),
        socket.create_connection((host, int(port))) as connection,
    ):
        # Longer than any line may be (1 MiB); sent whole, so the server has read all of it.
        connection.sendall(b"GET /" + b"a" * (1024 * 1024 + 100))
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("event_format", ["v2", "v1", "alb"])
def test_a_response_header_that_would_split_the_answer_is_refused(emulators, caplog, event_format):
    emu = emulators(ric("http"), event_format=event_format)
    with caplog.at_level(logging.INFO):
        response = httpx.get(emu.url + "/split")
    assert response.status_code == 502
    assert "set-cookie" not in response.headers and "x-q" not in response.headers
    [refusal] = [r for r in caplog.records if "is not valid HTTP" in r.getMessage()]
    assert "x-q" in refusal.getMessage() and not refusal.exc_info


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /upload HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nab",  # a digit to isdigit()
        b"POST /upload HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET /plain HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
        b"GET /plain HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        b"G\x01ET /plain HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /plain HTTP/1.1\r\nX-A: a\r\n folded\r\n\r\n",
        b"GET /plain HTTP/1.1\r\nX-A: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["unicode-digit", "two-lengths", "nul", "bare-cr", "control-method", "obs-fold", "huge"],
)
def test_broken_http_at_the_front_gets_400_and_no_traceback(emulators, caplog, raw):
    emu = emulators(ric("http"))
    host, port = emu.url.removeprefix("http://").split(":")
    with (
        caplog.at_level(logging.DEBUG),
        socket.create_connection((host, int(port))) as connection,
    ):
        connection.sendall(raw)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert httpx.get(emu.url + "/plain").json() == {"hello": "world"}, "still serving"
