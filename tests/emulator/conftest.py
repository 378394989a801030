"""Fixtures for the emulator tests."""

import json
import sys
from collections.abc import Iterator

import pytest
from emulator_support import HERE, Emulators


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    """Start emulators with `emulators(command, **options)`; all are closed after the test."""
    factory = Emulators()
    yield factory
    factory.close()


@pytest.fixture
def telemetry_extension(tmp_path):
    """Options for an emulator with `telemetry_ext.py` as its external extension; `.read()`
    returns the batches it received and the invocations it held."""
    wrapper = tmp_path / "telemetry-extension"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "telemetry_ext.py"}"\n')
    wrapper.chmod(0o755)
    log = tmp_path / "telemetry.log"

    def options(**env):
        return {
            "extensions": [[str(wrapper)]],
            "env": {"EXT_NAME": wrapper.name, "EXT_LOG": str(log), **env},
        }

    def read():
        batches, holds = [], []
        for line in (log.read_text() if log.exists() else "").splitlines():
            document = json.loads(line)
            (batches if isinstance(document, list) else holds).append(document)
        return batches, holds

    options.read = read
    return options
