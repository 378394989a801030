"""The platform context headers, built from the real event and context (the Lambda Web
Adapter's contract, so apps moving from it keep reading them):

* ``x-amzn-request-context``: the event's ``requestContext`` as JSON;
* ``x-amzn-lambda-context``: the invocation context as JSON, with the Web Adapter's keys
  ``request_id``, ``deadline`` (epoch milliseconds), ``invoked_function_arn``,
  ``xray_trace_id``, ``client_context``, ``identity``, ``env_config`` (``function_name``,
  ``memory``, ``version``, ``log_stream``, ``log_group``) and ``tenant_id``;
* ``x-amz-tenant-id``: ``context.tenant_id``, when the invocation has one.

A client can send headers with these names; :func:`holdfast.sources.request.build_request`
always drops them, and adds these when the adapter is asked to (``context_headers``: off by
default in-process, where ``scope["aws.event"]`` and ``scope["aws.context"]`` carry the same
facts; the proxy host always sends them), so an app can trust what it reads there.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

from holdfast._types import LambdaContext, LambdaEvent, RawHeaders

if TYPE_CHECKING:
    from json import JSONEncoder

logger = logging.getLogger("holdfast")

REQUEST_CONTEXT = b"x-amzn-request-context"
LAMBDA_CONTEXT = b"x-amzn-lambda-context"
TENANT_ID = b"x-amz-tenant-id"
#: Every header name holdfast sets from the platform; client copies never reach the app.
PLATFORM_HEADERS = frozenset({REQUEST_CONTEXT, LAMBDA_CONTEXT, TENANT_ID})

# A header value: visible ASCII and inner spaces or tabs (RFC 9110 field-value, ASCII only).
_HEADER_SAFE = re.compile(r"[!-~]+(?:[ \t]+[!-~]+)*")


def platform_headers(event: LambdaEvent, context: LambdaContext) -> RawHeaders:
    """The context headers for one HTTP event (see the module docs).

    The JSON is ASCII-escaped, so a value never carries a control byte or non-ASCII text
    whatever the event holds. Without a context (a direct call in a test) only the request
    context is known.
    """
    headers: RawHeaders = []
    request_context = event.get("requestContext")
    if isinstance(request_context, dict):
        headers.append((REQUEST_CONTEXT, _json(request_context)))
    if context is not None:
        headers.append((LAMBDA_CONTEXT, _lambda_context_json(context)))
        tenant = _tenant_id(context)
        if tenant is not None:
            headers.append((TENANT_ID, tenant))
    return headers


def _lambda_context_json(context: LambdaContext) -> bytes:
    """The invocation context as JSON in the Web Adapter's (lambda_runtime's) shape.

    It runs on every request: the parts that are the same for every invocation of an
    environment (the function's ARN and ``env_config``) are encoded once, into a template.
    """
    client_context = getattr(context, "client_context", None)
    identity = _identity(getattr(context, "identity", None))
    tenant = _text(context, "tenant_id")
    return b"".join(
        (
            b'{"request_id": ',
            _string(_text(context, "aws_request_id") or ""),
            b', "deadline": %d, "invoked_function_arn": ' % _deadline_ms(context),
            _environment_json(
                _text(context, "invoked_function_arn") or "",
                _text(context, "function_name") or "",
                _memory(getattr(context, "memory_limit_in_mb", None)),
                _text(context, "function_version") or "",
                _text(context, "log_stream_name") or "",
                _text(context, "log_group_name") or "",
            )
            % (
                _string(os.environ.get("_X_AMZN_TRACE_ID", "")),
                b"null" if client_context is None else _json(_client_context(client_context)),
                b"null" if identity is None else _json(identity),
            ),
            b', "tenant_id": ',
            b"null" if tenant is None else _string(tenant),
            b"}",
        )
    )


def _string(text: str) -> bytes:
    return _encoder().encode(text).encode("ascii")


@functools.lru_cache(maxsize=16)
def _environment_json(
    arn: str, function_name: str, memory: int, version: str, log_stream: str, log_group: str
) -> bytes:
    # The function's ARN, then slots (%s) for the trace id, client context and identity, then
    # env_config: one template per environment.
    env_config = {
        "function_name": function_name,
        "memory": memory,
        "version": version,
        "log_stream": log_stream,
        "log_group": log_group,
    }
    return b"".join(
        (
            _string(arn).replace(b"%", b"%%"),
            b', "xray_trace_id": %s, "client_context": %s, "identity": %s, "env_config": ',
            _json(env_config).replace(b"%", b"%%"),
        )
    )


def _json(document: Any) -> bytes:
    # ensure_ascii: escapes leave nothing but visible ASCII, so the value is always a valid
    # header (the Web Adapter strips control bytes for the same reason). default=str: a context
    # object may hold values JSON has no type for.
    try:
        return _encoder().encode(document).encode("ascii")
    except (ValueError, RecursionError):  # a circular or absurdly deep structure
        return b"null"


@functools.cache
def _encoder() -> JSONEncoder:
    # json is imported when the first context headers are built (they are opt-in), not at init.
    import json

    return json.JSONEncoder(ensure_ascii=True, default=str)


def _text(context: LambdaContext, name: str) -> str | None:
    value = getattr(context, name, None)
    return value if isinstance(value, str) else None


def _deadline_ms(context: LambdaContext) -> int:
    # awslambdaric and holdfast's runtime keep the Runtime API's deadline; anything else has at
    # least the remaining time.
    for name in ("_epoch_deadline_time_in_ms", "_deadline_ms"):
        deadline = getattr(context, name, None)
        if isinstance(deadline, int):
            return deadline
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    now = int(time.time() * 1000)
    if callable(remaining):
        try:
            return now + int(remaining())
        except (TypeError, ValueError):
            pass
    return now


def _memory(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _client_context(client_context: Any) -> dict[str, Any] | None:
    if client_context is None:
        return None
    client = getattr(client_context, "client", None)
    return {
        "client": None
        if client is None
        else {
            "installationId": getattr(client, "installation_id", None),
            "appTitle": getattr(client, "app_title", None),
            "appVersionName": getattr(client, "app_version_name", None),
            "appVersionCode": getattr(client, "app_version_code", None),
            "appPackageName": getattr(client, "app_package_name", None),
        },
        "custom": getattr(client_context, "custom", None),
        "environment": getattr(client_context, "env", None),
    }


def _identity(identity: Any) -> dict[str, Any] | None:
    identity_id = getattr(identity, "cognito_identity_id", None)
    pool_id = getattr(identity, "cognito_identity_pool_id", None)
    if identity_id is None and pool_id is None:
        return None
    return {"identity_id": identity_id, "identity_pool_id": pool_id}


def _tenant_id(context: LambdaContext) -> bytes | None:
    tenant = _text(context, "tenant_id")
    if not tenant:
        return None
    if not _HEADER_SAFE.fullmatch(tenant):
        logger.warning("not forwarding a tenant id that is not a valid header value: %.80r", tenant)
        return None
    return tenant.encode("ascii")
