"""The sources' fast paths agree with the careful code they short-cut.

``request._reframed`` settles requests whose names are all distinct with set operations,
``query.query_from_decoded`` builds a query that needs no quoting in one pass, and the REST
and HTTP API codecs read an event as the fronts send it in one pass (``plain``, with
``request.plain_request``); each falls back to the general code for anything else. These
properties feed both the same inputs, drawn to hit every reason to fall back (repeated names,
underscores, platform and framing names, a Host that does not parse, control characters, values
that need quoting, nulls, fields of the wrong type), and require the same answer, or the same
refusal.
"""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from holdfast.errors import InvalidEvent
from holdfast.sources import query, request
from holdfast.sources.syntax import BadRequest

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.sampled_from(
    [
        b"accept",
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-amzn-request-context",
        b"x-amz-tenant-id",
        b"x_amzn_trace_id",
        b"x_custom",
        b"user-agent",
        b"cookie",
    ]
)
VALUES = st.one_of(
    st.sampled_from([b"", b"https", b"http", b"443", b"8080", b"example.com", b"a..b", b"1.2.3.4"]),
    st.binary(max_size=12),
)
HEADERS = st.lists(st.tuples(NAMES, VALUES), max_size=8)


def _answer(headers: list[tuple[bytes, bytes]], body: bytes, wsgi: bool, reframe):
    try:
        kept, host, forwarded = reframe(list(headers), body, wsgi)
    except BadRequest as exc:
        return "refused", str(exc)
    derived = [forwarded.get(name) for name in sorted(request._FORWARDED)]
    return kept, host, derived


@PROPERTY
@given(headers=HEADERS, body=st.sampled_from([b"", b"{}"]), wsgi=st.booleans())
def test_reframing_agrees_with_the_header_by_header_loop(headers, body, wsgi):
    assert _answer(headers, body, wsgi, request._reframed) == _answer(
        headers, body, wsgi, request._reframed_one_by_one
    )


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"example.com"), (b"accept", b"*/*")],
        [(b"host", b"example.com"), (b"content-length", b"99"), (b"accept", b"*/*")],
    ],
)
def test_well_formed_requests_take_the_fast_path(headers, monkeypatch):
    # The property above holds whichever path runs; this pins that the common shape is the
    # one settled without the loop, with the client's Content-Length replaced in place.
    def unexpected(*args):
        raise AssertionError("took the header-by-header loop")

    monkeypatch.setattr(request, "_reframed_one_by_one", unexpected)
    kept, host, _ = request._reframed(list(headers), b"{}", False)
    assert kept == [(b"host", b"example.com"), (b"accept", b"*/*"), (b"content-length", b"2")]
    assert host == ("example.com", None)


TEXT = st.one_of(
    st.sampled_from(["", "a", "x_y", "1.5", "a~b", "a=b", "a&b", "a b", "+", "%41", "é"]),
    st.text(max_size=6),
)
PARAMS = st.dictionaries(
    TEXT,
    st.one_of(TEXT, st.none(), st.integers(), st.lists(st.one_of(TEXT, st.none()), max_size=3)),
    max_size=4,
)


def _query(build, params):
    try:
        return build(params)
    except InvalidEvent as exc:
        return "refused", str(exc)


@PROPERTY
@given(params=PARAMS)
# A separator inside a name or value is the one way a joined query looks plain and is not.
@example(params={"a&b": ""})
@example(params={"a": "b=c"})
@example(params={"a=b": ["1", "2"]})
def test_a_plain_query_agrees_with_the_quoting_path(params):
    def careful(params):
        return query._quoted_query(params, "queryStringParameters") if params else b""

    assert _query(query.query_from_decoded, params) == _query(careful, params)


# -- the codecs' fast paths: APIGatewayV2.plain and APIGatewayV1.plain ------------------------
#
# Each reads an event of its source's common shape in one pass and gives anything else to the
# codec's general path (``_decode``). The fast path must never raise, and whatever request
# it builds must be the one the general path builds: an event the general path refuses, or
# answers otherwise, must fall through. The events are the sample events with drawn fields
# replaced by values that hit every reason to fall through.

