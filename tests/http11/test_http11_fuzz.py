"""Hostile input, generated: any bytes get a 400 / a closed connection or a correct parse, never an
unhandled error; and what the grammar lets through cannot split a message."""

import asyncio
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from holdfast.http11.grammar import (
    ProtocolError,
    body_framing,
    chunk_size,
    forbidden_field,
    parse_fields,
    parse_request_head,
    parse_request_line,
    parse_response_head,
)
from holdfast.http11.response import body_chunks, read_head, read_response

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")

# Bytes that look like HTTP often enough to reach past the first check.
PIECES = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 204 \r\n",
        b"GET / HTTP/1.1\r\n",
        b"Content-Length: 3\r\n",
        b"Content-Length: \xc2\xb2\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n",
        b"X-A: b\r\n",
        b" folded\r\n",
        b"3\r\nabc\r\n",
        b"0\r\n\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b"\x00",
        b":",
        b" ",
    ]
)
HTTPISH = st.lists(st.one_of(PIECES, st.binary(max_size=8)), max_size=20).map(b"".join)


@given(st.one_of(st.binary(max_size=300), HTTPISH))
@example(b"A: b\r\n")
@example(b"A: b\rC: d\r\n")
def test_parse_fields_refuses_or_parses_correctly(block):
    try:
        fields = parse_fields(block, lower=False)
    except ProtocolError:
        return
    for name, value in fields:
        assert TOKEN.fullmatch(name)
        assert FIELD_VALUE.fullmatch(value) and value == value.strip(" \t")
    # Written out again, the fields are read back the same: nothing was split or merged.
    again = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("latin-1")
    assert parse_fields(again, lower=False) == fields


@given(st.one_of(st.binary(max_size=300), HTTPISH))
def test_parse_response_head_refuses_or_parses(head):
    try:
        status, _, fields = parse_response_head(head + b"\r\n")
    except ProtocolError:
        return
    assert 0 <= status <= 999
    assert all(name == name.lower() and TOKEN.fullmatch(name) for name, _ in fields)


@given(st.one_of(st.binary(max_size=200), HTTPISH))
def test_parse_request_line_refuses_or_parses(line):
    try:
        method, target, version = parse_request_line(line)
    except ProtocolError:
        return
    assert TOKEN.fullmatch(method)
    assert target and not any(c in target for c in " \r\n\x00")
    assert version in ("HTTP/1.0", "HTTP/1.1")


@given(st.one_of(st.binary(max_size=300), HTTPISH), st.sampled_from([b"\r\n", b"\n"]))
@example(b"GET / HTTP/1.1\r\nHost: x\r\n", b"\r\n")
@example(b"GET / HTTP/1.1\nHost: x\r\n", b"\n")
@example(b"GET /\x01 HTTP/1.1\r\n", b"\r\n")
@example(b"GET / HTTP/1.1\r\nX-A: b\x01\r\n", b"\r\n")
@example(b"GET / HTTP/1.1\r\n folded\r\n", b"\n")
def test_a_whole_head_parses_as_its_request_line_and_its_fields_do(lines, blank):
    # The server takes a head that arrived whole in one piece (`parse_request_head`); read
    # line by line it must give the same answer: the same refusal or the same request.
    head = lines + blank
    if (
        not lines.endswith(b"\n")
        or lines[:1] in (b"\r", b"\n")
        or b"\n\n" in lines
        or b"\n\r\n" in lines
    ):
        return  # not what the server takes as a whole head: lines up to their first blank one
    end = head.index(b"\n") + 1
    try:
        expected = (*parse_request_line(head[:end]), parse_fields(lines[end:], lower=False))
    except ProtocolError:
        expected = None
    try:
        whole = parse_request_head(head)
    except ProtocolError:
        whole = None
    assert whole == expected


@given(st.lists(st.tuples(st.sampled_from(["content-length", "transfer-encoding"]), st.text())))
def test_body_framing_refuses_or_gives_one_framing(fields):
    try:
        length, chunked = body_framing(fields)
    except ProtocolError:
        return
    assert not (chunked and length is not None)
    if length is not None:
        assert length >= 0
        assert all(
            value.strip(" \t").isascii() for name, value in fields if name == "content-length"
        )


@given(st.binary(max_size=40))
def test_chunk_size_refuses_or_parses(line):
    try:
        assert chunk_size(line) >= 0
    except ProtocolError:
        pass


@given(st.text(max_size=20), st.text(max_size=40))
@example("X-Q", "a\r\nSet-Cookie: evil=1")
def test_a_field_let_through_cannot_split_a_message(name, value):
    if forbidden_field([("X-Fine", "yes"), (name, value)]) is not None:
        return
    line = f"{name}: {value}\r\n".encode("latin-1")
    assert parse_fields(line, lower=False) == [(name, value.strip(" \t"))]


async def _read_all(data: bytes) -> None:
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(data)
    reader.feed_eof()
    try:
        await read_response(reader)
    except (ProtocolError, asyncio.IncompleteReadError):
        pass
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(data)
    reader.feed_eof()
    try:
        head = await read_head(reader)
        async for _ in body_chunks(reader, head):
            pass
    except (ProtocolError, asyncio.IncompleteReadError):
        pass


@given(st.one_of(st.binary(max_size=400), HTTPISH))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n")
@example(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n")
def test_the_response_reader_refuses_or_reads(data):
    asyncio.run(_read_all(data))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(st.binary(max_size=400), HTTPISH))
@example(data=b"POST / HTTP/1.1\r\nContent-Length: \xc2\xb2\r\n\r\n")
def test_any_bytes_get_an_answer_or_a_close_never_an_unhandled_error(served_once, data):
    served, complaints = served_once
    answer = served.exchange(data)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 400 ")), answer[:100]
    assert complaints.records == []
