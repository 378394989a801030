"""The ``context`` handlers receive: the same attributes and methods as AWS's Python runtime.

Mirrors ``awslambdaric.lambda_context.LambdaContext`` (names, types and ``None`` defaults), so
code written against the managed runtime, Mangum, Powertools and friends behaves the same under
``holdfast run``. ``memory_limit_in_mb`` is the environment's *string*, exactly as there.

The invocation being handled is also a context variable (:func:`current_request`): with
``AWS_LAMBDA_MAX_CONCURRENCY`` > 1 several invocations run at once in one process, so the X-Ray
trace id (:func:`trace_id`), the request id and the tenant id of log lines cannot be
process-wide.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from typing import Any

from holdfast.errors import HoldfastError
from holdfast.runtime.client import InvocationRequest

# ``context.w3c()`` exposes only these string fields of ``clientContext.w3c``.
_W3C_FIELDS = ("traceparent", "tracestate", "baggage")
_TRACE_ENV = "_X_AMZN_TRACE_ID"
# What `os.environ` reads and copies (see `_publish_trace_id`).
_environ_data: dict[Any, Any] = os.environ._data  # type: ignore[attr-defined]
_TRACE_KEY = os.environ.encodekey(_TRACE_ENV)
_published: Any = None  # the value `_publish_trace_id` put there last

_current: contextvars.ContextVar[InvocationRequest | None] = contextvars.ContextVar(
    "holdfast_invocation", default=None
)


def enter_invocation(request: InvocationRequest, *, process_wide: bool) -> None:
    """Make ``request`` the current invocation of this task (and what it spawns).

    ``process_wide`` (one invocation at a time) also sets ``_X_AMZN_TRACE_ID``, which the X-Ray
    SDK and Powertools read, as AWS's runtime does; with several at once the variable would name
    whichever started last, so it is left unset and :func:`trace_id` is the only truth.
    """
    _current.set(request)
    _publish_trace_id(request.trace_id if process_wide else None)


def _publish_trace_id(value: str | None) -> None:
    """Set (or remove) ``_X_AMZN_TRACE_ID`` in ``os.environ`` without a C-level ``setenv``.

    ``os.environ[...] = value`` calls ``setenv``, and glibc keeps every distinct value it was
    ever given (so an old ``getenv`` pointer stays valid): one trace id per invocation grew the
    C heap by ~150 bytes an invocation, forever. The mapping ``os.environ`` reads (and
    ``os.environ.copy()`` / ``env=os.environ`` hand to a child) is updated instead. The C
    environment, which a child started with the inherited environment gets, is cleared of the
    variable whenever something else set it (the value there is not the one published last),
    so no such child ever sees another invocation's id.
    """
    global _published
    if _environ_data.get(_TRACE_KEY) is not _published:
        os.unsetenv(_TRACE_ENV)
    _published = os.environ.encodevalue(value) if value else None
    if _published is None:
        _environ_data.pop(_TRACE_KEY, None)
    else:
        _environ_data[_TRACE_KEY] = _published


def current_request() -> InvocationRequest | None:
    """The invocation being handled in this context (``None`` outside ``holdfast run``)."""
    return _current.get()


def trace_id() -> str | None:
    """The X-Ray trace header (``Root=...;Parent=...;Sampled=...``) of the current invocation
    (``holdfast.trace_id``): ``None`` outside ``holdfast run``'s invocations (under AWS's own
    runtime, ``_X_AMZN_TRACE_ID`` holds it)."""
    request = _current.get()
    return request.trace_id if request is not None else None


class FunctionInfo:
    """What the environment says about the function; read once, shared by every context."""

    __slots__ = (
        "function_name",
        "function_version",
        "log_group_name",
        "log_stream_name",
        "memory_limit_in_mb",
    )

    def __init__(
        self,
        function_name: str | None,
        function_version: str | None,
        memory_limit_in_mb: str | None,
        log_group_name: str | None,
        log_stream_name: str | None,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.memory_limit_in_mb = memory_limit_in_mb
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name

    @classmethod
    def from_environ(cls) -> FunctionInfo:
        env = os.environ
        return cls(
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME"),
            function_version=env.get("AWS_LAMBDA_FUNCTION_VERSION"),
            memory_limit_in_mb=env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            log_group_name=env.get("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream_name=env.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        )


class CognitoIdentity:
    """``context.identity``: the Amazon Cognito identity behind a mobile SDK call."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        document = document or {}
        self.cognito_identity_id: str | None = document.get("cognitoIdentityId")
        self.cognito_identity_pool_id: str | None = document.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    """``context.client_context.client``: the calling mobile app."""

    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    # awslambdaric's order, which its repr shows.
    _FIELDS = (
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    )

    def __init__(self, document: dict[str, Any]) -> None:
        for name in self._FIELDS:
            setattr(self, name, document.get(name))

    def __repr__(self) -> str:
        fields = ",".join(f"{name}={getattr(self, name)}" for name in self._FIELDS)
        return f"Client([{fields}])"


class ClientContext:
    """``context.client_context``: what the invoking client sent (mobile SDK or ``Invoke``)."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, document: dict[str, Any]) -> None:
        client = document.get("client")
        self.client: Client | None = Client(client) if isinstance(client, dict) else None
        self.custom: Any = document.get("custom")
        self.env: Any = document.get("env")

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class RuntimeContext:
    """The context object of one invocation."""

    def __init__(self, request: InvocationRequest, function: FunctionInfo) -> None:
        self.aws_request_id = request.request_id
        self.invoked_function_arn = request.invoked_function_arn
        self.tenant_id = request.tenant_id
        self.function_name = function.function_name
        self.function_version = function.function_version
        self.memory_limit_in_mb = function.memory_limit_in_mb
        self.log_group_name = function.log_group_name
        self.log_stream_name = function.log_stream_name
        client_context = _json_header(request.client_context, "Client Context")
        self._w3c = _pop_w3c(client_context)
        self.client_context = (
            ClientContext(client_context) if isinstance(client_context, dict) else None
        )
        cognito = _json_header(request.cognito_identity, "Cognito Identity")
        self.identity = CognitoIdentity(cognito if isinstance(cognito, dict) else None)
        self._deadline_ms = request.deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation (never negative)."""
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def w3c(self) -> dict[str, str]:
        """The W3C trace context (``traceparent``, ...) the caller sent, if any."""
        return dict(self._w3c)

    def log(self, msg: object) -> None:
        """Write ``msg`` to the function's log, as ``context.log`` does on AWS."""
        for handler in logging.getLogger().handlers:
            log_sink = getattr(handler, "log_sink", None)
            if log_sink is not None:
                log_sink.log(str(msg))
                return
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


class ContextError(HoldfastError, ValueError):
    """A ``Lambda-Runtime-*`` header that should carry JSON does not."""


def _json_header(value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ContextError(f"Unable to parse {name} JSON: {exc}") from None


def _pop_w3c(client_context: Any) -> dict[str, str]:
    # Like awslambdaric: w3c moves out of client_context into context.w3c().
    if not isinstance(client_context, dict):
        return {}
    w3c = client_context.pop("w3c", None)
    if not isinstance(w3c, dict):
        return {}
    return {key: w3c[key] for key in _W3C_FIELDS if isinstance(w3c.get(key), str)}
