"""An Adapter built during the first invocation, when extension registration has closed."""

from __future__ import annotations

import os
from pathlib import Path

import holdfast


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    holdfast.after_response(_mark)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"lazy"})


def _mark() -> None:
    with open(Path(os.environ["MARK_DIR"]) / "marks", "a") as marks:
        marks.write("done\n")


_adapter: holdfast.Adapter | None = None


def handler(event, context):
    global _adapter
    if _adapter is None:
        _adapter = holdfast.Adapter(app)
    return _adapter(event, context)
