"""An app with Python handlers for non-HTTP events, for `holdfast run handler_app:handler`.

SQS messages whose body is "bad" fail (reported in batchItemFailures); each good one records
itself after the response (holdfast.after_response) in HOLDFAST_TEST_RECORD, with the time.
"""

import os
import time

from fastapi import FastAPI

import holdfast
from holdfast.events import SQSRecord, each_record

app = FastAPI()
handler = holdfast.Adapter(app)


@app.get("/")
async def index() -> dict:
    return {"http": True}


def _record(message_id: str) -> None:
    time.sleep(0.2)
    with open(os.environ["HOLDFAST_TEST_RECORD"], "a") as record:
        record.write(f"{message_id} {time.monotonic()}\n")


@handler.on("sqs")
@each_record
async def consume(record: SQSRecord, context) -> None:
    if record.body == "bad":
        raise ValueError("cannot process this message")
    holdfast.after_response(_record, record.message_id)


@handler.on(lambda event: isinstance(event, dict) and event.get("keep-warm") == "please")
def warm(event, context) -> dict:
    return {"warm": True}
