"""What an environment's processes are told: the function's metadata and environment variables."""

from __future__ import annotations

import datetime
import os
import uuid

from ..config import ACCOUNT_ID, EmulatorConfig
from ..sandbox import FunctionMetadata


def function_metadata(config: EmulatorConfig) -> FunctionMetadata:
    """What `/extension/register` tells extensions about the function."""
    return FunctionMetadata(
        function_name=config.function_name,
        function_version="$LATEST",
        handler=config.handler or config.command[-1],
        account_id=ACCOUNT_ID,
    )


def function_variables(config: EmulatorConfig, runtime_api: str) -> dict[str, str]:
    """The environment variables Lambda gives the runtime and the extensions."""
    task_root = os.path.abspath(config.cwd or os.getcwd())
    today = datetime.datetime.now(datetime.UTC)
    variables = dict(os.environ)
    # Left over from a Lambda-like parent, these would switch awslambdaric into other modes.
    for name in (
        "AWS_LAMBDA_MAX_CONCURRENCY",
        "_LAMBDA_TELEMETRY_LOG_FD",
        "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET",
    ):
        variables.pop(name, None)
    variables.update(
        {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{today:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_FORMAT": "Text",
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": task_root,
            "TZ": ":UTC",
            "_HANDLER": config.handler or config.command[-1],
        }
    )
    # How Lambda learns the invoke mode is the function URL's setting; holdfast's runtime
    # reads it from its environment, so an emulated RESPONSE_STREAM URL sets it (unless the
    # caller's environment or `env` already does).
    variables.setdefault("HOLDFAST_INVOKE_MODE", config.invoke_mode)
    if config.max_concurrency is not None:
        variables["AWS_LAMBDA_MAX_CONCURRENCY"] = str(config.max_concurrency)
        variables["AWS_LAMBDA_INITIALIZATION_TYPE"] = "lambda-managed-instances"
    if config.snap_start:
        variables["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    variables.update(config.env)
    return variables
