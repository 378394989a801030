"""The `holdfast` command: `python -m holdfast` behaves exactly like it; `holdfast dev` serves."""

import subprocess
import sys
from pathlib import Path

import pytest

HOLDFAST = str(Path(sys.executable).parent / "holdfast")


@pytest.mark.parametrize(
    "args", [["--help"], [], ["nonsense"], ["run"], ["emulate", "--help"], ["--version"]]
)
def test_python_dash_m_behaves_exactly_like_the_command(args):
    by_script = subprocess.run([HOLDFAST, *args], capture_output=True, text=True, timeout=60)
    by_module = subprocess.run(
        [sys.executable, "-m", "holdfast", *args], capture_output=True, text=True, timeout=60
    )
    assert by_module.returncode == by_script.returncode
    assert by_module.stdout == by_script.stdout
    assert by_module.stderr.replace("__main__.py", "holdfast") == by_script.stderr
