"""Fixtures of the adapter tests: adapters shut down after each test, a Lambda context, a
recording app, and no holdfast settings leaking in from the environment."""

from __future__ import annotations

import pytest
from adapter_apps import LambdaContext, Recorder

import holdfast

ENV_SETTINGS = (
    "HOLDFAST_ERROR_STATUS_CODES",
    "AWS_LWA_ERROR_STATUS_CODES",
    "HOLDFAST_BASE_PATH",
    "AWS_LWA_REMOVE_BASE_PATH",
)


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch):
    for name in ENV_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def context():
    return LambdaContext()


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def make_adapter():
    """``make_adapter(app, **options)``: a ``holdfast.Adapter``, shut down after the test."""
    made = []

    def make(app=None, **options):
        adapter = holdfast.Adapter(app, **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close(timeout=5)
