"""A basic external extension: registers for INVOKE and SHUTDOWN under the name of its directory
(as the sample does), logs every event it gets, and exits on SHUTDOWN or SIGTERM."""

import json
import os
import signal
import sys
from pathlib import Path

import requests

NAME = Path(__file__).parent.name
API = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2020-01-01/extension"


def record(entry):
    with open(os.environ["EXT_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")


def on_signal(signum, frame):
    record({"signal": signum})
    sys.exit(0)


def main():
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    registered = requests.post(
        f"{API}/register",
        json={"events": ["INVOKE", "SHUTDOWN"]},
        headers={"Lambda-Extension-Name": NAME},
    )
    extension_id = registered.headers["Lambda-Extension-Identifier"]
    record({"registered": NAME})
    while True:
        response = requests.get(
            f"{API}/event/next", headers={"Lambda-Extension-Identifier": extension_id}, timeout=None
        )
        event = json.loads(response.text)
        record(event)
        print(f"[{NAME}] {event['eventType']}", flush=True)
        if event["eventType"] == "SHUTDOWN":
            sys.exit(0)


if __name__ == "__main__":
    main()
