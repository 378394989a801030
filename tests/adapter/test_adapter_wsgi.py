"""WSGI apps (Flask, a plain WSGI callable): detected from their signature or given as
``wsgi=``, served through every source."""

from __future__ import annotations

import base64
import json

import flask
import pytest
from adapter_events import SOURCES, Request, decode_response, function_url_event, load_event

import holdfast


def make_flask():
    app = flask.Flask("holdfast_wsgi_test")

    @app.route("/api/<path:rest>", methods=["GET", "POST", "PUT"])
    def echo(rest):
        environ = flask.request.environ
        return {
            "rest": rest,
            "method": flask.request.method,
            "script_name": environ["SCRIPT_NAME"],
            "path_info": environ["PATH_INFO"],
            "query": flask.request.args.to_dict(flat=False),
            "scheme": environ["wsgi.url_scheme"],
            "remote_addr": environ["REMOTE_ADDR"],
            "host": environ.get("HTTP_HOST"),
            "cookies": flask.request.cookies.to_dict(),
            "body": flask.request.get_data().decode("latin-1"),
        }

    @app.route("/cookies")
    def cookies():
        response = flask.make_response("set")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2", httponly=True)
        return response

    @app.route("/png")
    def png():
        return flask.Response(b"\x89PNG\r\n\x1a\n\x00\xff", mimetype="image/png")

    @app.route("/unavailable")
    def unavailable():
        flask.abort(503)

    return app


REQUEST = Request(
    "POST",
    "/api/items/%C3%A9?tag=a+b&tag=c%2Bd",
    (("Host", "api.example.com"), ("X-Forwarded-Proto", "https"), ("Cookie", "sid=xyz")),
    b"caf\xc3\xa9",
)


@pytest.mark.parametrize("source", ["rest-v1", "function-url", "alb-multi-value", "lattice-v2"])
def test_flask_app_is_detected_and_served(source, make_adapter):
    handler = make_adapter(make_flask())
    response = decode_response(handler(SOURCES[source](REQUEST), None))
    assert response.status == 200
    assert json.loads(response.body) == {
        "rest": "items/\u00e9",
        "method": "POST",
        "script_name": "",
        "path_info": "/api/items/\u00c3\u00a9",  # WSGI's latin-1 view of the UTF-8 bytes
        "query": {"tag": ["a b", "c+d"]},
        "scheme": "https",
        "remote_addr": "203.0.113.9",
        "host": "api.example.com",
        "cookies": {"sid": "xyz"},
        "body": "caf\u00c3\u00a9",
    }


@pytest.mark.parametrize("fixture", ["alb-request", "apigateway-aws-proxy", "lattice-v1"])
def test_flask_reads_the_body_of_sample_events_without_content_length(fixture, make_adapter):
    event = load_event(fixture)
    event[next(k for k in ("path", "raw_path") if k in event)] = "/api/sample"
    if "requestContext" in event and "path" in event["requestContext"]:
        event["requestContext"]["path"] = "/api/sample"
    body = json.loads(make_adapter(make_flask())(event, None)["body"])
    assert (body["method"], body["body"]) == ("POST", '{"test":"body"}')


def test_wsgi_keyword_serves_the_app(make_adapter):
    handler = make_adapter(wsgi=make_flask())
    result = handler(function_url_event(Request(target="/api/x")), None)
    assert json.loads(result["body"])["rest"] == "x"


def test_base_path_becomes_script_name(make_adapter):
    handler = make_adapter(make_flask(), base_path="/svc")
    result = handler(function_url_event(Request(target="/svc/api/x?q=1")), None)
    body = json.loads(result["body"])
    assert (body["script_name"], body["path_info"], body["rest"]) == ("/svc", "/api/x", "x")


@pytest.mark.parametrize("source", ["rest-v1", "function-url", "alb", "alb-multi-value"])
def test_flask_cookies_reach_the_client(source, make_adapter):
    result = make_adapter(make_flask())(SOURCES[source](Request(target="/cookies")), None)
    assert decode_response(result).header_values("set-cookie") == [
        "a=1; Path=/",
        "b=2; HttpOnly; Path=/",
    ]


def test_flask_binary_response_is_base64(make_adapter):
    result = make_adapter(make_flask())(function_url_event(Request(target="/png")), None)
    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == b"\x89PNG\r\n\x1a\n\x00\xff"


def test_flask_error_status_codes(make_adapter):
    handler = make_adapter(make_flask(), error_status_codes="503")
    with pytest.raises(holdfast.HTTPStatusError) as caught:
        handler(function_url_event(Request(target="/unavailable")), None)
    assert type(caught.value).__name__ == "HTTPError.503"
    assert "Service Unavailable" in caught.value.body


def test_flask_404(make_adapter):
    result = make_adapter(make_flask())(function_url_event(Request(target="/nope")), None)
    assert result["statusCode"] == 404


def plain_wsgi(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']}"
    start_response(
        "201 Created", [("Content-Type", "text/plain"), ("X-Multi", "1"), ("X-Multi", "2")]
    )
    return [body.encode()]


class CallableWSGI:
    def __call__(self, environ, start_response):
        return plain_wsgi(environ, start_response)


@pytest.mark.parametrize("app", [plain_wsgi, CallableWSGI()], ids=["function", "callable-object"])
def test_plain_wsgi_callables_are_detected(app, make_adapter):
    result = make_adapter(app)(SOURCES["rest-v1"](Request("PUT", "/w?x=1")), None)
    assert (result["statusCode"], result["body"]) == (201, "PUT /w?x=1")
    assert result["multiValueHeaders"]["x-multi"] == ["1", "2"]


def test_asgi_apps_are_not_mistaken_for_wsgi(make_adapter, recorder):
    async def asgi_function(scope, receive, send):
        await recorder(scope, receive, send)

    make_adapter(asgi_function)(function_url_event(Request(target="/asgi")), None)
    make_adapter(recorder)(function_url_event(Request(target="/asgi-object")), None)
    assert [scope["path"] for scope, _ in recorder.requests] == ["/asgi", "/asgi-object"]


@pytest.mark.parametrize(
    "arguments",
    [{}, {"app": plain_wsgi, "wsgi": plain_wsgi}],
    ids=["neither", "both"],
)
def test_exactly_one_app_is_required(arguments):
    with pytest.raises(TypeError, match="exactly one"):
        holdfast.Adapter(**arguments)
