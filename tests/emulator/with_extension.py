"""A handler module that registers an internal extension at import, as holdfast.Adapter does.

For each INVOKE the extension thread waits for `<EXT_DIR>/go-<request id>` (made by the test),
writes `<EXT_DIR>/done-<request id>` holding its `time.monotonic()`, then calls `next` again:
the environment must not freeze before that.
"""

import json
import os
import threading
import time
from pathlib import Path

from lambda_api import next_event, register

_DIR = Path(os.environ["EXT_DIR"])


def _loop(identifier):
    while True:
        event = next_event(identifier)
        with (_DIR / "events.jsonl").open("a") as log:
            log.write(json.dumps(event) + "\n")
        request_id = event["requestId"]
        while not (_DIR / f"go-{request_id}").exists():
            time.sleep(0.01)
        (_DIR / f"done-{request_id}").write_text(repr(time.monotonic()))


threading.Thread(target=_loop, args=(register("test-ext", ["INVOKE"]),), daemon=True).start()


def handler(event, context):
    return {"request_id": context.aws_request_id}
