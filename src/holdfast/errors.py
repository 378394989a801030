"""The exceptions holdfast raises to its callers, all rooted in :class:`HoldfastError`."""

from __future__ import annotations

__all__ = [
    "ASGIProtocolError",
    "FunctionError",
    "HTTPStatusError",
    "HoldfastError",
    "InvalidEvent",
    "LifespanError",
    "http_status_error",
]


class HoldfastError(Exception):
    """Base class of every error holdfast raises on purpose."""


class InvalidEvent(HoldfastError, ValueError):
    """The Lambda event is not an HTTP event holdfast can decode; the message says why."""


class LifespanError(HoldfastError, RuntimeError):
    """The app's lifespan startup (or shutdown) failed."""


class ASGIProtocolError(HoldfastError, RuntimeError):
    """The app broke the ASGI HTTP protocol (bad status, messages out of order, ...)."""


class FunctionError(HoldfastError):
    """Raised from the handler to make the invocation a Lambda *function error*.

    Lambda's retries, dead-letter queues and destinations apply to function errors, so this is
    how an HTTP status listed in ``error_status_codes`` turns into a failed invocation.
    """


class HTTPStatusError(FunctionError):
    """The app answered with a status listed in ``error_status_codes``.

    Lambda reports the exception's type name as ``errorType``; each status gets its own subclass
    named ``HTTPError.<status>`` (see :func:`http_status_error`) so that alarms and destinations
    can tell statuses apart.
    """

    def __init__(self, status: int, body: str) -> None:
        self.status_code = status
        self.body = body
        # The message is the Lambda Web Adapter's: JSON with the status and the body, so what
        # reads failed invocations (destinations, DLQ consumers) keeps parsing it.
        import json  # a function error is rare: not imported at init

        super().__init__(json.dumps({"statusCode": status, "body": body}, separators=(",", ":")))


_status_error_types: dict[int, type[HTTPStatusError]] = {}


def http_status_error(status: int, body: str) -> HTTPStatusError:
    """Return an :class:`HTTPStatusError` whose type name is ``HTTPError.<status>``."""
    error_type = _status_error_types.get(status)
    if error_type is None:
        error_type = type(f"HTTPError.{status}", (HTTPStatusError,), {"__module__": __name__})
        _status_error_types[status] = error_type
    return error_type(status, body)
