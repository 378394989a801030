"""Property tests: query strings, paths and headers survive event -> scope for any value, in
the encoding each source uses."""

from __future__ import annotations

import string
from urllib.parse import parse_qsl, quote, unquote

import pytest
from adapter_apps import PLATFORM_HEADERS, Recorder, client_headers
from adapter_events import SOURCES, Request, load_event
from hypothesis import example, given, settings
from hypothesis import strategies as st

import holdfast

# Text that can travel in a JSON event: any code point but surrogates.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
# What a client may put in a query string as sent: unreserved and sub-delims, percent escapes.
QUERY_CHARS = string.ascii_letters + string.digits + "-._~!$'()*+,;=:@/?"
RAW_QUERY = st.lists(
    st.one_of(
        st.text(QUERY_CHARS, min_size=1, max_size=6),
        st.builds(lambda b: f"%{b:02X}", st.integers(0, 255)),
    ),
    max_size=10,
).map("".join)
RAW_QUERY_STRING = st.lists(st.tuples(RAW_QUERY, st.one_of(st.none(), RAW_QUERY)), max_size=6).map(
    lambda pairs: "&".join(k if v is None else f"{k}={v}" for k, v in pairs)
)
PARAMS = st.dictionaries(TEXT, st.lists(TEXT, min_size=1, max_size=3), max_size=5)
# Path text: any code point but surrogates and NUL (a path holding NUL is answered 400, tested
# in test_adapter_security.py).
SEGMENTS = st.lists(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12),
    min_size=1,
    max_size=5,
)
TOKEN = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=12)
LATIN_1_VALUE = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20
)
# Headers holdfast rewrites (tested on their own): cookies joined, framing from the body, an
# invalid Host dropped, the platform context replaced.
REWRITTEN = {"cookie", "content-length", "transfer-encoding", "host"} | {
    name.decode() for name in PLATFORM_HEADERS
}
HEADERS = st.dictionaries(
    TOKEN.map(str.lower).filter(lambda n: n not in REWRITTEN),
    st.lists(LATIN_1_VALUE, min_size=1, max_size=3),
    max_size=6,
)

PROPERTY = settings(max_examples=150, deadline=None)


@pytest.fixture(scope="module")
def probe():
    """``probe(event)``: the scope the app gets for ``event``."""
    recorder = Recorder()
    adapter = holdfast.Adapter(recorder)

    def scope_of(event):
        adapter(event, None)
        return recorder.scope

    yield scope_of
    adapter.engine.run(adapter.shutdown(timeout=5))
    adapter.engine.close()


def flatten(params):
    return [(key, value) for key, values in params.items() for value in values]


@PROPERTY
@given(query=RAW_QUERY_STRING, source=st.sampled_from(["function-url", "http-api-v2"]))
def test_v2_raw_query_string_reaches_the_app_unchanged(probe, query, source):
    scope = probe(SOURCES[source](Request(target="/q?" + query)))
    assert scope["query_string"] == query.encode("ascii")


@PROPERTY
@given(params=PARAMS)
def test_rest_decoded_parameters_parse_back_to_themselves(probe, params):
    event = load_event("apigateway-aws-proxy")
    event["multiValueQueryStringParameters"] = params or None
    event["queryStringParameters"] = {key: values[-1] for key, values in params.items()} or None
    query = probe(event)["query_string"]
    assert query.isascii()
    assert parse_qsl(query.decode(), keep_blank_values=True) == flatten(params)


@PROPERTY
@given(params=PARAMS)
def test_lattice_v2_decoded_parameters_parse_back_to_themselves(probe, params):
    event = load_event("lattice-v2")
    event["queryStringParameters"] = params
    query = probe(event)["query_string"]
    assert parse_qsl(query.decode(), keep_blank_values=True) == flatten(params)


@PROPERTY
@given(params=PARAMS.map(lambda p: {k: v for k, v in p.items() if k}), multi=st.booleans())
def test_alb_encoded_parameters_parse_back_to_the_decoded_values(probe, params, multi):
    encoded = {
        quote(key, safe=""): [quote(value, safe="") for value in values]
        for key, values in params.items()
    }
    event = load_event("alb-multi-value" if multi else "alb-request")
    if multi:
        event["multiValueQueryStringParameters"] = encoded
        expected = flatten(params)
    else:
        event["queryStringParameters"] = {key: values[-1] for key, values in encoded.items()}
        expected = [(key, values[-1]) for key, values in params.items()]
    query = probe(event)["query_string"]
    assert parse_qsl(query.decode(), keep_blank_values=True) == expected


@PROPERTY
@given(segments=SEGMENTS, source=st.sampled_from(sorted(set(SOURCES) - {"http-api-v2"})))
def test_encoded_paths_decode_and_keep_their_raw_form(probe, segments, source):
    raw = "/" + "/".join(quote(segment, safe="") for segment in segments)
    scope = probe(SOURCES[source](Request(target=raw)))
    assert scope["raw_path"] == raw.encode("ascii")
    assert scope["path"] == "/" + "/".join(segments)
    assert scope["root_path"] == ""


@PROPERTY
@given(segments=SEGMENTS)
def test_decoded_http_api_paths_round_trip_through_raw_path(probe, segments):
    path = "/" + "/".join(segments)
    event = load_event("apigateway-http-api")
    event["rawPath"] = path
    scope = probe(event)
    assert scope["path"] == path
    assert scope["raw_path"].isascii()
    assert unquote(scope["raw_path"].decode("ascii")) == path


