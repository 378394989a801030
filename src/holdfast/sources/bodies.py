"""Bodies: a request's from the event's text (or base64), a response's as text or base64."""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

from holdfast._types import RawHeaders
from holdfast.errors import InvalidEvent
from holdfast.sources.fields import utf8, wrong_type

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


def request_body(event: Mapping[str, Any], body_key: str, base64_key: str) -> bytes:
    body = event.get(body_key)
    if body is None or body == "":
        return b""
    if not isinstance(body, str):
        raise wrong_type(repr(body_key), "a str", body)
    if event.get(base64_key):
        try:
            # strict_mode: what b64decode(validate=True) refuses, without its Python-level
            # regex pass (binascii.Error and non-ASCII text are ValueErrors).
            return binascii.a2b_base64(body, strict_mode=True)
        except ValueError:
            raise InvalidEvent(f"{body_key!r} is flagged base64 but is not valid base64") from None
    return utf8(body, repr(body_key))


def plain_body(event: Mapping[str, Any]) -> bytes | None:
    """``request_body(event, "body", "isBase64Encoded")`` for a body that is empty, valid
    base64 or ASCII text; ``None`` for any other, never an exception (the codecs' fast paths:
    :func:`holdfast.sources.request.plain_request`)."""
    body = event.get("body")
    if body is None or body == "":
        return b""
    if type(body) is not str:
        return None
    if event.get("isBase64Encoded"):
        try:
            return binascii.a2b_base64(body, strict_mode=True)
        except ValueError:
            return None
    # UTF-8 text: request_body encodes it, or refuses a lone surrogate.
    return body.encode("ascii") if body.isascii() else None


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
    known = _text_types_seen.get((content_type, extra_text_types))
    if known is not None:
        return known
    mime = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    is_text = (
        mime.startswith("text/")
        or mime in _TEXT_MIME_TYPES
        or mime in extra_text_types
        or mime.endswith(("+json", "+xml"))
    )
    if len(_text_types_seen) < 256:  # an app sends the same few content types every time
        _text_types_seen[content_type, extra_text_types] = is_text
    return is_text


_text_types_seen: dict[tuple[bytes, frozenset[str]], bool] = {}


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
    return binascii.b2a_base64(body, newline=False).decode("ascii"), True
