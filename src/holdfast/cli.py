"""The `holdfast` command: one entry point, subcommands dispatched to their own modules.

Each subcommand lives beside the code it drives and exposes `main(argv) -> int`; this module
only routes, so `holdfast --help` stays cheap (nothing heavy is imported until a command runs).
"""

from __future__ import annotations

import importlib
import sys

_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("holdfast.runtime.cli", "run an ASGI/WSGI app as a Lambda custom runtime"),
    "emulate": ("holdfast.emulator.cli", "a local Lambda that really freezes the process"),
    "tasks": ("holdfast.tasks.cli", "durable task queue commands (worker, ...)"),
    "proxy": ("holdfast.proxy.cli", "run a web server's command as a Lambda function (LWA-style)"),
    "dev": ("holdfast.dev", "the demo app (or yours) under the emulator, for development"),
}


def _usage() -> str:
    lines = ["usage: holdfast COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {summary}" for name, (_, summary) in _COMMANDS.items()]
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
        print(f"holdfast: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(command[0])
    return int(module.main(args[1:]) or 0)
