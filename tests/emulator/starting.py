"""A function that says its init: `init <pid>` is printed at import (the init phase). With
`$LATER_INITS_FAIL` naming a file, the first init creates it and every later one raises."""

import os
from pathlib import Path

print(f"init {os.getpid()}", flush=True)
_marker = os.environ.get("LATER_INITS_FAIL")
if _marker:
    if Path(_marker).exists():
        raise RuntimeError("a later init fails")
    Path(_marker).touch()


def handler(event, context):
    if event.get("crash"):
        os._exit(3)  # the environment is reset: the next request starts a new one
    return {"pid": os.getpid()}
