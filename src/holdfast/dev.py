"""`holdfast dev [MODULE:ATTR] [emulate options]`: an app under the emulator, as Lambda runs it.

With no app it serves holdfast's demo (``holdfast.demo:handler``): the custom runtime in a local
Lambda that really freezes between requests, on http://127.0.0.1:9000 — what ``make run`` starts.
``--worker MODULE:QUEUE`` also runs a local task worker for that queue (the demo's by default),
since a frozen function cannot be one. Every ``holdfast emulate`` option is passed on.
"""

from __future__ import annotations

import subprocess
import sys

from holdfast.emulator import cli as emulate

DEFAULT_APP = "holdfast.demo:handler"
DEFAULT_WORKER = "holdfast.demo:queue"


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    app, worker = DEFAULT_APP, DEFAULT_WORKER
    if argv and not argv[0].startswith("-"):
        app, argv, worker = argv[0], argv[1:], None
    if "--worker" in argv:
        at = argv.index("--worker")
        worker, argv = argv[at + 1] if at + 1 < len(argv) else None, argv[:at] + argv[at + 2 :]
        if worker is None:
            print("holdfast dev: --worker needs MODULE:QUEUE", file=sys.stderr)
            return 2
    if "--" in argv:
        print("holdfast dev: the runtime is `holdfast run APP`; use `holdfast emulate` for another")
        return 2
    print(f"holdfast dev: {app} on a local Lambda (Ctrl-C stops it)", flush=True)
    worker_process = _start_worker(worker) if worker else None
    try:
        return emulate.main([*argv, "--", sys.executable, "-m", "holdfast", "run", app])
    finally:
        if worker_process is not None:
            worker_process.terminate()  # SIGTERM: running tasks finish, then it stops
            worker_process.wait()


def _start_worker(spec: str) -> subprocess.Popen[bytes]:
    print(f"holdfast dev: task worker for {spec}", flush=True)
    return subprocess.Popen([sys.executable, "-m", "holdfast", "tasks", "worker", spec])
