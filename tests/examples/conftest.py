"""Fixtures for the example shop's tests: data directories and a moto server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from shop_support import AWS_ENV
from stack_support import deploy, upload_code


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """`moto_server` on a free 127.0.0.1 port (SQS, DynamoDB, CloudFormation, Lambda, ...)."""
    saved = {key: os.environ.get(key) for key in AWS_ENV}
    os.environ.update(AWS_ENV)  # boto3 here and in the function's processes: dummy credentials
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "moto server exited"
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield endpoint
    finally:
        process.kill()
        process.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
