"""Fixtures for the example shop's tests: data directories and a moto server."""

from __future__ import annotations

import pytest
from shop_support import AWS_ENV
from stack_support import deploy, upload_code

from moto_support import moto_server


@pytest.fixture(scope="session")
def moto_endpoint():
    """`moto_server` on a free 127.0.0.1 port (SQS, DynamoDB, CloudFormation, Lambda, ...)."""
    # boto3 here and in the function's processes: dummy credentials
    with moto_server(AWS_ENV) as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch):
    """Dummy credentials and moto's endpoint, for boto3 here and in the function's process."""
    for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(key, value)
    return moto_endpoint


@pytest.fixture(scope="session")
def stacks(moto_endpoint):
    """`stacks("zip")` / `stacks("image")`: template.yaml deployed into moto, once per session."""
    deployed = {}

    def get(packaging: str):
        if packaging not in deployed:
            deployed[packaging] = deploy(moto_endpoint, packaging, upload_code(moto_endpoint))
        return deployed[packaging]

    return get
