"""The :class:`HTTPRequest` a codec hands over, rebuilt the way a careful proxy and server would:
framing from the body, platform context from the event, a Host the app can parse, and no
request a server would refuse.

Client headers that would pass for platform context are dropped. In a WSGI environ a header's
underscores and dashes are the same key (``X_Amz_Tenant_Id`` and ``X-Amz-Tenant-Id`` are both
``HTTP_X_AMZ_TENANT_ID``), so for WSGI apps every header name holding an underscore is dropped,
as gunicorn (``header_map="drop"``), Daphne and nginx do by default. ASGI keeps names apart, so
for ASGI apps only those that, read with dashes, fall in the platform's names (``x-amzn-*``,
``x-amz-*``, ``x-forwarded-*``) are dropped: an ASGI framework that folds underscores (Django's
ASGI handler does) can then read no forged platform header either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from holdfast._types import LambdaContext, LambdaEvent, RawHeaders
from holdfast.sources.addresses import (
    FRONT_PORTS,
    client_address,
    forwarded_scheme,
    parse_host,
    server_address,
)
from holdfast.sources.bodies import plain_body
from holdfast.sources.headers import DROPPED, UNDERSCORE
from holdfast.sources.messages import HTTPRequest
from holdfast.sources.paths import plain_split
from holdfast.sources.platform import platform_headers
from holdfast.sources.syntax import BadRequest, has_control

logger = logging.getLogger("holdfast")

# Headers rebuilt for the app, whatever the client sent: the platform ones from the event and
# context (sources.platform), the framing ones from the body.
_REPLACED = DROPPED | {b"content-length"}
# The headers the scope's scheme, server and client derive from.
_FORWARDED = frozenset({b"x-forwarded-proto", b"x-forwarded-port", b"x-forwarded-for"})
# What _reframed does with a header, by name (one lookup: most names have no role).
_ROLES = {
    **dict.fromkeys(_REPLACED, "replaced"),
    b"host": "host",
    **dict.fromkeys(_FORWARDED, "forwarded"),
}
# The names the platform and the front set: no client header may pass for one (module docs).
_PLATFORM_NAMES = (b"x-amzn-", b"x-amz-", b"x-forwarded-")


def build_request(
    method: str,
    headers: RawHeaders,
    path: tuple[str, bytes, str],
    query_string: bytes,
    body: bytes,
    *,
    platform: tuple[LambdaEvent, LambdaContext] | None,
    wsgi: bool,
    source_ip: str | None = None,
    default_scheme: str = "https",
) -> HTTPRequest:
    """The :class:`HTTPRequest`, with scheme, server and client derived as a proxy's would be.

    ``platform`` is the real event and context the context headers are built from (``None``:
    none are added); client copies of them, and headers disguised as platform ones (see the
    module docs; ``wsgi`` says which), are always dropped. ``headers`` is the codec's own list,
    which the request may keep (changed). ``Content-Length`` is set from the body
    and a ``Host`` that is not ``host[:port]`` is dropped, as a front would refuse it. A
    control character in a header value or NUL in the path is a :class:`BadRequest`.
    """
    decoded, raw, root_path = path
    if "\x00" in decoded:
        raise BadRequest("the path holds a NUL character (%00)")
    headers, host, forwarded = _reframed(headers, body, wsgi)
    if platform is not None:
        headers.extend(platform_headers(*platform))
    scheme = forwarded_scheme(forwarded.get(b"x-forwarded-proto"), default_scheme)
    return HTTPRequest(
        method,
        scheme,
        server_address(host, forwarded.get(b"x-forwarded-port"), scheme),
        client_address(forwarded.get(b"x-forwarded-for"), source_ip),
        root_path,
        decoded,
        raw,
        query_string,
        headers,
        body,
    )


def plain_request(
    method: str,
    headers: RawHeaders,
    path: str,
    mount: str,
    base_path: str,
    query_string: bytes,
    event: LambdaEvent,
    source_ip: str,
) -> HTTPRequest | None:
    """The request :func:`build_request` would build, for one as the fronts send it; ``None``
    for any other, which the codec then decodes field by field.

    ``path`` is the full path the client asked for, ``mount`` the stage or mapping before the
    app (see :func:`~holdfast.sources.paths.split_path`), and ``event`` holds the body (``body``,
    ``isBase64Encoded``). A codec's fast path (:attr:`~holdfast.sources.codec.EventCodec.plain`)
    reads its common event shape in one function and calls this only when every field has its
    plain type and every header name is in :data:`~holdfast.sources.headers.plain_names`. A
    request taken here has each name once, a Host that parses, X-Forwarded-Proto ``https`` (or
    none), a front's X-Forwarded-Port, a source IP, no control character in a value, a path
    with nothing to quote and a body :func:`~holdfast.sources.bodies.plain_body` reads; it gets
    the same record (``tests/adapter/test_sources_fast_paths.py``). Why: behind a framework the
    general path's code is out of the caches on every request, and its many small calls cost
    mostly misses (``bench/cold_decode.py``).
    """
    split = plain_split(path, mount, base_path)
    body = plain_body(event)
    if split is None or body is None:
        return None
    path, raw_path, root_path = split  # not `*split`: a rarer call, colder code
    fields = dict(headers)
    if len(fields) != len(headers) or not source_ip or not source_ip.isascii():
        return None
    if has_control(b"".join(fields.values())):
        return None
    host_value = fields.get(b"host")
    server = None
    if host_value is not None:
        host = parse_host(host_value)
        if host is None:
            return None
        name, port = host
        if port is None:
            forwarded_port = fields.get(b"x-forwarded-port")
            port = 443 if forwarded_port is None else FRONT_PORTS.get(forwarded_port)
            if port is None:
                return None
        server = (name, port)
    proto = fields.get(b"x-forwarded-proto")
    if proto is not None and proto != b"https":
        return None
    _reframe_length(headers, fields, body)
    # In order, not by keyword: a class called with keywords takes a colder way in.
    return HTTPRequest(
        method,
        "https",
        server,
        (source_ip, 0),
        root_path,
        path,
        raw_path,
        query_string,
        headers,
        body,
    )


def _reframe_length(headers: RawHeaders, fields: Mapping[bytes, bytes], body: bytes) -> None:
    """Frame the body by its length, in ``headers`` whose names are each once in ``fields``:
    a client's Content-Length is dropped, and one counting the body is added at the end when
    there was one or there is a body."""
    if b"content-length" in fields:
        del headers[list(fields).index(b"content-length")]
    elif not body:
        return
    headers.append((b"content-length", str(len(body)).encode("latin-1")))


def _control_in(headers: RawHeaders) -> BadRequest:
    name = next(name for name, value in headers if has_control(value))
    return BadRequest(
        f"the value of the header {name[:40].decode('latin-1')!r} holds a control character"
        " (CR, LF, NUL, ...)"
    )


def _reframed(
    headers: RawHeaders, body: bytes, wsgi: bool
) -> tuple[RawHeaders, tuple[str, int | None] | None, Mapping[bytes, bytes]]:
    """``(headers, host, forwarded)``: the headers the app gets, the parsed Host header, and
    the X-Forwarded-* values the scope derives from (the first Proto and Port, the last For).

    ``headers`` is the codec's own list: it may come back changed. A control character in a
    value is a :class:`BadRequest`.
    """
    fields = dict(headers)
    # Requests as fronts send them (each name once, none with an underscore, nothing to drop
    # but a Content-Length, a Host that parses) are settled with a few set operations in C: a
    # fifth fewer instructions than the header-by-header loop for the twenty headers of the
    # REST sample event (valgrind); every other request takes that loop, the reference for
    # what is kept (tests/adapter/test_sources_fast_paths.py).
    if (
        len(fields) == len(headers)
        and DROPPED.isdisjoint(fields)
        and UNDERSCORE not in b"".join(fields)
    ):
        host_value = fields.get(b"host")
        host = None if host_value is None else parse_host(host_value)
        if host is not None or host_value is None:
            if has_control(b"".join(fields.values())):
                raise _control_in(headers)
            _reframe_length(headers, fields, body)
            return headers, host, fields
    return _reframed_one_by_one(headers, body, wsgi)


def _reframed_one_by_one(
    headers: RawHeaders, body: bytes, wsgi: bool
) -> tuple[RawHeaders, tuple[str, int | None] | None, dict[bytes, bytes]]:
    if has_control(b"".join([value for _, value in headers])):
        raise _control_in(headers)
    kept: RawHeaders = []
    host: tuple[str, int | None] | None = None
    forwarded: dict[bytes, bytes] = {}
    framed = bool(body)
    for name, value in headers:
        role = _ROLES.get(name)
        if role is None:  # most headers: kept, unless disguised as a platform one
            if UNDERSCORE in name and (
                wsgi or name.replace(b"_", b"-").startswith(_PLATFORM_NAMES)
            ):
                continue
        elif role == "replaced":
            framed = framed or name == b"content-length"
            continue
        elif role == "host":
            parsed = parse_host(value)
            if parsed is None:
                logger.warning("dropping a Host header that is not host[:port]: %.80r", value)
                continue
            if host is not None:
                logger.warning("dropping a second Host header: %.80r", value)
                continue
            host = parsed
        elif name == b"x-forwarded-for":
            forwarded[name] = value  # the front appends to the last one
        else:
            forwarded.setdefault(name, value)
        kept.append((name, value))
    if framed:
        # The event carries the whole body: its length frames it, whatever the client said.
        kept.append((b"content-length", str(len(body)).encode("latin-1")))
    return kept, host, forwarded
