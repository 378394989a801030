"""An invocation's outcome: the one typed value every host turns into Lambda's answer.

* :class:`Buffered` — a JSON document the host posts as the invocation's response (an HTTP
  source's response dict, a task batch's ``batchItemFailures``, a handler's return value).
* :class:`Streamed` — an HTTP response whose head is ready and whose body is still coming: the
  host writes the head, then each chunk of :attr:`Streamed.body` as the app produces it. The
  iterator raises if the app fails after its head; the host then ends the stream with an error.
* :class:`Failed` — a *function error* (``HTTPError.<status>`` for ``error_status_codes``, an
  event holdfast cannot decode, a task consumer that raised): the host reports it as Lambda's
  ``/error`` (or, under awslambdaric, the handler raises :attr:`Failed.error`).

Hosts match on the type; none of them re-parses a response dict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

__all__ = ["Buffered", "Failed", "Outcome", "Streamed"]


# Named tuples, not dataclasses: a dataclass costs a quarter of a millisecond to define, at init.
class Buffered(NamedTuple):
    """The whole answer, posted as one JSON document."""

    payload: Any


class Streamed(NamedTuple):
    """An HTTP response's head (as a Function URL carries it) and its body as it is produced.

    ``headers`` maps each lower-case name to its value (repeats joined with ``,``); ``cookies``
    holds the ``Set-Cookie`` values, which cannot be joined.
    """

    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: AsyncIterator[bytes]


class Failed(NamedTuple):
    """A function error: ``error_type`` and ``message`` as Lambda reports them, ``body`` the JSON
    document a host posts (``{"errorMessage", "errorType", "stackTrace"}``), ``error`` the
    exception itself when there is one (a managed-runtime handler raises it)."""

    error_type: str
    message: str
    body: dict[str, Any]
    error: BaseException | None = None

    @classmethod
    def from_exception(cls, error: BaseException) -> Failed:
        """The outcome of ``error``, reported without a stack trace (clients never see one;
        the log carries it)."""
        error_type = type(error).__name__
        message = str(error)
        body = {"errorMessage": message, "errorType": error_type, "stackTrace": []}
        return cls(error_type, message, body, error)


Outcome = Buffered | Streamed | Failed
