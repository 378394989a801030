"""What every event codec shares: the decoded request, the collected response, and the helpers
that translate query strings, headers and bodies between Lambda's JSON and ASGI's bytes.

Decoding is strict about what it cannot translate faithfully and lenient about the rest: a field
of the wrong type, text that is not Unicode (a lone surrogate) or a header name outside latin-1
is an :class:`InvalidEvent`; a header no front would deliver (an unparsable ``Host``, a
``Content-Length`` that disagrees with the body) is corrected the way a proxy would, so the app
never sees a scope it cannot parse.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from holdfast._types import LambdaContext, LambdaEvent, RawHeaders
from holdfast.errors import InvalidEvent
from holdfast.sources.platform import PLATFORM_HEADERS

logger = logging.getLogger("holdfast")

#: Lambda's limit on a synchronous invocation's response, counted on the serialised JSON.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
#: An Application Load Balancer accepts at most 1 MB of response JSON from a Lambda target.
ALB_RESPONSE_LIMIT = 1024 * 1024


@dataclass(slots=True)
class HTTPRequest:
    """An HTTP request decoded from a Lambda event, in the terms of an ASGI ``http`` scope."""

    method: str
    scheme: str
    server: tuple[str, int] | None
    client: tuple[str, int] | None
    root_path: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: RawHeaders
    body: bytes


@dataclass(slots=True)
class HTTPResponse:
    """A complete buffered response, ready to be encoded for the event's source."""

    status: int
    headers: RawHeaders
    body: bytes


# Text media types besides text/*; "+json" / "+xml" suffixes are text as well.
_TEXT_MIME_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/ecmascript",
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/x-ndjson",
        "application/yaml",
    }
)
# Path characters that stay literal when re-encoding a decoded path (RFC 3986 pchar + "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = re.compile(r"[A-Za-z0-9_.\-~]*")
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9/:@!$&'()*+,;=\-._~]")
# Visible ASCII: what a request target may carry literally. Everything else (space, control
# characters, non-ASCII) is percent-encoded as UTF-8, as a browser does before sending it.
_VISIBLE_ASCII = re.compile(r"[!-~]*")
_ALL_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# RFC 9110 token: what a method may consist of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Host = reg-name / IPv4 / "[" IPv6 "]", then an optional ":" port (RFC 3986 authority).
_HOST = re.compile(
    r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(?P<port>[0-9]{0,5}))?"
)
_PORT = re.compile(r"[0-9]{1,5}")
_FORWARDED_SCHEMES = frozenset({"http", "https"})
# Headers rebuilt for the app, whatever the client sent: the platform ones from the event and
# context (sources.platform), the framing ones from the body.
_REPLACED = PLATFORM_HEADERS | {b"content-length", b"transfer-encoding"}


class HTTPCodec:
    """What the codecs of HTTP sources share: the text media types, the net under decoding
    (see :func:`as_invalid_event`) and the size check. A codec sets ``name``, ``source`` (how
    errors name its events) and ``max_response_bytes``, and implements ``_decode`` and
    ``encode``."""

    name: str
    source: str
    max_response_bytes: int

    def __init__(self, text_mime_types: frozenset[str] = frozenset()) -> None:
        self.text_mime_types = text_mime_types

    def decode(
        self, event: LambdaEvent, base_path: str, context: LambdaContext = None
    ) -> HTTPRequest:
        try:
            return self._decode(event, base_path, context)
        except DECODE_ERRORS as exc:
            raise as_invalid_event(self.source, exc)  # noqa: B904 - it sets the cause

    def _decode(self, event: LambdaEvent, base_path: str, context: LambdaContext) -> HTTPRequest:
        raise NotImplementedError

    def too_large(self, result: dict[str, Any]) -> bool:
        """Whether the source would refuse ``result`` (an encoded response) for its size."""
        return exceeds(result, self.max_response_bytes)


# -- checking the event's fields ------------------------------------------------------------
#: What decoding a malformed event can raise (an :class:`InvalidEvent` is a ``ValueError``).
DECODE_ERRORS = (TypeError, AttributeError, KeyError, ValueError, RecursionError)


def as_invalid_event(source: str, exc: Exception) -> InvalidEvent:
    """``exc``, raised while decoding a ``source`` event, as an :class:`InvalidEvent` naming
    the source. The codecs check every field they read; this is the net under them
    (:meth:`HTTPCodec.decode`), so that a decode ends in a request or an ``InvalidEvent`` and
    nothing else.
    """
    if isinstance(exc, InvalidEvent):
        if str(exc).startswith(source):
            return exc
        error = InvalidEvent(f"{source} event: {exc}")
        error.__suppress_context__ = True
        return error
    error = InvalidEvent(f"{source} event: {_describe(exc)}")
    error.__cause__ = exc
    return error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UnicodeError):
        return "a field is not valid Unicode text (a lone surrogate?)"
    if isinstance(exc, RecursionError):
        return "a field is nested too deeply"
    return f"a field has the wrong type or value: {exc}"


