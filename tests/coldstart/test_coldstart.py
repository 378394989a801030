"""`holdfast coldstart`: a fresh interpreter's init, split into imports and startup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from holdfast.coldstart import Profile, classify, parse_importtime

HOLDFAST = str(Path(sys.executable).parent / "holdfast")

APP = """
import asyncio
import slowdep  # the app's own slow import

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        await asyncio.sleep(0.3)  # startup work: opening pools, reading config, ...
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "slowdep.py").write_text("import time\ntime.sleep(0.25)\n")
    return tmp_path


def _coldstart(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOLDFAST, "coldstart", *args], capture_output=True, text=True, cwd=folder, timeout=120
    )


def test_init_is_split_into_imports_and_startup(app_dir: Path) -> None:
    result = _coldstart(app_dir, "app:app", "--runs", "1", "--json", "--save", "profile.json")
    assert result.returncode == 0, result.stderr
    profile = Profile.from_dict(json.loads(result.stdout))
    assert profile.categories["app"] >= 250  # slowdep's sleep, in the app's own modules
    assert profile.startup_ms >= 300  # lifespan startup runs at init, as on Lambda
    assert profile.categories["holdfast"] > 0
    assert profile.total_ms >= profile.interpreter_ms + profile.startup_ms
    slowest = dict(profile.slowest)
    assert slowest["app"] >= slowest["slowdep"] >= 250  # cumulative: app includes slowdep
    saved = json.loads((app_dir / "profile.json").read_text())
    assert saved["app"] == "app:app"


def test_the_report_and_a_comparison_with_a_saved_profile(app_dir: Path) -> None:
    assert _coldstart(app_dir, "app:app", "--runs", "1", "--save", "before.json").returncode == 0
    (app_dir / "slowdep.py").write_text("")  # the lever: the slow import is gone
    result = _coldstart(app_dir, "app:app", "--runs", "1", "--compare", "before.json")
    assert result.returncode == 0, result.stderr
    assert "your modules" in result.stdout and "slowest imports" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "your modules" in line)
    assert "vs saved" in line and "(-" in line  # faster than the saved profile


def test_a_broken_app_gets_one_line_and_a_hint(app_dir: Path) -> None:
    (app_dir / "app.py").write_text("raise RuntimeError('no config')\n")
    result = _coldstart(app_dir, "app:app", "--runs", "1")
    assert result.returncode == 1
    assert "RuntimeError: no config" in result.stderr and "hint:" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr


def test_importtime_lines_are_parsed_with_their_depth() -> None:
    text = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   child\n"
        "import time:       300 |        420 | parent\n"
    )
    parsed = parse_importtime(text)
    assert [(i.module, i.self_us, i.cumulative_us, i.depth) for i in parsed] == [
        ("child", 120, 120, 1),
        ("parent", 300, 420, 0),
    ]


def test_modules_are_classified() -> None:
    import fastapi

    assert classify("holdfast.adapter", "") == "holdfast"
    assert classify("json.decoder", "") == "stdlib"
    assert classify("fastapi", fastapi.__file__ or "") == "libraries"
    assert classify("myapp", "/srv/app/myapp.py") == "app"
