"""`holdfast dev [MODULE:ATTR] [emulate options]`: an app under the emulator, as Lambda runs it.

With no app it serves holdfast's demo (``holdfast.demo:handler``): the custom runtime in a local
Lambda that really freezes between requests, on http://127.0.0.1:9000 — what ``make run`` starts.
Every ``holdfast emulate`` option is accepted and passed on.
"""

from __future__ import annotations

import sys

from holdfast.emulator import cli as emulate

DEFAULT_APP = "holdfast.demo:handler"


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    app = DEFAULT_APP
    if argv and not argv[0].startswith("-"):
        app, argv = argv[0], argv[1:]
    if "--" in argv:
        print("holdfast dev: the runtime is `holdfast run APP`; use `holdfast emulate` for another")
        return 2
    print(f"holdfast dev: {app} on a local Lambda (Ctrl-C stops it)", flush=True)
    return emulate.main([*argv, "--", sys.executable, "-m", "holdfast", "run", app])
