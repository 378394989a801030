"""A fake, local mail server: messages become ``.eml`` files in the outbox directory.

Sending takes ``SHOP_MAIL_DELAY`` seconds, as talking to a real SMTP server would; that is the
kind of work a request should not wait for.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from email.message import EmailMessage

from .settings import settings

logger = logging.getLogger("shop.mail")


async def send(to: str, subject: str, body: str) -> str:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    await asyncio.sleep(settings.mail_delay)
    settings.outbox.mkdir(parents=True, exist_ok=True)
    path = settings.outbox / f"{uuid.uuid4().hex}.eml"
    path.write_bytes(bytes(message))
    logger.info("mail sent", extra={"to": to, "subject": subject, "file": path.name})
    return path.name
