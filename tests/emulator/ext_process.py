"""An external extension process: registers INVOKE + SHUTDOWN, records the events it gets.

Started by the emulator through an executable wrapper named `$EXT_NAME` (on Lambda an
extension's name is its file name). Writes each event to `$EXT_LOG` (one JSON document a line)
and exits after SHUTDOWN.
"""

import json
import os
import sys

from lambda_api import next_event, register

identifier = register(os.environ["EXT_NAME"], ["INVOKE", "SHUTDOWN"])
while True:
    event = next_event(identifier)
    with open(os.environ["EXT_LOG"], "a") as log:
        log.write(json.dumps(event) + "\n")
    if event["eventType"] == "SHUTDOWN":
        sys.exit(0)
