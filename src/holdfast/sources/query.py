"""Query strings: rebuilt from the parameters a source decoded, or kept as the client sent them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from holdfast.errors import InvalidEvent
from holdfast.sources.fields import mapping, wrong_type

# What a name or value keeps unquoted; a plain query is those and its separators only.
_UNRESERVED = r"A-Za-z0-9_.\-~"
_QUERY_SAFE = re.compile(f"[{_UNRESERVED}]*")
_PLAIN_QUERY = re.compile(f"[{_UNRESERVED}=&]*")
#: Visible ASCII: what a request target may carry literally. Everything else (space, control
#: characters, non-ASCII) is percent-encoded as UTF-8, as a browser does before sending it.
VISIBLE_ASCII = re.compile(r"[!-~]*")
_ALL_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def _query_items(params: Any, key: str) -> Iterator[tuple[str, str]]:
    """``(key, value)`` pairs from single- or multi-value query parameters, in order."""
    for name, values in mapping(params, key).items():
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


def merged_params(single: Any, multi: Any) -> Mapping[str, Any]:
    """Query parameters from payloads with both forms (REST, ALB): every key of the
    multi-value form, plus keys found only in the single-value one."""
    multi_form = mapping(multi, "multiValueQueryStringParameters")
    single_form = mapping(single, "queryStringParameters")
    if single_form.keys() <= multi_form.keys():  # what a front sends: the same keys in both
        return multi_form
    merged = dict(multi_form)
    for name, value in single_form.items():
        merged.setdefault(name, value)
    return merged


def query_from_decoded(params: Any, key: str = "queryStringParameters") -> bytes:
    """Rebuild a query string from percent-decoded parameters (REST API, HTTP API v1).

    ``quote_plus`` is the inverse of how ASGI frameworks parse a query: a literal ``+`` becomes
    ``%2B`` (the Rust adapter panics on it), a space ``+``, non-ASCII its UTF-8 escapes.
    """
    if not params:
        return b""
    text = plain_query(params)
    return _quoted_query(params, key) if text is None else text.encode("ascii")


def plain_query(params: Any) -> str | None:
    """The query string when no name or value needs quoting (most requests), built in one
    pass; ``None`` for anything else, which the careful path rebuilds or refuses."""
    try:
        pairs = [
            name + "=" + value
            for name, values in params.items()
            for value in (values if values.__class__ is list else (values,))
        ]
    except (TypeError, AttributeError):  # a null or non-text value, a non-object
        return None
    text = "&".join(pairs)
    # Only unreserved characters and the separators, each separator where a pair puts it.
    if (
        _PLAIN_QUERY.fullmatch(text)
        and text.count("=") == len(pairs)
        and text.count("&") == len(pairs) - 1
    ):
        return text
    return None


def _quoted_query(params: Any, key: str) -> bytes:
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
    return as_sent("&".join(f"{k}={v}" if v != "" else k for k, v in pairs), key)


def as_sent(text: str, what: str = "the query string") -> bytes:
    """A query string (or a path) as sent, ready for the scope.

    Characters no client puts on the wire literally (a raw ``é``, a space) are
    percent-encoded as UTF-8 — what the client meant, and what frameworks decode (they read
    the query as latin-1 and unquote it as UTF-8). Existing escapes are kept.
    """
    if VISIBLE_ASCII.fullmatch(text):
        return text.encode("ascii")
    try:
        return quote(text, safe=_ALL_PUNCTUATION).encode("ascii")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{what} is not valid Unicode text (a lone surrogate)") from None
