"""Work that does not belong in a request: the durable queue, its tasks and its schedule.

Locally the queue is a SQLite file and ``holdfast tasks worker shop.jobs:queue`` runs it. On AWS
it is SQS (delivery) + DynamoDB (status); the same Lambda function consumes the queue (the SAM
template's SQS event source mapping) and EventBridge triggers the periodic task.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from holdfast.tasks import TaskQueue

from . import mail
from .settings import settings

logger = logging.getLogger("shop.jobs")

queue = TaskQueue(settings.queue_url, name="shop")


@queue.task(name="shop.build_report", retries=2, timeout=60)
async def build_report(month: str, requested_by: str) -> dict[str, Any]:
    """A monthly sales report: slow enough that no HTTP client should wait for it."""
    await asyncio.sleep(0.1)  # querying the warehouse, rendering ...
    seed = int(hashlib.sha256(month.encode()).hexdigest()[:8], 16)
    report = {"month": month, "orders": seed % 1000, "revenue_cents": seed % 10_000_000}
    logger.info("report built", extra={"month": month, "requested_by": requested_by})
    return report


@queue.periodic("0 6 * * *", name="shop.daily_digest", retries=1)
async def daily_digest() -> str:
    """Every day at 06:00 UTC: a digest mail to the operations team."""
    return await mail.send("ops@example.com", "Daily digest", "Nothing on fire.")
