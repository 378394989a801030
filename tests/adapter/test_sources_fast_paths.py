"""The sources' fast paths agree with the careful code they short-cut.

``request._reframed`` settles requests whose names are all distinct with set operations, and
``query.query_from_decoded`` builds a query that needs no quoting in one pass; each falls back
to the one-by-one code for anything else. These properties feed both the same inputs, drawn to
hit every reason to fall back (repeated names, underscores, platform and framing names, a Host
that does not parse, control characters, values that need quoting, nulls), and require the
same answer, or the same refusal.
"""

from __future__ import annotations

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
