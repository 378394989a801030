"""Structured JSON logs: one object per line, each carrying the Lambda request id.

`RequestIdMiddleware` puts the invocation's ``aws_request_id`` (from ``scope["aws.context"]``,
which holdfast provides) into a context variable. BackgroundTasks and `holdfast.after_response`
work run in a copy of the request's context, so their lines carry the same id.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "requestId": request_id.get(),
        }
        # Fields passed with `extra={...}` become keys of their own.
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    """JSON lines on stdout for the ``shop`` loggers (CloudWatch keeps one event per line)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("shop")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


class RequestIdMiddleware:
    """ASGI middleware: the request id of the current invocation, for the log lines."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        context = scope.get("aws.context")
        token = request_id.set(getattr(context, "aws_request_id", None))
        try:
            await self.app(scope, receive, send)
        finally:
            request_id.reset(token)
