"""Reading an event's fields: each one checked for its JSON type and its text for Unicode, so
that a malformed event ends in an :class:`InvalidEvent` naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from holdfast.errors import InvalidEvent
from holdfast.sources.syntax import TOKEN


def require(event: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    """``event[key]`` checked to be a ``kind``; anything else is an :class:`InvalidEvent`."""
    value = event.get(key)
    if value is None:
        raise InvalidEvent(f"{source} event: {key!r} must be a {kind.__name__}, it is missing")
    return _checked(value, key, kind, source)


def optional(event: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    """``event[key]`` if present and not null, checked to be a ``kind``; else ``None``."""
    value = event.get(key)
    return None if value is None else _checked(value, key, kind, source)


def optional_text(event: Mapping[str, Any], key: str, source: str) -> str | None:
    """``optional(event, key, str, source)``, with the common case (a str or nothing) tested
    inline: the most read kind of field, on every request."""
    value = event.get(key)
    if value is None or type(value) is str:
        return value
    checked: str = _checked(value, key, str, source)  # a str subclass; else it raises
    return checked


def _checked(value: Any, key: str, kind: type, source: str) -> Any:
    if not isinstance(value, kind):
        raise wrong_type(f"{source} event: {key!r}", f"a {kind.__name__}", value)
    return value


def wrong_type(what: str, expected: str, value: Any) -> InvalidEvent:
    return InvalidEvent(
        f"{what} has the wrong type: it must be {expected}, it is a {type(value).__name__}"
    )


def mapping(value: Any, key: str) -> Mapping[str, Any]:
    """An object field (headers, query parameters): ``null`` is empty, a non-object invalid."""
    if value is None:
        return {}
    if type(value) is dict:  # what JSON gives: no ABC check
        return value
    if not isinstance(value, Mapping):
        raise wrong_type(repr(key), "an object", value)
    return value


def method_of(value: str, source: str) -> str:
    """The request method, upper case; it must be an HTTP token."""
    method = METHODS.get(value)
    if method is not None:
        return method
    if not TOKEN.fullmatch(value):
        raise InvalidEvent(f"{source} event: the HTTP method {value[:40]!r} is not a token")
    return value.upper()


#: The methods clients send, already checked: one lookup instead of a match per request.
METHODS = {
    spelling: method
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    for spelling in (method, method.lower())
}


def utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate (no Unicode text at all) is an InvalidEvent."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{what} is not valid Unicode text (a lone surrogate)") from None
