"""`CommandParser`: argparse with holdfast's usage errors, for the commands that take options.

Apart from :mod:`holdfast.cli` (which re-exports it lazily) so that the commands a function's
``bootstrap`` starts never import argparse at cold start.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from holdfast.cli import fail, usage_error

__all__ = ["CommandParser"]


class CommandParser(argparse.ArgumentParser):
    """argparse with holdfast's usage errors: one line saying what is wrong, one with a hint
    (argparse's own prints the whole usage block first, which buries the message)."""

    def error(self, message: str) -> NoReturn:
        message, hint = usage_error(message, self.option_names())
        fail(self.prog, message, hint or f"`{self.prog} --help` lists the options")

    def option_names(self) -> list[str]:
        return [name for name in self._option_string_actions if name.startswith("--")]
