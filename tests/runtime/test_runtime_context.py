"""The context object matches awslambdaric's, attribute for attribute."""

from __future__ import annotations

import json
import time

import pytest
from awslambdaric.lambda_context import LambdaContext as AWSContext

from holdfast.runtime.client import InvocationRequest
from holdfast.runtime.context import ContextError, FunctionInfo, RuntimeContext

CLIENT_CONTEXT = {
    "client": {
        "installation_id": "inst-1",
        "app_title": "Demo",
        "app_version_name": "1.0",
        "app_version_code": "100",
        "app_package_name": "com.example",
    },
    "custom": {"flag": True},
    "env": {"locale": "en"},
    "w3c": {"traceparent": "00-abc-def-01", "tracestate": 5, "other": "dropped"},
}
COGNITO = {"cognitoIdentityId": "us-east-1:id", "cognitoIdentityPoolId": "us-east-1:pool"}
ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "fn",
    "AWS_LAMBDA_FUNCTION_VERSION": "7",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[7]abc",
}


def request(client_context=None, cognito=None, **overrides) -> InvocationRequest:
    fields = {
        "request_id": "req-1",
        "deadline_ms": int(time.time() * 1000) + 60_000,
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123:function:fn",
        "trace_id": None,
        "client_context": json.dumps(client_context) if client_context is not None else None,
        "cognito_identity": json.dumps(cognito) if cognito is not None else None,
        "tenant_id": "tenant-1",
        "content_type": "application/json",
        "body": b"{}",
    }
    fields.update(overrides)
    return InvocationRequest(**fields)


def both(monkeypatch, client_context=None, cognito=None):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    req = request(client_context, cognito)
    ours = RuntimeContext(req, FunctionInfo.from_environ())
    theirs = AWSContext(
        req.request_id,
        json.loads(json.dumps(client_context)) if client_context is not None else None,
        cognito,
        req.deadline_ms,
        req.invoked_function_arn,
        req.tenant_id,
    )
    return ours, theirs


@pytest.mark.parametrize(
    ("client_context", "cognito"),
    [(CLIENT_CONTEXT, COGNITO), (None, None), ({"custom": {"a": 1}}, {})],
)
def test_same_attributes_and_repr_as_awslambdaric(monkeypatch, client_context, cognito):
    ours, theirs = both(monkeypatch, client_context, cognito)
    assert repr(ours) == repr(theirs)
    for name in (
        "aws_request_id",
        "function_name",
        "function_version",
        "memory_limit_in_mb",
        "invoked_function_arn",
        "log_group_name",
        "log_stream_name",
        "tenant_id",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.identity.cognito_identity_id == theirs.identity.cognito_identity_id
    assert ours.identity.cognito_identity_pool_id == theirs.identity.cognito_identity_pool_id
    assert ours.w3c() == theirs.w3c()
    if theirs.client_context is None:
        assert ours.client_context is None
    else:
        assert ours.client_context.custom == theirs.client_context.custom
        assert ours.client_context.env == theirs.client_context.env
        if theirs.client_context.client is None:
            assert ours.client_context.client is None
            return
        for name in ("installation_id", "app_title", "app_package_name"):
            assert getattr(ours.client_context.client, name) == getattr(
                theirs.client_context.client, name
            )
    assert abs(ours.get_remaining_time_in_millis() - theirs.get_remaining_time_in_millis()) < 5000


def test_w3c_fields_are_filtered_and_removed_from_client_context(monkeypatch):
    ours, _ = both(monkeypatch, CLIENT_CONTEXT, None)
    assert ours.w3c() == {"traceparent": "00-abc-def-01"}
    assert not hasattr(ours.client_context, "w3c")


def test_remaining_time_never_goes_negative():
    ctx = RuntimeContext(request(deadline_ms=1000), FunctionInfo(None, None, None, None, None))
    assert ctx.get_remaining_time_in_millis() == 0


def test_malformed_identity_json_is_a_context_error():
    with pytest.raises(ContextError, match="Cognito Identity"):
        RuntimeContext(
            request(cognito_identity="{nope"), FunctionInfo(None, None, None, None, None)
        )


def test_log_writes_to_stdout(capsys):
    ctx = RuntimeContext(request(), FunctionInfo(None, None, None, None, None))
    ctx.log("hello log")
    assert capsys.readouterr().out == "hello log"