@PROPERTY
@given(segments=SEGMENTS, base=st.text(string.ascii_lowercase, min_size=1, max_size=5))
def test_base_path_is_removed_once_whatever_follows(segments, base):
    recorder = Recorder()
    adapter = holdfast.Adapter(recorder, base_path=base, lifespan="off")
    raw = f"/{base}/{base}/" + "/".join(quote(segment, safe="") for segment in segments)
    adapter(SOURCES["function-url"](Request(target=raw)), None)
    adapter.engine.close()
    assert recorder.scope["root_path"] == f"/{base}"
    assert recorder.scope["path"] == unquote(raw)


@PROPERTY
@given(headers=HEADERS, source=st.sampled_from(["rest-v1", "alb-multi-value", "lattice-v2"]))
def test_multi_value_headers_arrive_in_order_as_latin_1_bytes(probe, headers, source):
    pairs = tuple((name, value) for name, values in headers.items() for value in values)
    scope = probe(SOURCES[source](Request(headers=pairs)))
    expected = [(n.encode(), v.encode("latin-1")) for n, v in pairs]
    if source != "rest-v1":  # load balancers add the client address
        expected.append((b"x-forwarded-for", b"203.0.113.9"))
    assert client_headers(scope) == expected


@PROPERTY
@given(
    headers=HEADERS, cookies=st.lists(st.text(string.ascii_letters + "=", min_size=1), max_size=4)
)
def test_v2_headers_and_cookies_arrive_as_sent(probe, headers, cookies):
    event = load_event("function-url")
    event["headers"] = {name: ",".join(values) for name, values in headers.items()}
    event["cookies"] = cookies
    event["body"] = ""
    expected = [(n.encode(), ",".join(v).encode("latin-1")) for n, v in headers.items()]
    if cookies:
        expected.append((b"cookie", "; ".join(cookies).encode()))
    assert client_headers(probe(event)) == expected


# -- the size bound that spares the JSON encoding of every response (sources.limits) ----------
ANY_TEXT = st.text(st.characters(), max_size=40)
HEADERS_DOC = st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=6)
MULTI_HEADERS_DOC = st.dictionaries(ANY_TEXT, st.lists(ANY_TEXT, max_size=4), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    body=ANY_TEXT,
    base64=st.booleans(),
    headers=st.one_of(st.none(), HEADERS_DOC),
    multi=st.one_of(st.none(), MULTI_HEADERS_DOC),
    cookies=st.one_of(st.none(), st.lists(ANY_TEXT, max_size=4)),
)
def test_the_size_bound_is_never_below_the_encoded_size(body, base64, headers, multi, cookies):
    import json

    from holdfast.sources.limits import _size_bound, exceeds

    if base64:  # a base64 body is ASCII
        body = body.encode("utf-8", "surrogatepass").hex()
    result = {"statusCode": 200, "body": body, "isBase64Encoded": base64}
    for key, value in (("headers", headers), ("multiValueHeaders", multi), ("cookies", cookies)):
        if value is not None:
            result[key] = value
    size = len(json.dumps(result))
    assert _size_bound(result) >= size
    assert exceeds(result, size - 1) and not exceeds(result, size)


# -- the glance at raw sizes that spares counting the encoded response (limits.clearly_within) --
RAW_HEADERS = st.lists(
    st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)), max_size=6
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    headers=RAW_HEADERS,
    body=st.binary(max_size=400),
    json_body=JSON_VALUES,
    # Long enough for the per-character escapes, not the fixed framing, to decide.
    text=st.text(st.characters(), max_size=400),
)
# The costliest characters to escape: a control character takes 6 bytes, a non-BMP one 12.
@example(headers=[(b"x", b"\x01" * 60)], body=b"", json_body=[9e15] * 8, text="\x01" * 400)
@example(headers=[], body=b"", json_body="\U0001f600" * 50, text="\U0001f600" * 400)
def test_a_response_clearly_within_a_limit_encodes_within_it_for_every_source(
    headers, body, json_body, text
):
    import json

    from holdfast.events import PassThrough
    from holdfast.sources import Codecs, HTTPResponse
    from holdfast.sources.limits import clearly_within

    codecs = Codecs(frozenset())
    sources = [
        codecs.apigw_v1,
        codecs.apigw_v2,
        codecs.alb_single,
        codecs.alb_multi,
        codecs.lattice_v1,
        codecs.lattice_v2,
    ]
    bodies = [body, text.encode("utf-8", "surrogatepass")]
    for codec in sources:
        for payload in bodies:
            # Texts (a JSON content type) and binaries (none) are both encoded.
            for head in (headers, [*headers, (b"content-type", b"application/json")]):
                size = len(json.dumps(codec.encode(HTTPResponse(200, head, payload))))
                assert not clearly_within(head, payload, size - 1), codec.name
    # A pass-through answer is the app's JSON, re-serialised by the runtime.
    answer = json.dumps(json_body, separators=(",", ":")).encode()
    encoded = PassThrough("/events").encode(HTTPResponse(200, headers, answer))
    assert not clearly_within(headers, answer, len(json.dumps(encoded)) - 1)
