"""Two adapters in one module (an API and an admin app behind one handler)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import holdfast


def _app(name: str):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        holdfast.after_response(_mark, name, scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})

    return app


async def _mark(name: str, path: str) -> None:
    await asyncio.sleep(0.1)
    (Path(os.environ["MARK_DIR"]) / f"{name}{path.replace('/', '-')}").touch()


api = holdfast.Adapter(_app("api"))
admin = holdfast.Adapter(_app("admin"))


def handler(event, context):
    if event.get("rawPath", "").startswith("/admin"):
        return admin(event, context)
    return api(event, context)
