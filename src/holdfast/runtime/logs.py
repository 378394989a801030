"""Lambda's advanced logging controls under ``holdfast run``, as AWS's Python runtime applies them.

``AWS_LAMBDA_LOG_FORMAT=JSON`` writes every log record as one JSON line in the managed runtime's
shape (``timestamp``, ``level``, ``message``, ``logger``, ``requestId``, ``tenantId`` when there
is one, ``errorType``/``errorMessage``/``stackTrace``/``location`` for exceptions, and the
record's ``extra`` fields); CloudWatch then filters on the level. ``AWS_LAMBDA_LOG_LEVEL`` sets
the root logger's level (``TRACE`` counts as ``DEBUG``). With neither variable set, the runtime
installs no handler, as before.

The request and tenant ids come from the invocation the record was logged in
(:func:`holdfast.runtime.context.current_request`), so concurrent invocations never borrow each
other's ids.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any, TextIO

from holdfast.runtime.context import current_request

# LogRecord attributes that are not ``extra`` fields of the caller.
_RESERVED = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "aws_request_id", "tenant_id", "taskName"}
)
_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s"


class InvocationFilter(logging.Filter):
    """Stamps each record with the current invocation's request and tenant ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request()
        record.aws_request_id = request.request_id if request is not None else ""
        record.tenant_id = request.tenant_id if request is not None else None
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per record, in the managed Python runtime's field names."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10  # custom levels map to the nearest
        message: Any = record.msg
        if not (isinstance(message, dict) and not record.args):
            message = record.getMessage()
        document: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": logging.getLevelName(level),
            "message": message,
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", None) or None,
        }
        tenant_id = getattr(record, "tenant_id", None)
        if tenant_id is not None:
            document["tenantId"] = tenant_id
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, trace = record.exc_info
            document["errorType"] = kind.__name__
            document["errorMessage"] = str(error)
            document["stackTrace"] = traceback.format_tb(trace)
            document["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in document:
                document[key] = value
        return json.dumps(
            {k: v for k, v in document.items() if v is not None},
            ensure_ascii=False,
            default=str,
        )


def configure(
    log_format: str | None, log_level: str | None, stream: TextIO | None = None
) -> logging.Handler | None:
    """Install the root handler ``AWS_LAMBDA_LOG_FORMAT`` / ``AWS_LAMBDA_LOG_LEVEL`` ask for;
    returns it (``None`` when neither is set)."""
    json_format = (log_format or "").strip().upper() == "JSON"
    level = _level(log_level)
    if not json_format and level is None:
        return None
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    if json_format:
        handler.setFormatter(JSONFormatter())
    else:
        text = logging.Formatter(_TEXT_FORMAT, "%Y-%m-%dT%H:%M:%S")
        text.converter = time.gmtime
        handler.setFormatter(text)
    handler.addFilter(InvocationFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    if level is not None:
        root.setLevel(level)
    return handler


def _level(value: str | None) -> int | None:
    name = (value or "").strip().upper()
    if name == "TRACE":
        name = "DEBUG"
    level = logging.getLevelNamesMapping().get(name) if name else None
    return level
