"""What every event codec shares: the decoded request, the collected response, and the helpers
that translate query strings, headers and bodies between Lambda's JSON and ASGI's bytes."""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from holdfast._types import RawHeaders
from holdfast.errors import InvalidEvent


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


def require(event: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    """``event[key]`` checked to be a ``kind``; anything else is an :class:`InvalidEvent`."""
    value = event.get(key)
    if not isinstance(value, kind):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise InvalidEvent(f"{source} event: {key!r} must be a {kind.__name__}, it is {found}")
    return value


def header_value(value: str) -> bytes:
    # Lambda delivers header text decoded; latin-1 round-trips what HTTP servers deliver as raw
    # bytes, and anything outside it can only have arrived as UTF-8.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def header_name(name: str) -> bytes:
    """The ASGI form of a header name; cached, since the same few names arrive every time."""
    key = _header_names.get(name)
    if key is None:
        key = name.lower().encode("latin-1")
        if len(_header_names) < 4096:
            _header_names[name] = key
    return key


_header_names: dict[str, bytes] = {}


def headers_from_single(headers: Mapping[str, Any] | None) -> RawHeaders:
    """Raw headers from a ``{"Name": "value"}`` mapping."""
    if not headers:
        return []
    try:
        return [(header_name(name), v.encode("latin-1")) for name, v in headers.items()]
    except (UnicodeEncodeError, AttributeError):  # rare: non-latin-1 text or non-string values
        return [(header_name(name), header_value(str(v))) for name, v in headers.items()]


def headers_from_multi(headers: Mapping[str, Any] | None) -> RawHeaders:
    """Raw headers from a ``{"Name": ["value", ...]}`` mapping, repeats kept in order."""
    if not headers:
        return []
    raw: RawHeaders = []
    append = raw.append
    for name, values in headers.items():
        key = header_name(name)
        if isinstance(values, str):
            values = (values,)
        for value in values or ():
            try:
                append((key, value.encode("latin-1")))
            except (UnicodeEncodeError, AttributeError):
                append((key, header_value(str(value))))
    return raw


def find_header(headers: RawHeaders, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def build_request(
    method: str,
    headers: RawHeaders,
    path: tuple[str, bytes, str],
    query_string: bytes,
    body: bytes,
    *,
    source_ip: str | None = None,
    default_scheme: str = "https",
) -> HTTPRequest:
    """The :class:`HTTPRequest`, with scheme, server and client derived as a proxy's would be."""
    scheme = forwarded_scheme(headers, default_scheme)
    decoded, raw, root_path = path
    return HTTPRequest(
        method=method.upper(),
        scheme=scheme,
        server=server_address(headers, scheme),
        client=client_address(headers, source_ip),
        root_path=root_path,
        path=decoded,
        raw_path=raw,
        query_string=query_string,
        headers=headers,
        body=body,
    )


def _query_items(params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(key, value)`` pairs from single- or multi-value query parameters, in order."""
    for key, values in params.items():
        if isinstance(values, str) or values is None:
            values = (values or "",)
        for value in values:
            yield key, str(value)


def query_from_decoded(params: Mapping[str, Any] | None) -> bytes:
    """Rebuild a query string from percent-decoded parameters (REST API, HTTP API v1).

    ``quote_plus`` is the inverse of how ASGI frameworks parse a query: a literal ``+`` becomes
    ``%2B`` (the Rust adapter panics on it), a space ``+``, non-ASCII its UTF-8 escapes.
    """
    if not params:
        return b""
    pairs = _query_items(params)
    return "&".join(f"{_quote_plus(k)}={_quote_plus(v)}" for k, v in pairs).encode("ascii")


def _quote_plus(text: str) -> str:
    return text if _QUERY_SAFE.fullmatch(text) else quote_plus(text, safe="")


def query_from_encoded(params: Mapping[str, Any] | None) -> bytes:
    """Rebuild a query string from parameters still URL-encoded as sent (ALB, VPC Lattice)."""
    if not params:
        return b""
    pairs = _query_items(params)
    return "&".join(f"{k}={v}" if v != "" else k for k, v in pairs).encode("utf-8")


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
        raw, decoded = path, unquote(path) if "%" in path else path
    else:
        raw = quote(path, safe=_PATH_SAFE) if _NEEDS_QUOTING.search(path) else path
        decoded = path
    root_path = ""
    for prefix in (mount, base_path):
        candidate = root_path + prefix
        if prefix and (decoded == candidate or decoded.startswith(candidate + "/")):
            root_path = candidate
    return decoded, raw.encode("utf-8"), root_path


def request_body(event: Mapping[str, Any], body_key: str, base64_key: str) -> bytes:
    body = event.get(body_key)
    if not body:
        return b""
    if not isinstance(body, str):
        raise InvalidEvent(f"{body_key!r} must be a string, it is a {type(body).__name__}")
    if event.get(base64_key):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise InvalidEvent(f"{body_key!r} is flagged base64 but is not valid base64") from None
    return body.encode("utf-8")


def forwarded_scheme(headers: RawHeaders, default: str = "https") -> str:
    proto = find_header(headers, b"x-forwarded-proto")
    if proto:
        return proto.split(b",")[0].strip().decode("latin-1").lower()
    return default


def server_address(headers: RawHeaders, scheme: str) -> tuple[str, int] | None:
    """``(host, port)`` from the Host header, the port falling back to X-Forwarded-Port."""
    host = find_header(headers, b"host")
    if host is None:
        return None
    name, sep, port = host.decode("latin-1").rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    forwarded = find_header(headers, b"x-forwarded-port")
    if forwarded and forwarded.isdigit():
        return host.decode("latin-1"), int(forwarded)
    return host.decode("latin-1"), 443 if scheme == "https" else 80


def client_address(headers: RawHeaders, source_ip: str | None) -> tuple[str, int] | None:
    if source_ip:
        return source_ip, 0
    forwarded = find_header(headers, b"x-forwarded-for")
    if forwarded:
        return forwarded.split(b",")[-1].strip().decode("latin-1"), 0
    return None


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


def cookie_header(cookies: Iterable[str]) -> tuple[bytes, bytes]:
    return b"cookie", "; ".join(cookies).encode("latin-1", "replace")


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
