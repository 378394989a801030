"""The shop's HTTP API, and its Lambda handler.

    POST /signup                  201; BackgroundTasks write the audit record, send the welcome mail
    POST /reports?month=2026-11   202 + Location: a durable report job (bearer token required)
    GET  /tasks/{id}              the job's status (bearer token with the "reports" scope)
    GET  /orders/{id}/events      server-sent events (streamed under `holdfast run`)
    POST /checkout                503 while the payment provider is down: a Lambda function error
    GET  /healthz

and, not HTTP: stock updates from the warehouse's SQS queue (`restock`), one message at a time,
a bad message reported alone in ``batchItemFailures``.

`handler` is the one entry point for every host: the managed Python runtime calls
``shop.app.handler``; a custom runtime or container runs ``holdfast run shop.app:handler``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import holdfast
from holdfast.events import SQSRecord, each_record

from . import logs, mail, tracing
from .auth import Claims, require_reports_scope
from .jobs import build_report, queue
from .settings import settings

logs.configure(settings.log_level)
logger = logging.getLogger("shop.api")

app = FastAPI(title="shop")
tracing.instrument(app, settings.spans)
app.add_middleware(logs.RequestIdMiddleware)
app.include_router(queue.router(dependencies=[Depends(require_reports_scope)]))


class Signup(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    name: str


class StockUpdate(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=0)


class Order(BaseModel):
    order_id: str
    amount_cents: int


def write_audit(action: str, **fields: Any) -> None:
    settings.audit_log.parent.mkdir(parents=True, exist_ok=True)
    record = {"action": action, "at": time.time(), "request_id": logs.request_id.get(), **fields}
    with settings.audit_log.open("a") as file:
        file.write(json.dumps(record) + "\n")
    logger.info("audit record written", extra={"action": action})


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/signup", status_code=201)
async def signup(body: Signup, background: BackgroundTasks) -> dict[str, str]:
    user_id = uuid.uuid4().hex
    # Both run after the response has been sent, before Lambda freezes the environment.
    background.add_task(write_audit, "user.signup", user_id=user_id, email=body.email)
    background.add_task(mail.send, body.email, "Welcome to the shop", f"Hello {body.name}!")
    logger.info("signed up", extra={"user_id": user_id})
    return {"id": user_id, "email": body.email}


@app.post("/reports")
async def start_report(
    request: Request,
    month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")],
    claims: Claims,
) -> Response:
    handle = await build_report.defer(month, claims["sub"])
    logger.info("report queued", extra={"task_id": handle.id})
    return queue.accepted(handle, request)


@app.get("/orders/{order_id}/events")
async def order_events(order_id: str) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        for state in ("placed", "paid", "packed", "shipped"):
            yield f"event: status\ndata: {json.dumps({'order': order_id, 'state': state})}\n\n"
            await asyncio.sleep(0.05)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@app.post("/checkout")
async def checkout(order: Order) -> dict[str, Any]:
    if settings.payments_url is None:
        # 503 is in error_status_codes below: the invocation fails, so Lambda's retries, alarms
        # and on-failure destinations see it (the client still gets an error answer).
        logger.error("payment provider not configured", extra={"order": order.order_id})
        raise HTTPException(503, "the payment provider is unavailable")
    try:
        reply = await asyncio.to_thread(_charge, order)
    except OSError as exc:
        logger.error("payment provider failed", extra={"order": order.order_id, "error": str(exc)})
        raise HTTPException(503, "the payment provider is unavailable") from None
    return {"order": order.order_id, "payment": reply}


def _charge(order: Order) -> Any:
    request = urllib.request.Request(
        str(settings.payments_url),
        data=order.model_dump_json().encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


handler = holdfast.Adapter(app, error_status_codes="502-504")


@handler.on("sqs")
@each_record
async def restock(record: SQSRecord, context: Any) -> None:
    """The warehouse's stock updates. Raising (a malformed message) reports just this message
    for redelivery; after maxReceiveCount the queue's redrive policy moves it aside."""
    token = logs.request_id.set(getattr(context, "aws_request_id", None))
    try:
        update = StockUpdate.model_validate_json(record.body)
        write_audit("stock.update", sku=update.sku, quantity=update.quantity)
    finally:
        logs.request_id.reset(token)
