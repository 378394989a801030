"""docs/configuration.md is checked against the code: the settings reader's declarations, every
HOLDFAST_* variable the source mentions, and every option each command's --help shows. A setting
or option added, renamed or removed on either side fails here until the page follows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from holdfast import cli, config

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "holdfast"
DOC = (ROOT / "docs" / "configuration.md").read_text()


def variables_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![A-Za-z0-9_])HOLDFAST_[A-Z][A-Z0-9_]*", text))


def options_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) - {"--help"}


def help_text(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = cli.main([*args, "--help"])
        except SystemExit as exit:
            status = exit.code
    assert status in (0, None), out.getvalue()
    return out.getvalue()


def section(command: str) -> str:
    found = re.search(rf"^### `holdfast {command}`\n(.*?)(?=^### |\Z)", DOC, re.M | re.S)
    assert found, f"docs/configuration.md has no section for holdfast {command}"
    return found.group(1)


SOURCE_VARIABLES = set().union(*(variables_in(p.read_text()) for p in SOURCE.rglob("*.py")))


def test_every_setting_the_reader_declares_is_documented_with_its_lwa_names():
    for name, names in config.SETTINGS.items():
        assert f"`HOLDFAST_{name}`" in DOC, name
        for alias in (names.lwa, names.legacy):
            assert alias is None or f"`{alias}`" in DOC, alias


def test_every_holdfast_variable_in_the_source_is_documented():
    assert SOURCE_VARIABLES - variables_in(DOC) == set()


def test_the_page_documents_no_variable_that_does_not_exist():
    declared = {f"HOLDFAST_{name}" for name in config.SETTINGS}
    assert variables_in(DOC) - declared - SOURCE_VARIABLES == set()


def commands() -> list[str]:
    return [name for name in cli._COMMANDS]


def test_every_command_has_a_section():
    for command in commands():
        section(command)


@pytest.mark.parametrize("command", commands())
def test_the_options_of_each_command_match_its_help(command):
    text = help_text(command)
    if command == "tasks":  # the options live on its subcommands
        subcommands = re.search(r"\{([a-z,]+)\}", text).group(1).split(",")
        text = "".join(help_text(command, sub) for sub in subcommands)
    assert options_in(text) == options_in(section(command))


def test_version_is_documented():
    assert "### `holdfast --version`" in DOC
