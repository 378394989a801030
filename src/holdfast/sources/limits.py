"""How large a response each source accepts, counted as the platform counts it: on the serialised
response JSON, not on the body alone."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

from holdfast._types import RawHeaders

#: Lambda's limit on a synchronous invocation's response, counted on the serialised JSON.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
#: An Application Load Balancer accepts at most 1 MB of response JSON from a Lambda target.
ALB_RESPONSE_LIMIT = 1024 * 1024


def exceeds(result: Mapping[str, Any], limit: int) -> bool:
    """Whether ``result`` (a response a codec encoded) serialised as the runtime posts it
    (``json.dumps``, ASCII-escaped: the larger of the runtimes' encodings) is more than
    ``limit`` bytes.

    Serialising costs a copy of the response; a bound on the escaped size skips it for every
    response that is clearly small enough.
    """
    if _size_bound(result) <= limit:
        return False
    import json  # only for a response near the limit: not at init

    return len(json.dumps(result)) > limit


def clearly_within(headers: RawHeaders, body: bytes, limit: int) -> bool:
    """Whether a response of these raw ``headers`` and ``body`` is within ``limit`` whatever the
    source's encoding: a glance at the raw sizes that spares the encoded result's count
    (:func:`exceeds`) for nearly every response.

    No source's JSON takes more than 12 bytes per body byte (escaped UTF-8 takes at most 6;
    base64 4/3; a pass-through answer re-serialised, such as ``9e15``, at most 4.5) nor more
    than 24 per header byte (both header forms of REST and ALB, each escaped at most 12).
    """
    size = len(body) * _MAX_ESCAPED
    if size > limit:
        return False
    head = sum(map(len, chain.from_iterable(headers))) + _FIELD_PUNCTUATION * len(headers)
    return _FRAMING + size + head * 2 * _MAX_ESCAPED <= limit


# Escaped, a character takes at most 12 bytes (a surrogate pair), an ASCII one 6 (\u00XX).
_MAX_ESCAPED = 12
_MAX_ESCAPED_ASCII = 6
# statusCode, statusDescription, isBase64Encoded, the keys and the JSON punctuation.
_FRAMING = 512
# A field's quotes, colon and comma (and its list's brackets, in a multi-value map).
_FIELD_PUNCTUATION = 8


def _size_bound(result: Mapping[str, Any]) -> int:
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        size = len(body)  # base64 needs no escaping
    else:
        size = len(body) * (_MAX_ESCAPED_ASCII if body.isascii() else _MAX_ESCAPED)
    text = 0  # the characters of the headers and cookies, and their punctuation
    for key in ("headers", "multiValueHeaders"):
        fields = result.get(key)
        if not fields:
            continue
        text += sum(map(len, fields)) + 8 * len(fields)
        for values in fields.values():
            if type(values) is str:
                text += len(values)
            else:
                text += sum(map(len, values)) + 4 * len(values)
    cookies = result.get("cookies")
    if cookies:
        text += sum(map(len, cookies)) + 4 * len(cookies)
    return _FRAMING + size + text * _MAX_ESCAPED
