"""Errors as Lambda wants them reported: ``{"errorType", "errorMessage", "stackTrace"}``.

The body goes to ``/error``, ``/init/error`` or a streamed response's trailer; the error *category*
goes in the ``Lambda-Runtime-Function-Error-Type`` header, in the ``Category.Reason`` form RAPID
keeps (anything else it files under ``Runtime.Unknown``).
"""

from __future__ import annotations

import json
import re
import traceback

from holdfast.errors import HoldfastError

# RAPID keeps header values matching this exactly; others become Runtime/Function.Unknown.
_VALID_CATEGORY = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")
_NOT_LETTERS = re.compile(r"[^A-Za-z]")
# Frames of holdfast's own runtime say nothing about the function's failure (awslambdaric drops
# its bootstrap frames the same way).
_RUNTIME_FRAMES = "/holdfast/runtime/"
# An error message carrying a whole response body must still fit Lambda's 6 MB payload.
_MAX_MESSAGE_CHARS = 256 * 1024


class ErrorReport:
    """One error, ready to post: the JSON body and the category header."""

    __slots__ = ("category", "error_type", "message", "stack_trace")

    def __init__(
        self, error_type: str, message: str, category: str, stack_trace: list[str] | None = None
    ) -> None:
        self.error_type = error_type
        self.message = message
        self.category = category
        self.stack_trace = stack_trace or []

    def __repr__(self) -> str:
        return f"ErrorReport({self.category}: {self.error_type}: {self.message[:80]!r})"

    def with_category(self, category: str) -> ErrorReport:
        """The same error under another ``Lambda-Runtime-Function-Error-Type``."""
        return ErrorReport(self.error_type, self.message, category, self.stack_trace)

    def body(self) -> bytes:
        """The JSON document Lambda expects in the request body (or error trailer)."""
        document = {
            "errorMessage": self.message,
            "errorType": self.error_type,
            "stackTrace": self.stack_trace,
        }
        return json.dumps(document).encode()

    @classmethod
    def runtime(
        cls, reason: str, message: str, stack_trace: list[str] | None = None
    ) -> ErrorReport:
        """An error the runtime itself classifies, e.g. ``Runtime.ImportModuleError``."""
        error_type = f"Runtime.{reason}"
        return cls(error_type, message, error_type, stack_trace or [])

    @classmethod
    def from_exception(cls, exc: BaseException, category: str = "Function") -> ErrorReport:
        """Report ``exc`` raised by the function's code (or holdfast on its behalf).

        ``errorType`` is the exception's class name (``HTTPError.502`` for a status listed in
        ``error_status_codes``); the header becomes ``<category>.<name as letters only>``.
        """
        name = type(exc).__name__
        # holdfast's own errors are verdicts, not crashes: their traceback is holdfast's code.
        trace = [] if isinstance(exc, HoldfastError) else stack_trace(exc)
        return cls(name, _truncate(str(exc)), error_category(category, name), trace)


def error_category(category: str, name: str) -> str:
    """``Function.ValueError``; ``Function.HTTPError`` for ``HTTPError.502``; never invalid."""
    reason = _NOT_LETTERS.sub("", name)
    value = f"{category}.{reason[:1].upper()}{reason[1:]}"
    return value if _VALID_CATEGORY.fullmatch(value) else f"{category}.Unknown"


def stack_trace(exc: BaseException) -> list[str]:
    """The traceback of ``exc`` as ``traceback.format_list`` lines, runtime frames left out."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [frame for frame in frames if _RUNTIME_FRAMES not in frame.filename.replace("\\", "/")]
    return traceback.format_list(own)


def _truncate(message: str) -> str:
    if len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[:_MAX_MESSAGE_CHARS] + " [truncated]"
