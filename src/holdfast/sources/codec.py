"""The codec abstraction: what turns one kind of Lambda event into an :class:`HTTPRequest`, and
an :class:`HTTPResponse` back into the answer its source expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from holdfast._types import LambdaContext, LambdaEvent
from holdfast.errors import InvalidEvent
from holdfast.sources.limits import LAMBDA_RESPONSE_LIMIT, exceeds
from holdfast.sources.messages import HTTPRequest, HTTPResponse

#: What decoding a malformed event can raise (an :class:`InvalidEvent` is a ``ValueError``).
DECODE_ERRORS = (TypeError, AttributeError, KeyError, ValueError, RecursionError)


class EventCodec:
    """A codec sets ``name``, ``source`` (how errors name its events) and
    ``max_response_bytes`` (what its source accepts), and implements ``_decode`` and ``encode``.

    :meth:`decode` is the net under ``_decode``: it ends in a request or an
    :class:`InvalidEvent` naming the source (a :class:`~holdfast.sources.syntax.BadRequest`
    when the event is sound but its request is one a server refuses), and nothing else.

    ``text_mime_types`` are media types whose bodies go out as text besides the built-in ones;
    ``wsgi`` says the app reads headers through a WSGI environ, where an underscore and a dash
    in a name are the same key (see :func:`holdfast.sources.request.build_request`);
    ``context_headers`` adds the platform context headers to every request
    (:mod:`holdfast.sources.platform`).
    """

    name: str
    source: str
    #: The largest serialised response the source accepts (Lambda's 6 MB, ALB's 1 MB).
    max_response_bytes: int = LAMBDA_RESPONSE_LIMIT
    #: The codec's fast path, if it has one: ``plain(event, base_path)`` reads an event of the
    #: common shape in one pass and returns its request, or ``None`` for any other event (never
    #: an exception); ``_decode`` is the reference it must agree with
    #: (:func:`holdfast.sources.request.plain_request`). Not used with ``context_headers``.
    plain: Callable[[LambdaEvent, str], HTTPRequest | None] | None = None

    def __init__(
        self,
        text_mime_types: frozenset[str] = frozenset(),
        *,
        wsgi: bool = False,
        context_headers: bool = False,
    ):
        self.text_mime_types = text_mime_types
        self.wsgi = wsgi
        self.context_headers = context_headers

    def decode(
        self, event: LambdaEvent, base_path: str, context: LambdaContext = None
    ) -> HTTPRequest:
        plain = self.plain
        if plain is not None and not self.context_headers:
            request = plain(event, base_path)
            if request is not None:
                return request
        try:
            return self._decode(event, base_path, context)
        except DECODE_ERRORS as exc:
            raise as_invalid_event(self.source, exc)  # noqa: B904 - it sets the cause

    def _decode(self, event: LambdaEvent, base_path: str, context: LambdaContext) -> HTTPRequest:
        raise NotImplementedError

    def platform(
        self, event: LambdaEvent, context: LambdaContext
    ) -> tuple[LambdaEvent, LambdaContext] | None:
        """What the context headers are built from, for ``build_request``: ``None`` when off."""
        return (event, context) if self.context_headers else None

    def encode(self, response: HTTPResponse) -> Any:
        raise NotImplementedError

    def too_large(self, result: Any) -> bool:
        """Whether the source would refuse ``result`` (an encoded response) for its size."""
        return exceeds(result, self.max_response_bytes)


def as_invalid_event(source: str, exc: Exception) -> InvalidEvent:
    """``exc``, raised while decoding a ``source`` event, as an :class:`InvalidEvent` (of the
    same class, for a ``BadRequest``) naming the source."""
    if isinstance(exc, InvalidEvent):
        if str(exc).startswith(source):
            return exc
        error = type(exc)(f"{source} event: {exc}")
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
