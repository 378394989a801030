"""Compression of buffered responses with LWA's negotiation and skip rules (lwa-compat.md §7.3)."""

from __future__ import annotations

import gzip

import brotli
import pytest

from holdfast.compression import compress, negotiate
from holdfast.sources import HTTPResponse

TEXT = b"Hello World! This body is long enough to be compressed, ok?"  # 59 bytes


def response(body=TEXT, content_type=b"text/plain", **extra):
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    headers += [(k.replace("_", "-").encode(), v) for k, v in extra.items()]
    return HTTPResponse(200, headers, body)


def header(result, name):
    return [v for k, v in result.headers if k == name]


def test_gzip():
    result = compress(response(), b"gzip")
    assert gzip.decompress(result.body) == TEXT
    assert header(result, b"content-encoding") == [b"gzip"]
    assert header(result, b"content-length") == []
    assert header(result, b"vary") == [b"accept-encoding"]


def test_br_is_preferred_when_equally_acceptable():
    result = compress(response(), b"gzip, deflate, br")
    assert brotli.decompress(result.body) == TEXT
    assert header(result, b"content-encoding") == [b"br"]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (b"gzip;q=1.0, br;q=0.5", "gzip"),
        (b"br;q=0, gzip", "gzip"),
        (b"*", "br"),
        (b"identity", None),
        (b"gzip;q=0", None),
        (b"deflate", None),
        (b"", None),
        (None, None),
    ],
)
def test_negotiation(accept, chosen):
    assert negotiate(accept) == chosen


@pytest.mark.parametrize(
    "kept",
    [
        response(b"short body"),
        response(content_type=b"image/png"),
        response(content_type=b"application/grpc+proto"),
        response(content_type=b"text/event-stream; charset=utf-8"),
        response(content_encoding=b"gzip"),
        response(content_range=b"bytes 0-58/100"),
        HTTPResponse(204, [], b""),
    ],
)
def test_responses_left_alone(kept):
    assert compress(kept, b"gzip, br") is kept


def test_svg_is_compressed():
    result = compress(response(content_type=b"image/svg+xml"), b"gzip")
    assert header(result, b"content-encoding") == [b"gzip"]


def test_pre_compressed_body_is_untouched():
    body = gzip.compress(b"x" * 100)
    original = response(body, content_type=b"application/json", content_encoding=b"gzip")
    result = compress(original, b"gzip")
    assert result.body == body
    assert header(result, b"content-length") == [b"%d" % len(body)]
