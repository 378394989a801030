"""Request headers: Lambda's JSON header maps (single- or multi-value) as ASGI raw headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from holdfast._types import RawHeaders
from holdfast.errors import InvalidEvent
from holdfast.sources.fields import mapping, utf8, wrong_type
from holdfast.sources.platform import PLATFORM_HEADERS
from holdfast.sources.syntax import BadRequest, is_token

#: Names whose client copies never reach the app (:mod:`holdfast.sources.request` drops them,
#: and sets the platform ones itself); Content-Length is replaced by one counting the body.
DROPPED = PLATFORM_HEADERS | {b"transfer-encoding"}
#: An underscore, as an int: `in` on bytes is fastest with one.
UNDERSCORE = ord("_")


def header_value(value: str) -> bytes:
    # Lambda delivers header text decoded; latin-1 round-trips what HTTP servers deliver as raw
    # bytes, and anything outside it can only have arrived as UTF-8.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return utf8(value, "a header value")


def header_name(name: str) -> bytes:
    """The ASGI form of a header name, which must be a token; cached, since the same few names
    arrive every time (only valid ones are cached, so a hit needs no check)."""
    key = _header_names.get(name)
    if key is None:
        if not isinstance(name, str):
            raise wrong_type("a header name", "a str", name)
        try:
            key = name.lower().encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidEvent(f"the header name {name[:40]!r} is not latin-1 text") from None
        if not is_token(key):
            raise BadRequest(f"the header name {name[:40]!r} is not an HTTP token")
        if len(_header_names) < 4096:
            _header_names[name] = key
            if UNDERSCORE not in key and key not in DROPPED:
                plain_names[name] = key
    return key


_header_names: dict[str, bytes] = {}
#: The names seen before (see :func:`header_name`) that a request may carry as they are, or
#: reframed (Content-Length): a token without an underscore, none the request drops. The
#: codecs' fast paths (:func:`holdfast.sources.request.plain_request`) take only these.
plain_names: dict[str, bytes] = {}


def _value_bytes(value: Any) -> bytes:
    if type(value) is str:
        return header_value(value)
    raise wrong_type("a header value", "a str", value)


def known_headers(items: Mapping[str, Any], names: Mapping[str, bytes]) -> RawHeaders | None:
    """``{"Name": "value"}`` as raw headers in one pass, the common case at full speed: when
    every name is in ``names`` (names already checked, as :func:`header_name` caches them) and
    every value is latin-1 text; ``None`` for anything else."""
    try:
        return [(names[name], value.encode("latin-1")) for name, value in items.items()]
    except (KeyError, UnicodeEncodeError, AttributeError, TypeError):
        return None


def known_multi_headers(items: Mapping[str, Any], names: Mapping[str, bytes]) -> RawHeaders | None:
    """:func:`known_headers` for ``{"Name": ["value", ...]}``: lists of latin-1 text only."""
    try:
        return [
            (names[name], value.encode("latin-1"))
            for name, values in items.items()
            for value in (values if values.__class__ is list else _NOT_A_LIST)
        ]
    except (KeyError, UnicodeEncodeError, AttributeError, TypeError):
        return None


# What values that are not a list iterate as: a null, which stops the pass.
_NOT_A_LIST: tuple[Any, ...] = (None,)


def headers_from_single(headers: Any, key: str = "headers") -> RawHeaders:
    """Raw headers from a ``{"Name": "value"}`` mapping (a ``null`` value is no header)."""
    items = mapping(headers, key)
    known = known_headers(items, _header_names)
    if known is not None:
        return known
    return [
        (header_name(name), _value_bytes(value))
        for name, value in items.items()
        if value is not None
    ]


def headers_from_multi(headers: Any, key: str = "multiValueHeaders") -> RawHeaders:
    """Raw headers from a ``{"Name": ["value", ...]}`` mapping, repeats kept in order."""
    items = mapping(headers, key)
    known = known_multi_headers(items, _header_names)
    if known is not None:
        return known
    raw: RawHeaders = []
    for name, values in items.items():
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
        single = mapping(single, "headers")
        multi_names = mapping(multi, "multiValueHeaders").keys()
        # A front sends the same names in both forms: one subset test settles it.
        if not single.keys() <= multi_names:
            only_single = single.keys() - multi_names
            present = {name for name, _ in raw}
            missing = {
                name: value
                for name, value in single.items()
                if name in only_single and header_name(name) not in present
            }
            raw.extend(headers_from_single(missing))
    elif single:
        raw = headers_from_single(single)
    return raw


def find_header(headers: RawHeaders, name: bytes) -> bytes | None:
    """The first value of the header ``name`` (lower case), else ``None``."""
    for key, value in headers:
        if key == name:
            return value
    return None
