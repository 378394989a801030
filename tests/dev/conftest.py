"""Fixtures of the `holdfast dev` tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dev_support import HERE, Dev, start_dev


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    shutil.copy(HERE / "devapp.py", tmp_path / "app.py")
    return tmp_path


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """One `holdfast dev` for the tests of a module that only send it requests."""
    folder = tmp_path_factory.mktemp("dev")
    shutil.copy(HERE / "devapp.py", folder / "app.py")
    running = start_dev(folder, "app:app")
    try:
        yield running
    finally:
        running.stop()
