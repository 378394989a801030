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


def test_the_runtime_command_imports_no_option_parser_at_cold_start(tmp_path):
    """`holdfast run` parses its one argument by hand: argparse and difflib (~2 ms of every
    cold start) load only for the commands that take options."""
    from holdfast.emulator import ThreadedEmulator

    (tmp_path / "loaded.py").write_text(
        "import sys\n\n\ndef handler(event, context):\n"
        "    return sorted(m for m in ('argparse', 'difflib', 'gettext') if m in sys.modules)\n"
    )
    command = [sys.executable, "-m", "holdfast", "run", "loaded:handler"]
    with ThreadedEmulator(command, cwd=str(tmp_path), timeout=30, log=lambda line: None) as emu:
        result = emu.invoke({})
    assert result.ok and result.json() == []


def test_the_option_parser_is_still_there_for_the_commands_that_take_options():
    from holdfast.cli import CommandParser
    from holdfast.command_parser import CommandParser as defined

    assert CommandParser is defined
    with pytest.raises(ImportError, match="cannot import name 'Nothing'"):
        from holdfast.cli import Nothing  # noqa: F401