HEADER_NAMES = st.sampled_from(
    [
        "Accept",
        "accept",
        "Host",
        "host",
        "Content-Length",
        "Transfer-Encoding",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Port",
        "X-Amzn-Request-Context",
        "x-amz-tenant-id",
        "X_Amzn_Trace_Id",
        "x_custom",
        "Cookie",
        "bad name",
        "é",
    ]
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "https",
            "http",
            "https, http",
            "443",
            "80",
            "8443",
            "example.com",
            "example.com:8080",
            "a..b",
            "[::1]",
            "1.2.3.4, 5.6.7.8",
            "tab\there",
            "nul\x00",
            "é",
            "€",
        ]
    ),
    st.text(max_size=6),
    st.none(),
    st.integers(),
)
# Headers as the fronts send them, some of them with values that still make the fast path
# fall through.
PLAIN_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Accept": st.just("*/*") | st.sampled_from(["", "a\x01", "é", "€"]),
        "Host": st.just("example.com") | st.sampled_from(["example.com:8080", "a..b", "[::1]", ""]),
        "X-Forwarded-Proto": st.just("https") | st.sampled_from(["http", "https, http", ""]),
        "X-Forwarded-Port": st.just("443") | st.sampled_from(["80", "8443", ""]),
        "X-Forwarded-For": st.just("1.2.3.4") | st.sampled_from(["1.2.3.4, 5.6.7.8", ""]),
        "Content-Length": st.just("2") | st.sampled_from(["99", ""]),
    },
)
# Each field is replaced now and then: an event with every field replaced would always fall
# through, and the properties need both outcomes.
SOMETIMES = st.integers(0, 7).map(lambda n: n == 0)
METHOD = st.sampled_from(["GET", "post", "PROPFIND", "BAD METHOD", "", None, 5, ["GET"]])
SOURCE_IP = st.sampled_from(["1.2.3.4", "", None, 5, "é", "\ud800"])
# "e3!0=" and "e30=\n" decode when base64 is read leniently: the fast path must refuse them too.
BODY = st.sampled_from(
    [
        None,
        "",
        "eyJ0ZXN0IjoiYm9keSJ9",
        "e30=",
        "e3!0=",
        "e30=\n",
        "not base64!",
        "héllo",
        "\ud800",
        5,
    ]
)
BASE64 = st.sampled_from([True, False, None, "yes", 0])
BASE_PATH = st.sampled_from(["", "/api", "/path"])


def _sample(name):
    import json
    from pathlib import Path

    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "events"
    return json.loads((fixtures / name).read_text())


def _both(codec, plain, event, base_path):
    """(general answer, fast answer): a request or ("refused", class, message); the fast path's
    ``None`` stays ``None``. The general path runs first: it learns the header names, as the
    first request of a new shape does."""
    import copy

    try:
        general = codec._decode(copy.deepcopy(event), base_path, None)
    except InvalidEvent as exc:
        general = ("refused", type(exc), str(exc))
    return general, plain(copy.deepcopy(event), base_path)


def _replace_some(data, fields):
    """Now and then, each ``(where, key, values)``: ``where[key]`` drawn from ``values``, or
    removed for a drawn null."""
    for where, key, values in fields:
        if data.draw(SOMETIMES):
            value = data.draw(values)
            if value is None and data.draw(st.booleans()):
                where.pop(key, None)
            else:
                where[key] = value


def _agree(general, fast):
    hypothesis.event("fell through" if fast is None else "read in one pass")
    assert fast is None or fast == general, f"fast path: {fast!r}\ngeneral path: {general!r}"


@PROPERTY
@given(
    data=st.data(),
    wsgi=st.booleans(),
    base_path=BASE_PATH,
)
def test_the_http_api_fast_path_agrees_with_the_general_path(data, wsgi, base_path):
    from holdfast.sources import apigw_v2

    event = _sample("apigateway-http-api.json")
    wild = st.one_of(
        st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6), st.none(), st.just([])
    )
    event["headers"] = data.draw(wild if data.draw(SOMETIMES) else PLAIN_HEADERS)
    context = event["requestContext"]
    http = context["http"]
    fields = [
        (
            event,
            "cookies",
            st.sampled_from(
                [None, [], "", 0, ["a=b"], ["a=b", "c=d"], ["a", 5], "a=b", ["é"], ["€"], ["x\ny"]]
            ),
        ),
        (
            event,
            "rawPath",
            st.sampled_from(
                ["/", "/a/b", "/a b", "/a%20b", "", None, 5, "a", "/x\x00", "/é", "/api", "/api/x"]
            ),
        ),
        (event, "rawQueryString", st.sampled_from(["", "a=b", "a b", None, 5, "é", "a=%20"])),
        (event, "body", BODY),
        (event, "isBase64Encoded", BASE64),
        (context, "stage", st.sampled_from([None, "$default", "prod", "", 5])),
        (context, "domainName", st.sampled_from([None, "x.lambda-url.us-east-1.on.aws", 5, ""])),
        (http, "method", METHOD),
        (http, "sourceIp", SOURCE_IP),
        (http, "path", st.sampled_from(["/p", None, 5])),
    ]
    _replace_some(data, fields)
    if data.draw(SOMETIMES):
        event["requestContext"] = data.draw(st.sampled_from([None, 5, {}, {"http": None}]))
    codec = apigw_v2.APIGatewayV2(wsgi=wsgi)
    _agree(*_both(codec, codec.plain, event, base_path))


MULTI_VALUES = st.one_of(st.lists(HEADER_VALUES, max_size=3), HEADER_VALUES)


# The first of each is a shape the fronts send.
QUERIES = [
    (None, None),
    ({"foo": "bar"}, {"foo": ["bar"]}),
    ({"foo": "b"}, {"foo": ["a", "b"]}),
    ({"foo": "bar", "x": "1"}, {"foo": ["bar"]}),
    ({}, {}),
    ({"a b": "c"}, {"a b": ["c"]}),
    ({"a": None}, {"a": [None]}),
    (None, {"foo": ["bar"]}),
    ({"foo": "bar"}, None),
    (5, {"foo": ["bar"]}),
    ({"foo": "bar"}, {"foo": "bar"}),
]
PATHS = [
    ("/path/to/resource", "/prod/path/to/resource"),
    ("/", "/prod/"),
    ("/", "/prod"),
    ("/a", "/a"),
    ("/a", None),
    ("/a", 5),
    ("/a", "/x/b"),
    ("", "/prod/"),
    (None, "/prod/"),
    ("a", "/prod/a"),
    ("/a b", "/prod/a b"),
    ("/a%2Fb", "/prod/a%2Fb"),
    ("/x\x00", "/prod/x\x00"),
    (5, "/prod/5"),
    ("/path", "/api/path"),
    ("/", "/api/"),
]


@PROPERTY
@given(
    data=st.data(),
    wsgi=st.booleans(),
    base_path=BASE_PATH,
)
def test_the_rest_api_fast_path_agrees_with_the_general_path(data, wsgi, base_path):
    from holdfast.sources import apigw_v1

    event = _sample("apigateway-aws-proxy.json")
    wild = st.one_of(st.dictionaries(HEADER_NAMES, MULTI_VALUES, max_size=6), st.none(), st.just(5))
    if data.draw(SOMETIMES):
        multi = data.draw(wild)
    else:
        multi = {name: [value] for name, value in data.draw(PLAIN_HEADERS).items()}
    single_form = "last"
    if data.draw(SOMETIMES):
        single_form = data.draw(st.sampled_from(["subset", "extra", "none", "not a dict", "empty"]))
    lists = multi if isinstance(multi, dict) else {}
    single = {
        name: values[-1] if isinstance(values, list) and values else values
        for name, values in lists.items()
    }
    if single_form == "subset":
        single = dict(list(single.items())[: len(single) // 2])
    elif single_form == "extra":
        single["X-Only-Single"] = "1"
    event["multiValueHeaders"] = multi
    event["headers"] = {
        "last": single,
        "subset": single,
        "extra": single,
        "none": None,
        "not a dict": "x",
        "empty": {},
    }[single_form]
    context = event["requestContext"]
    queries = data.draw(st.sampled_from(QUERIES)) if data.draw(SOMETIMES) else QUERIES[0]
    event["queryStringParameters"], event["multiValueQueryStringParameters"] = queries
    paths = data.draw(st.sampled_from(PATHS)) if data.draw(SOMETIMES) else PATHS[0]
    event["path"], context["path"] = paths
    fields = [
        (event, "httpMethod", METHOD),
        (event, "body", BODY),
        (event, "isBase64Encoded", BASE64),
        (event, "version", st.sampled_from(["1.0", None])),
        (context, "identity", st.sampled_from([{"sourceIp": "1.2.3.4"}, {}, None, 5])),
    ]
    _replace_some(data, fields)
    if isinstance(context.get("identity"), dict) and data.draw(SOMETIMES):
        context["identity"]["sourceIp"] = data.draw(SOURCE_IP)
    if data.draw(SOMETIMES):
        event["requestContext"] = data.draw(st.sampled_from([None, 5, {}]))
    codec = apigw_v1.APIGatewayV1(wsgi=wsgi)
    _agree(*_both(codec, codec.plain, event, base_path))


@pytest.mark.parametrize("base_path", ["", "/path"])
@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("apigateway-http-api.json", {}),
        (
            "apigateway-http-api.json",
            {"headers": {"Host": "a.example:8443", "Content-Length": "2"}},
        ),
        ("apigateway-http-api.json", {"headers": {"Host": "a.example", "X-Forwarded-Port": "80"}}),
        ("apigateway-aws-proxy.json", {}),
        ("apigateway-aws-proxy.json", {"path": "/", "resource": "/"}),
        ("apigateway-aws-proxy.json", {"body": None, "isBase64Encoded": False}),
    ],
)
def test_events_as_the_fronts_send_them_take_the_fast_path(name, change, base_path):
    # The properties above hold whichever path runs; this pins that the common shapes are the
    # ones read in one pass (once their header names are known), to the general path's request.
    from holdfast.sources import apigw_v1, apigw_v2

    event = {**_sample(name), **change}
    if "multiValueHeaders" in event and "headers" in change:
        event["multiValueHeaders"] = {k: [v] for k, v in change["headers"].items()}
    if name == "apigateway-aws-proxy.json" and change.get("path") == "/":
        event["requestContext"]["path"] = "/prod/"
    codec = apigw_v2.APIGatewayV2() if "http-api" in name else apigw_v1.APIGatewayV1()
    general, fast = _both(codec, codec.plain, event, base_path)
    assert fast is not None
    assert fast == general


@pytest.mark.parametrize("context_headers", [False, True])
def test_decode_asks_the_fast_path_first_unless_context_headers_are_on(
    context_headers, monkeypatch
):
    # With context headers the general path must run: only it adds them.
    from holdfast.sources import apigw_v2

    codec = apigw_v2.APIGatewayV2(context_headers=context_headers)
    event = _sample("apigateway-http-api.json")
    codec.decode(event, "")  # learns the header names
    general = codec._decode

    def counted(*args):
        calls.append(args)
        return general(*args)

    calls: list[tuple] = []
    monkeypatch.setattr(codec, "_decode", counted)
    request = codec.decode(event, "")
    assert len(calls) == (1 if context_headers else 0)
    assert (b"x-amzn-request-context" in dict(request.headers)) is context_headers


@pytest.mark.parametrize(
    "change",
    [
        {"requestContext": {"http": {"method": ["GET"], "sourceIp": "1.2.3.4"}}},
        {"headers": "x"},
        {"headers": ["a"]},
        {"cookies": 5},
        {"cookies": {"a": "b"}},
        {"rawPath": ["/"]},
        {"body": {"a": 1}},
    ],
)
def test_the_http_api_fast_path_never_raises(change):
    from holdfast.sources import apigw_v2

    event = {**_sample("apigateway-http-api.json"), **change}
    assert apigw_v2.APIGatewayV2.plain(event, "") is None


@pytest.mark.parametrize(
    "change",
    [
        {"httpMethod": ["GET"]},
        {"headers": "x", "multiValueHeaders": "x"},
        {"multiValueHeaders": {"Accept": "*/*"}, "headers": {"Accept": "*/*"}},
        {"queryStringParameters": ["a"], "multiValueQueryStringParameters": ["a"]},
        {"path": ["/"]},
        {"body": {"a": 1}},
    ],
)
def test_the_rest_api_fast_path_never_raises(change):
    from holdfast.sources import apigw_v1

    event = {**_sample("apigateway-aws-proxy.json"), **change}
    assert apigw_v1.APIGatewayV1.plain(event, "") is None


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("path", "requested", "split"),
    [
        ("/", "/prod", ("/prod/", "/prod")),
        ("/", "/prod/", ("/prod/", "/prod")),
        ("/a", "/prod/a", ("/prod/a", "/prod")),
        ("/a", "/a", ("/a", "")),
    ],
)
def test_the_rest_stage_is_the_root_path_on_either_path(path, requested, split, fast):
    # The fast path takes these shapes: the general path must still answer them alike.
    from holdfast.sources import apigw_v1

    codec = apigw_v1.APIGatewayV1()
    event = _sample("apigateway-aws-proxy.json")
    event["path"], event["requestContext"]["path"] = path, requested
    codec.decode(event, "")  # learns the header names
    request = codec.plain(event, "") if fast else codec._decode(event, "", None)
    assert (request.path, request.root_path) == split


@pytest.mark.parametrize("body", ["e3!0=", "e30=\n", "e30", "not base64!"])
def test_the_fast_path_reads_base64_as_strictly_as_the_general_path(body):
    from holdfast.sources import bodies

    event = {"body": body, "isBase64Encoded": True}
    assert bodies.plain_body(event) is None
    with pytest.raises(InvalidEvent, match="not valid base64"):
        bodies.request_body(event, "body", "isBase64Encoded")
