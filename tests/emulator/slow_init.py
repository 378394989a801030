"""A module whose import (the init phase) takes SLOW_INIT_SECONDS, once per marker file."""

import os
import time
from pathlib import Path

_marker = Path(os.environ["SLOW_INIT_MARKER"])
if not _marker.exists():
    # Only the first init is slow: the retried init must then succeed.
    _marker.write_text("slow")
    time.sleep(float(os.environ["SLOW_INIT_SECONDS"]))


def handler(event, context):
    return "initialized"
