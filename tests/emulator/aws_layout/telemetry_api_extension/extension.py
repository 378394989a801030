"""A Telemetry API extension in the sample's shape: register, listen, subscribe; on INVOKE
forward what has queued up; on SHUTDOWN wait a second for the last events, forward everything
and exit. `$EXT_LOG` gets a line when SHUTDOWN arrived and when everything was forwarded."""

import json
import os
import sys
import time
from pathlib import Path
from queue import Queue

from extensions_api_client import next_event, register_extension
from telemetry_api_client import subscribe_listener
from telemetry_dispatcher import dispatch_telemetry
from telemetry_http_listener import start_http_listener


def record(entry):
    with open(os.environ["EXT_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")


def main():
    name = Path(__file__).parent.name
    extension_id = register_extension(name)
    queue = Queue()
    subscribe_listener(extension_id, start_http_listener(queue))
    while True:
        print("Extension Main: Next", flush=True)
        event = next_event(extension_id)
        if event["eventType"] == "INVOKE":
            dispatch_telemetry(queue, False)
        elif event["eventType"] == "SHUTDOWN":
            record({"shutdown": event["shutdownReason"]})
            time.sleep(1)
            dispatch_telemetry(queue, True)
            record({"forwarded": True})
            sys.exit(0)


if __name__ == "__main__":
    main()
