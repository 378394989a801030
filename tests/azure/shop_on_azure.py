"""Run examples/shop's function_app.py as the Azure worker would (in a fresh process: the shop
reads its settings at import): index it, serve requests through the streaming worker stand-in,
run its queue trigger. Prints one JSON document of what happened; see test_azure_shop.py."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "examples" / "shop")]

from worker_standin import StreamingWorker, index  # noqa: E402


async def main() -> dict:
    import function_app
    from azure.functions.queue import QueueMessage

    app = function_app.app
    found: dict = {"functions": {}}
    for function in index(app):
        bindings = json.loads(function.get_function_json())["bindings"]
        found["functions"][function.get_function_name()] = [b["type"] for b in bindings]
    outbox = Path(os.environ["SHOP_DATA_DIR"]) / "outbox"
    audit = Path(os.environ["SHOP_DATA_DIR"]) / "audit.jsonl"
    async with StreamingWorker() as worker:
        # What the background tasks left by the time the invocation ended.
        worker.on_end = lambda: found.setdefault(
            "at_end", {"audit": audit.exists(), "mails": len(list(outbox.glob("*.eml")))}
        )
        signup = await worker.call(
            app,
            "POST",
            "/api/signup",
            body=json.dumps({"email": "ada@example.com", "name": "Ada"}).encode(),
            headers={"content-type": "application/json"},
        )
        found["signup"] = signup.status
        worker.on_end = None
        token = os.environ["SHOP_TEST_TOKEN"]
        report = await worker.call(
            app,
            "POST",
            "/api/reports?month=2026-11",
            headers={"authorization": f"Bearer {token}"},
        )
        found["report"] = report.status
        task_id = json.loads(report.body)["id"]
        # The queue trigger: the host receives the message and calls the function with it.
        backend = function_app.queue.backend
        [message] = list(backend._queue.receive_messages(max_messages=1, visibility_timeout=60))
        trigger = next(f for f in index(app) if f.get_function_name() == "holdfast_tasks_shop")
        await trigger.get_user_function()(
            QueueMessage(
                id=message.id,
                body=message.content.encode(),
                pop_receipt=message.pop_receipt,
                dequeue_count=message.dequeue_count,
            )
        )
        status = await worker.call(
            app, "GET", f"/api/tasks/{task_id}", headers={"authorization": f"Bearer {token}"}
        )
        found["status"] = json.loads(status.body)
        down = await worker.call(
            app,
            "POST",
            "/api/checkout",
            body=b'{"order_id": "o-1", "amount_cents": 100}',
            headers={"content-type": "application/json"},
        )
        found["checkout"] = [down.status, type(down.error).__name__]
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
