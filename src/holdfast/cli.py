"""The `holdfast` command: one entry point, subcommands dispatched to their own modules.

Each subcommand lives beside the code it drives and exposes `main(argv) -> int`; this module
only routes (and holds the argument types subcommands share), so `holdfast --help` stays cheap
(nothing heavy is imported until a command runs). It imports neither argparse nor difflib: the
commands a Lambda function's `bootstrap` starts (`holdfast run`, `holdfast proxy`) parse their
few arguments by hand, and those ~2 ms count in every cold start. `CommandParser` is therefore
looked up lazily from :mod:`holdfast.command_parser`.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from holdfast.command_parser import CommandParser

__all__ = ["CommandParser", "did_you_mean", "env_variable", "fail", "main", "usage_error"]

_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("holdfast.runtime.cli", "run an ASGI/WSGI app as a Lambda custom runtime"),
    "emulate": ("holdfast.emulator.cli", "a local Lambda that really freezes the process"),
    "tasks": ("holdfast.tasks.cli", "durable task queue commands (worker, ...)"),
    "proxy": ("holdfast.proxy.cli", "run a web server's command as a Lambda function (LWA-style)"),
    "dev": ("holdfast.dev", "your app on a local freezing Lambda, with workers and a dashboard"),
    "coldstart": ("holdfast.coldstart", "where your app's cold start goes (imports, startup)"),
}


def _usage() -> str:
    lines = ["usage: holdfast COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in _COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from importlib.metadata import version

        print(version("holdfast"))
        return 0
    command = _COMMANDS.get(args[0])
    if command is None:
        print(f"holdfast: unknown command {args[0]!r}{_suggestion(args[0])}", file=sys.stderr)
        print("  hint: `holdfast --help` lists the commands", file=sys.stderr)
        return 2
    module = importlib.import_module(command[0])
    try:
        return int(module.main(args[1:]) or 0)
    except KeyboardInterrupt:  # Ctrl-C is how these commands are stopped: no traceback
        return 130


def __getattr__(name: str) -> Any:
    if name == "CommandParser":
        from holdfast.command_parser import CommandParser

        return CommandParser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _suggestion(word: str) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(_COMMANDS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def env_variable(value: str) -> tuple[str, str]:
    """The argparse type of ``--env NAME=VALUE``."""
    import argparse  # loaded already: argparse is what calls this

    name, sep, content = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, content


def usage_error(message: str, options: list[str]) -> tuple[str, str | None]:
    """argparse's ``message`` said plainly, with a hint when one is known."""
    if match := re.match(r"unrecognized arguments: (\S+)", message):
        word = match[1]
        if word.startswith("-"):
            return f"unknown option {word!r}", did_you_mean(word, options)
        return f"unexpected argument {word!r}", None
    if match := re.match(r"argument ([-\w/]+): invalid (\w+) value: (.*)", message):
        expected = {"int": "a whole number", "float": "a number"}.get(match[2], match[2])
        return f"{match[1]} expects {expected}, got {match[3]}", None
    return message, None


def did_you_mean(word: str, choices: list[str]) -> str | None:
    import difflib

    name = word.partition("=")[0]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def fail(prog: str, message: str, hint: str | None = None) -> NoReturn:
    """Exit with status 2 after ``PROG: message`` (and ``  hint: ...``) on stderr."""
    print(f"{prog}: {_printable(message)}", file=sys.stderr)
    if hint:
        print(f"  hint: {_printable(hint)}", file=sys.stderr)
    raise SystemExit(2)


def _printable(text: str) -> str:
    # What the user typed is echoed: a control character must not break the line or drive the
    # terminal.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