def require(event: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    """``event[key]`` checked to be a ``kind``; anything else is an :class:`InvalidEvent`."""
    value = event.get(key)
    if value is None:
        raise InvalidEvent(f"{source} event: {key!r} must be a {kind.__name__}, it is missing")
    return _checked(value, key, kind, source)


def wrong_type(what: str, expected: str, value: Any) -> InvalidEvent:
    return InvalidEvent(
        f"{what} has the wrong type: it must be {expected}, it is a {type(value).__name__}"
    )


def optional(event: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    """``event[key]`` if present and not null, checked to be a ``kind``; else ``None``."""
    value = event.get(key)
    return None if value is None else _checked(value, key, kind, source)


def _checked(value: Any, key: str, kind: type, source: str) -> Any:
    if not isinstance(value, kind):
        raise wrong_type(f"{source} event: {key!r}", f"a {kind.__name__}", value)
    return value


def method_of(value: str, source: str) -> str:
    """The request method, upper case; it must be an HTTP token."""
    if not _TOKEN.fullmatch(value):
        raise InvalidEvent(f"{source} event: the HTTP method {value[:40]!r} is not a token")
    return value.upper()


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{what} is not valid Unicode text (a lone surrogate)") from None


# -- request headers --------------------------------------------------------------------------
def header_value(value: str) -> bytes:
    # Lambda delivers header text decoded; latin-1 round-trips what HTTP servers deliver as raw
    # bytes, and anything outside it can only have arrived as UTF-8.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return _utf8(value, "a header value")


def header_name(name: str) -> bytes:
    """The ASGI form of a header name; cached, since the same few names arrive every time."""
    key = _header_names.get(name)
    if key is None:
        if not isinstance(name, str):
            raise wrong_type("a header name", "a str", name)
        try:
            key = name.lower().encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidEvent(f"the header name {name[:40]!r} is not latin-1 text") from None
        if len(_header_names) < 4096:
            _header_names[name] = key
    return key


_header_names: dict[str, bytes] = {}


def _header_map(headers: Any, key: str) -> Mapping[str, Any]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise wrong_type(repr(key), "an object", headers)
    return headers


def _value_bytes(value: Any) -> bytes:
    if type(value) is str:
        return header_value(value)
    raise wrong_type("a header value", "a str", value)


def headers_from_single(headers: Any, key: str = "headers") -> RawHeaders:
    """Raw headers from a ``{"Name": "value"}`` mapping (a ``null`` value is no header)."""
    mapping = _header_map(headers, key)
    try:  # the common case, at full speed: latin-1 text only
        return [(header_name(name), value.encode("latin-1")) for name, value in mapping.items()]
    except (UnicodeEncodeError, AttributeError, TypeError):
        pass
    return [
        (header_name(name), _value_bytes(value))
        for name, value in mapping.items()
        if value is not None
    ]


def headers_from_multi(headers: Any, key: str = "multiValueHeaders") -> RawHeaders:
    """Raw headers from a ``{"Name": ["value", ...]}`` mapping, repeats kept in order."""
    mapping = _header_map(headers, key)
    try:  # the common case, at full speed: lists (or single strings) of latin-1 text
        return [
            (header_name(name), value.encode("latin-1"))
            for name, values in mapping.items()
            for value in (values if values.__class__ is list else (values,))
        ]
    except (UnicodeEncodeError, AttributeError, TypeError):
        pass
    raw: RawHeaders = []
    for name, values in mapping.items():
        name_bytes = header_name(name)
        if values is None:
            continue
        if isinstance(values, str):
            values = (values,)
        elif not isinstance(values, list):
            raise wrong_type(f"{key!r}: {name[:40]!r}", "a list of strings", values)
        raw.extend((name_bytes, _value_bytes(value)) for value in values if value is not None)
    return raw


def merged_headers(single: Any, multi: Any) -> RawHeaders:
    """Headers from payloads that carry both ``headers`` and ``multiValueHeaders`` (REST, ALB).

    The multi-value form is complete when the front sends both; a name found only in
    ``headers`` (a hand-made or edited event) is kept rather than lost.
    """
    raw = headers_from_multi(multi)
    if single and raw:
        present = {name for name, _ in raw}
        single = _header_map(single, "headers")
        missing = {name: v for name, v in single.items() if header_name(name) not in present}
        raw.extend(headers_from_single(missing))
    elif single:
        raw = headers_from_single(single)
    return raw


def find_header(headers: RawHeaders, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


# -- building the request ---------------------------------------------------------------------
def build_request(
    method: str,
    headers: RawHeaders,
    path: tuple[str, bytes, str],
    query_string: bytes,
    body: bytes,
    *,
    platform: RawHeaders | None = None,
    source_ip: str | None = None,
    default_scheme: str = "https",
) -> HTTPRequest:
    """The :class:`HTTPRequest`, with scheme, server and client derived as a proxy's would be.

    ``platform`` holds the context headers built from the real event and context; client
    copies of them are dropped. ``Content-Length`` is set from the body and a ``Host`` that is
    not ``host[:port]`` is dropped, as a front would refuse it.
    """
    headers, host, forwarded = _reframed(headers, platform or [], body)
    scheme = forwarded_scheme(forwarded.get(b"x-forwarded-proto"), default_scheme)
    decoded, raw, root_path = path
    return HTTPRequest(
        method=method,
        scheme=scheme,
        server=server_address(host, forwarded.get(b"x-forwarded-port"), scheme),
        client=client_address(forwarded.get(b"x-forwarded-for"), source_ip),
        root_path=root_path,
        path=decoded,
        raw_path=raw,
        query_string=query_string,
        headers=headers,
        body=body,
    )


# The headers the scope's scheme, server and client derive from.
_FORWARDED = frozenset({b"x-forwarded-proto", b"x-forwarded-port", b"x-forwarded-for"})


def _reframed(
    headers: RawHeaders, platform: RawHeaders, body: bytes
) -> tuple[RawHeaders, tuple[str, int | None] | None, dict[bytes, bytes]]:
    """``(headers, host, forwarded)``: the headers the app gets, the parsed Host header, and
    the X-Forwarded-* values the scope derives from (the first Proto and Port, the last For)."""
    kept: RawHeaders = []
    host: tuple[str, int | None] | None = None
    forwarded: dict[bytes, bytes] = {}
    framed = bool(body)
    for name, value in headers:
        if name in _REPLACED:
            framed = framed or name == b"content-length"
            continue
        if name == b"host":
            parsed = _parse_host(value)
            if parsed is None:
                logger.warning("dropping a Host header that is not host[:port]: %.80r", value)
                continue
            if host is not None:
                logger.warning("dropping a second Host header: %.80r", value)
                continue
            host = parsed
        elif name in _FORWARDED:
            if name == b"x-forwarded-for":
                forwarded[name] = value  # the front appends to the last one
            else:
                forwarded.setdefault(name, value)
        kept.append((name, value))
    kept.extend(platform)
    if framed:
        # The event carries the whole body: its length frames it, whatever the client said.
        kept.append((b"content-length", b"%d" % len(body)))
    return kept, host, forwarded


def _parse_host(value: bytes) -> tuple[str, int | None] | None:
    """``(host, port or None)`` from a Host header; ``None`` unless it is ``host[:port]``."""
    match = _HOST.fullmatch(value.decode("latin-1"))
    if match is None:
        return None
    name, port_text = match["name"], match["port"]
    port = _port(port_text) if port_text else None
    if port_text and port is None:
        return None
    if name.startswith("["):
        name = name[1:-1]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    elif "" in name.split(".")[:-1]:
        # An empty label (".", ".a", "a..b") is no DNS name: IDNA, and so Werkzeug, refuse it.
        return None
    return name, port


def _port(text: str) -> int | None:
    # Digits only, ASCII only ("²".isdigit() is true), and at most 65535: what int() may parse.
    return int(text) if _PORT.fullmatch(text) and int(text) <= 65535 else None


def forwarded_scheme(proto: bytes | None, default: str = "https") -> str:
    """``http`` or ``https`` from X-Forwarded-Proto (set by the front), else ``default``."""
    if proto:
        scheme = proto.split(b",")[0].strip().decode("latin-1").lower()
        if scheme in _FORWARDED_SCHEMES:
            return scheme
    return default


def server_address(
    host: tuple[str, int | None] | None, forwarded_port: bytes | None, scheme: str
) -> tuple[str, int] | None:
    """``(host, port)`` from the Host header, the port falling back to X-Forwarded-Port and
    then the scheme's; ``None`` without a valid Host header (an invalid one is dropped)."""
    if host is None:
        return None
    name, port = host
    if port is None and forwarded_port is not None:
        port = _port(forwarded_port.split(b",")[0].strip().decode("latin-1"))
    if port is None:
        port = 443 if scheme == "https" else 80
    return name, port


def client_address(forwarded_for: bytes | None, source_ip: str | None) -> tuple[str, int] | None:
    """``(address, 0)``: the source IP the front reports, else the last X-Forwarded-For entry
    (the one the front appended; earlier entries are the client's to forge)."""
    if source_ip:
        _utf8(source_ip, "the source IP")
        return source_ip, 0
    if forwarded_for:
        address = forwarded_for.split(b",")[-1].strip().decode("latin-1")
        if address:
            return address, 0
    return None


# -- query strings ----------------------------------------------------------------------------
def _query_items(params: Any, key: str) -> Iterator[tuple[str, str]]:
    """``(key, value)`` pairs from single- or multi-value query parameters, in order."""
    for name, values in _header_map(params, key).items():
        if values is None or isinstance(values, str):
            values = (values or "",)
        elif not isinstance(values, list):
            raise wrong_type(f"{key!r}: {name[:40]!r}", "a str or a list", values)
        for value in values:
            if value is None:
                value = ""
            elif type(value) is not str:
                raise wrong_type(f"{key!r}: a value of {name[:40]!r}", "a str", value)
            yield name, value


def merged_params(single: Any, multi: Any) -> dict[str, Any]:
    """Query parameters from payloads with both forms (REST, ALB): every key of the
    multi-value form, plus keys found only in the single-value one."""
    merged: dict[str, Any] = dict(_header_map(multi, "multiValueQueryStringParameters"))
    for name, value in _header_map(single, "queryStringParameters").items():
        merged.setdefault(name, value)
    return merged


def query_from_decoded(params: Any, key: str = "queryStringParameters") -> bytes:
    """Rebuild a query string from percent-decoded parameters (REST API, HTTP API v1).

    ``quote_plus`` is the inverse of how ASGI frameworks parse a query: a literal ``+`` becomes
    ``%2B`` (the Rust adapter panics on it), a space ``+``, non-ASCII its UTF-8 escapes.
    """
    if not params:
        return b""
    pairs = _query_items(params, key)
    try:
        text = "&".join(f"{_quote_plus(k)}={_quote_plus(v)}" for k, v in pairs)
    except UnicodeEncodeError:
        raise InvalidEvent(f"{key!r} is not valid Unicode text (a lone surrogate)") from None
    return text.encode("ascii")


def _quote_plus(text: str) -> str:
    return text if _QUERY_SAFE.fullmatch(text) else quote_plus(text, safe="")


def query_from_encoded(params: Any, key: str = "queryStringParameters") -> bytes:
    """Rebuild a query string from parameters still URL-encoded as sent (ALB, VPC Lattice)."""
    if not params:
        return b""
    pairs = _query_items(params, key)
    return raw_query("&".join(f"{k}={v}" if v != "" else k for k, v in pairs), key)


def raw_query(text: str, what: str = "the query string") -> bytes:
    """A query string as sent, ready for ``scope["query_string"]``.

    Characters no client puts on the wire literally (a raw ``é``, a space) are
    percent-encoded as UTF-8 — what the client meant, and what frameworks decode (they read
    the query as latin-1 and unquote it as UTF-8). Existing escapes are kept.
    """
    if _VISIBLE_ASCII.fullmatch(text):
        return text.encode("ascii")
    try:
        return quote(text, safe=_ALL_PUNCTUATION).encode("ascii")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{what} is not valid Unicode text (a lone surrogate)") from None


# -- paths and bodies ---------------------------------------------------------------------------
def split_path(
    path: str, *, encoded: bool, mount: str = "", base_path: str = ""
) -> tuple[str, bytes, str]:
    """``(path, raw_path, root_path)`` for the scope from the full path the client asked for.

    ``encoded`` says whether the source delivers the path percent-encoded as sent (REST API,
    Function URLs, ALB, VPC Lattice) or already decoded (HTTP API). As uvicorn does, ``path``
    keeps the full path and ``root_path`` names the prefix the app is mounted below: the API
    stage or mapping (``mount``) and then the configured ``base_path``, each removed at most once
    when a framework routes.
    """
    if not path.startswith("/"):
        path = "/" + path
    if encoded:
        raw = raw_query(path, "the path")  # as sent, non-ASCII escaped
        decoded = unquote(raw.decode("ascii")) if b"%" in raw else raw.decode("ascii")
    else:
        _utf8(path, "the path")
        quoted = quote(path, safe=_PATH_SAFE) if _NEEDS_QUOTING.search(path) else path
        raw, decoded = quoted.encode("ascii"), path
    root_path = ""
    for prefix in (mount, base_path):
        candidate = root_path + prefix
        if prefix and (decoded == candidate or decoded.startswith(candidate + "/")):
            root_path = candidate
    if base_path and decoded == root_path and decoded.endswith(base_path):
        # The base path itself is the app's root ("/", as LWA forwards it); an empty path
        # below the root path would make frameworks redirect instead.
        decoded, raw = decoded + "/", raw + b"/"
    return decoded, raw, root_path


def request_body(event: Mapping[str, Any], body_key: str, base64_key: str) -> bytes:
    body = event.get(body_key)
    if body is None or body == "":
        return b""
    if not isinstance(body, str):
        raise wrong_type(repr(body_key), "a str", body)
    if event.get(base64_key):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise InvalidEvent(f"{body_key!r} is flagged base64 but is not valid base64") from None
    return _utf8(body, repr(body_key))


# -- responses ----------------------------------------------------------------------------------
def is_text_body(
    headers: RawHeaders, extra_text_types: frozenset[str] = frozenset()
) -> bool | None:
    """Whether a response body can travel as text: ``True``, ``False``, or ``None`` (unknown).

    Compressed bodies are binary whatever their media type; without a content type the caller
    decides by trying to decode the body.
    """
    content_type = None
    for key, value in headers:
        if key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return False
        if key == b"content-type":
            content_type = value
    if content_type is None:
        return None
    mime = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    return (
        mime.startswith("text/")
        or mime in _TEXT_MIME_TYPES
        or mime in extra_text_types
        or mime.endswith(("+json", "+xml"))
    )


def encode_body(
    body: bytes, headers: RawHeaders, extra_text_types: frozenset[str] = frozenset()
) -> tuple[str, bool]:
    """``(body, isBase64Encoded)`` for a Lambda response."""
    if not body:
        return "", False
    if is_text_body(headers, extra_text_types) is not False:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def grouped_headers(headers: RawHeaders) -> dict[str, list[str]]:
    """Response headers grouped by name, values in order."""
    grouped: dict[str, list[str]] = {}
    for key, value in headers:
        grouped.setdefault(key.decode("latin-1"), []).append(header_text(value))
    return grouped


def status_description(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def single_value_headers(grouped: dict[str, list[str]]) -> dict[str, str]:
    """Headers for sources that take one value per name (ALB single-value mode, VPC Lattice)."""
    return dict(_single_values(grouped))


def _single_values(grouped: dict[str, list[str]]) -> Iterator[tuple[str, str]]:
    # Single-value mode keeps one value per name. Repeated Set-Cookie headers cannot be joined,
    # so each goes out under a different letter case of the name (header names are
    # case-insensitive); other repeats are comma-joined as RFC 9110 allows.
    for name, values in grouped.items():
        if len(values) == 1:
            yield name, values[0]
        elif name == "set-cookie":
            yield from zip(_case_variants(name), values, strict=False)
        else:
            yield name, ",".join(values)


def _case_variants(name: str) -> Iterator[str]:
    letters = [(c.lower(), c.upper()) if c.isalpha() else (c,) for c in name]
    return ("".join(chars) for chars in itertools.product(*letters))


def exceeds(result: Mapping[str, Any], limit: int) -> bool:
    """Whether ``result`` (a response a codec encoded) serialised as the runtime posts it
    (``json.dumps``, ASCII-escaped: the larger of the runtimes' encodings) is more than
    ``limit`` bytes.

    Serialising costs a copy of the response; a bound on the escaped size skips it for every
    response that is clearly small enough.
    """
    if _size_bound(result) <= limit:
        return False
    return len(json.dumps(result)) > limit


# Escaped, a character takes at most 12 bytes (a surrogate pair), an ASCII one 6 (\u00XX).
_MAX_ESCAPED = 12
_MAX_ESCAPED_ASCII = 6
# statusCode, statusDescription, isBase64Encoded, the keys and the JSON punctuation.
_FRAMING = 512


def _size_bound(result: Mapping[str, Any]) -> int:
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        size = len(body)  # base64 needs no escaping
    else:
        size = len(body) * (_MAX_ESCAPED_ASCII if body.isascii() else _MAX_ESCAPED)
    text = 0  # the characters of the headers and cookies, and their punctuation
    for key in ("headers", "multiValueHeaders"):
        for name, values in (result.get(key) or {}).items():
            if isinstance(values, str):
                text += len(name) + len(values) + 8
            else:
                text += len(name) + sum(len(value) + 4 for value in values) + 8
    text += sum(len(cookie) + 4 for cookie in result.get("cookies") or ())
    return _FRAMING + size + text * _MAX_ESCAPED
