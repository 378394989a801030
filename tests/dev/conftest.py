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


@pytest.fixture
def dev(app_dir: Path) -> Iterator[Dev]:
    running = start_dev(app_dir, "app:app")
    try:
        yield running
    finally:
        running.stop()
