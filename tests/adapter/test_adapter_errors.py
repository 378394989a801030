"""Errors: statuses turned into function errors (error_status_codes), app exceptions answered
with a plain 500 and logged, and events that are not HTTP events refused with InvalidEvent."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from adapter_apps import responder
from adapter_events import SOURCES, Request, event_with, function_url_event, load_event, rest_event

import holdfast
from holdfast.errors import FunctionError, HTTPStatusError

ALL = sorted(SOURCES)


def failing(status, body=b"upstream timed out"):
    return responder(status, [(b"content-type", b"text/plain")], [body])


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_listed_status_raises_a_function_error_named_after_it(source, status, make_adapter):
    handler = make_adapter(failing(status), error_status_codes="500,502-504")
    with pytest.raises(HTTPStatusError) as caught:
        handler(SOURCES[source](Request()), None)
    error = caught.value
    assert type(error).__name__ == f"HTTPError.{status}"
    assert json.loads(str(error)) == {"statusCode": status, "body": "upstream timed out"}
    assert (error.status_code, error.body) == (status, "upstream timed out")
    assert isinstance(error, FunctionError)
    assert isinstance(error, holdfast.HTTPStatusError)


@pytest.mark.parametrize("status", [200, 404, 501, 505])
def test_unlisted_status_is_an_ordinary_response(status, make_adapter):
    handler = make_adapter(failing(status), error_status_codes="500,502-504")
    result = handler(function_url_event(Request()), None)
    assert (result["statusCode"], result["body"]) == (status, "upstream timed out")


def test_each_status_has_its_own_error_type(make_adapter):
    errors = []
    for status in (502, 503, 502):
        handler = make_adapter(failing(status), error_status_codes=[502, 503])
        with pytest.raises(HTTPStatusError) as caught:
            handler(function_url_event(Request()), None)
        errors.append(type(caught.value))
    assert errors[0] is errors[2]
    assert errors[0] is not errors[1]
    assert [error.__name__ for error in errors] == [
        "HTTPError.502",
        "HTTPError.503",
        "HTTPError.502",
    ]


@pytest.mark.parametrize("variable", ["HOLDFAST_ERROR_STATUS_CODES", "AWS_LWA_ERROR_STATUS_CODES"])
def test_error_status_codes_from_the_environment(variable, monkeypatch, make_adapter):
    monkeypatch.setenv(variable, "500, 502-504")
    handler = make_adapter(failing(503))
    assert handler.error_status_codes == frozenset({500, 502, 503, 504})
    with pytest.raises(
        HTTPStatusError, match=r'^\{"statusCode":503,"body":"upstream timed out"\}$'
    ):
        handler(function_url_event(Request()), None)


def test_holdfast_variable_wins_over_the_lambda_web_adapter_one(monkeypatch, make_adapter):
    monkeypatch.setenv("AWS_LWA_ERROR_STATUS_CODES", "500-599")
    monkeypatch.setenv("HOLDFAST_ERROR_STATUS_CODES", "502")
    assert make_adapter(failing(500)).error_status_codes == frozenset({502})


def test_argument_wins_over_the_environment(monkeypatch, make_adapter):
    monkeypatch.setenv("HOLDFAST_ERROR_STATUS_CODES", "500-599")
    handler = make_adapter(failing(500), error_status_codes="503")
    assert handler(function_url_event(Request()), None)["statusCode"] == 500


def test_empty_environment_value_is_unset(monkeypatch, make_adapter):
    monkeypatch.setenv("HOLDFAST_ERROR_STATUS_CODES", "")
    monkeypatch.setenv("AWS_LWA_ERROR_STATUS_CODES", "500")
    assert make_adapter(failing(500)).error_status_codes == frozenset({500})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("500,abc", "invalid error status code 'abc'"),
        ("500-5x0", "invalid error status code '500-5x0'"),
        ("99", r"within 100-599, got \[99\]"),
        ([500, 700], r"within 100-599, got \[700\]"),
    ],
)
def test_invalid_error_status_codes_are_refused_at_construction(spec, message, recorder):
    with pytest.raises(ValueError, match=message):
        holdfast.Adapter(recorder, error_status_codes=spec)


def test_error_status_body_is_decoded_leniently(make_adapter):
    handler = make_adapter(failing(500, b"\xffbad \xe2\x9c\x93"), error_status_codes="500")
    with pytest.raises(HTTPStatusError) as caught:
        handler(function_url_event(Request()), None)
    assert caught.value.body == "\ufffdbad \u2713"


def test_app_exception_with_500_listed_raises_the_function_error(make_adapter):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            raise RuntimeError("boom")

    handler = make_adapter(app, error_status_codes="500")
    with pytest.raises(
        HTTPStatusError, match=r'^\{"statusCode":500,"body":"Internal Server Error"\}$'
    ):
        handler(function_url_event(Request()), None)


# -- app exceptions -----------------------------------------------------------------------------


class Boom(Exception):
    pass


async def exploding_app(scope, receive, send):
    if scope["type"] == "http":
        raise Boom("secret database password in the message")


@pytest.mark.parametrize("source", ALL)
def test_app_exception_before_the_response_is_a_plain_500(source, make_adapter, context, caplog):
    with caplog.at_level(logging.ERROR, logger="holdfast"):
        result = make_adapter(exploding_app, lifespan="off")(SOURCES[source](Request()), context)
    assert result["statusCode"] == 500
    assert (result["body"], result["isBase64Encoded"]) == ("Internal Server Error", False)
    headers = result.get("multiValueHeaders") or {k: [v] for k, v in result["headers"].items()}
    assert headers == {"content-type": ["text/plain; charset=utf-8"]}
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"request {context.aws_request_id}: the app raised an exception"
    assert isinstance(record.exc_info[1], Boom)


@pytest.mark.parametrize(
    ("source", "request_id"),
    [("rest-v1", "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"), ("function-url", "id"), ("alb", "-")],
)
def test_without_a_context_the_log_names_the_events_request_id(
    source, request_id, make_adapter, caplog
):
    make_adapter(exploding_app, lifespan="off")(SOURCES[source](Request()), None)
    [record] = caplog.records
    assert record.getMessage() == f"request {request_id}: the app raised an exception"


def test_starlette_exception_is_a_plain_500_without_traceback(make_adapter, context, caplog):
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def home(request):
        raise Boom("secret database password in the message")

    handler = make_adapter(Starlette(routes=[Route("/", home)]))
    result = handler(function_url_event(Request()), context)
    assert (result["statusCode"], result["body"]) == (500, "Internal Server Error")
    assert "Traceback" not in result["body"]
    assert any(
        context.aws_request_id in r.getMessage() and r.levelno == logging.ERROR
        for r in caplog.records
    )


def test_app_exception_does_not_break_the_next_invocation(make_adapter):
    calls = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        calls.append(scope["path"])
        if scope["path"] == "/fail":
            raise Boom("once")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    handler = make_adapter(app)
    assert handler(function_url_event(Request(target="/fail")), None)["statusCode"] == 500
    assert handler(function_url_event(Request(target="/ok")), None)["body"] == "fine"
    assert calls == ["/fail", "/ok"]


# -- events that cannot be decoded ---------------------------------------------------------------


def _v2_without_method():
    event = load_event("apigateway-http-api")
    del event["requestContext"]["http"]["method"]
    return event


# Not HTTP events: with no handler for them they are POSTed to the app's pass-through path
# (holdfast.events.PassThrough); an app with no route there fails the invocation.
NON_HTTP_EVENTS = {
    "sqs": (load_event("sqs-receive-message"), "not an HTTP event: records from aws:sqs"),
    "eventbridge": (
        load_event("eventbridge-scheduled-event"),
        "not an HTTP event: an EventBridge 'Scheduled Event' event",
    ),
    "list": ([{"httpMethod": "GET"}], "a Lambda HTTP event is a JSON object, got list"),
    "string": ("GET /", "a Lambda HTTP event is a JSON object, got str"),
    "none": (None, "a Lambda HTTP event is a JSON object, got NoneType"),
    "empty": ({}, "not an HTTP event from API Gateway (REST or HTTP API), a Function URL, ALB or"),
    "unknown-keys": ({"foo": 1, "bar": 2}, "found bar, foo"),
}


@pytest.mark.parametrize("name", sorted(NON_HTTP_EVENTS))
def test_non_http_events_without_a_route_raise_invalid_event(name, make_adapter):
    event, message = NON_HTTP_EVENTS[name]
    handler = make_adapter(responder(404))
    with pytest.raises(holdfast.InvalidEvent) as caught:
        handler(copy.deepcopy(event), None)
    assert message in str(caught.value)
    assert "no route for it at POST /events (it answered 404)" in str(caught.value)


BAD_EVENTS = {
    "v2-without-method": (_v2_without_method(), "'method' must be a str, it is missing"),
    "v2-http-not-an-object": (
        event_with("function-url", ["requestContext", "http"], "POST"),
        "'http' has the wrong type: it must be a dict, it is a str",
    ),
    "v1-method-not-a-string": (
        event_with("apigateway-aws-proxy", ["httpMethod"], 7),
        "'httpMethod' has the wrong type: it must be a str, it is a int",
    ),
    "lattice-v1-raw-path-not-a-string": (
        event_with("lattice-v1", ["raw_path"], ["/x"]),
        "'raw_path' has the wrong type: it must be a str, it is a list",
    ),
    "bad-base64-v2": (
        event_with("function-url", ["isBase64Encoded"], True),
        "'body' is flagged base64 but is not valid base64",
    ),
    "bad-base64-v1": (
        event_with("apigateway-aws-proxy", ["body"], "not base64!"),
        "'body' is flagged base64 but is not valid base64",
    ),
    "bad-base64-alb": (
        event_with("alb-request", ["body"], "@@@@"),
        "'body' is flagged base64 but is not valid base64",
    ),
    "bad-base64-lattice": (
        event_with("lattice-v1", ["body"], "eyJ0ZXN0Ijoi=Ym9keSJ9"),
        "'body' is flagged base64 but is not valid base64",
    ),
    "body-not-a-string": (
        event_with("alb-request", ["body"], {"a": 1}),
        "'body' has the wrong type",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_EVENTS))
def test_events_that_are_not_http_events_raise_invalid_event(name, make_adapter, recorder):
    event, message = BAD_EVENTS[name]
    handler = make_adapter(recorder)
    with pytest.raises(holdfast.InvalidEvent) as caught:
        handler(copy.deepcopy(event), None)
    assert message in str(caught.value)
    assert not isinstance(caught.value, KeyError)
    assert isinstance(caught.value, ValueError)
    assert recorder.requests == []


WRONG_TYPES = {
    "v2-headers-list": ("function-url", ["headers"], ["host: x"]),
    "v2-raw-query-string-number": ("function-url", ["rawQueryString"], 5),
    "v1-identity-string": ("apigateway-aws-proxy", ["requestContext", "identity"], "me"),
    "v1-multi-value-header-number": ("apigateway-aws-proxy", ["multiValueHeaders"], {"a": 5}),
    "v1-query-list": ("apigateway-aws-proxy", ["multiValueQueryStringParameters"], ["x"]),
    "alb-headers-list": ("alb-request", ["headers"], [["host", "x"]]),
    "lattice-v2-query-number": ("lattice-v2", ["queryStringParameters"], 3),
}


@pytest.mark.parametrize("name", sorted(WRONG_TYPES))
def test_fields_of_the_wrong_type_raise_invalid_event(name, make_adapter, recorder):
    fixture, path, value = WRONG_TYPES[name]
    with pytest.raises(holdfast.InvalidEvent, match="wrong type"):
        make_adapter(recorder)(event_with(fixture, path, value), None)
    assert recorder.requests == []


def test_rest_event_is_not_mistaken_for_another_source(make_adapter, recorder):
    # A REST event with "elb" nowhere and an httpMethod: REST, even without multi-value fields.
    event = rest_event(Request("DELETE", "/x"))
    del event["multiValueHeaders"], event["multiValueQueryStringParameters"]
    make_adapter(recorder)(event, None)
    assert (recorder.scope["method"], recorder.scope["path"]) == ("DELETE", "/x")
