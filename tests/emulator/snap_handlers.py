"""A SnapStart function: hooks registered at import, as snapshot_restore_py documents.

The before-snapshot hook writes `$SNAP_DIR/snapshot` (so a test can tell the snapshot was taken
before any invocation); with `$SNAP_FAIL_RESTORE` set an after-restore hook fails.
"""

import os
import time
from pathlib import Path

from snapshot_restore_py import register_after_restore, register_before_snapshot

HOOKS = []
IMPORTED_AT = time.time()


def _before_snapshot():
    HOOKS.append(["before_snapshot", time.time()])
    Path(os.environ["SNAP_DIR"], "snapshot").write_text(str(os.getpid()))


def _after_restore():
    HOOKS.append(["after_restore", time.time()])


def _failing_after_restore():
    raise RuntimeError("cannot reconnect after restore")


register_before_snapshot(_before_snapshot)
register_after_restore(_after_restore)
if os.environ.get("SNAP_FAIL_RESTORE"):
    register_after_restore(_failing_after_restore)


def handler(event, context):
    return {
        "hooks": HOOKS,
        "imported_at": IMPORTED_AT,
        "pid": os.getpid(),
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
    }
