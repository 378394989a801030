"""Fixtures for the emulator tests."""

from collections.abc import Iterator

import pytest
from emulator_support import Emulators


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    """Start emulators with `emulators(command, **options)`; all are closed after the test."""
    factory = Emulators()
    yield factory
    factory.close()
