"""Forward queued batches to `DISPATCH_POST_URI` once `DISPATCH_MIN_BATCH_SIZE` are queued, or
all of them when forced (at SHUTDOWN)."""

import json
import os

import requests

POST_URI = os.getenv("DISPATCH_POST_URI")
MIN_BATCH_SIZE = int(os.getenv("DISPATCH_MIN_BATCH_SIZE"))


def dispatch_telemetry(queue, force):
    while not queue.empty() and (force or queue.qsize() >= MIN_BATCH_SIZE):
        batch = queue.get_nowait()
        if POST_URI is not None:
            requests.post(
                POST_URI, data=json.dumps(batch), headers={"Content-Type": "application/json"}
            )
