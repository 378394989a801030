"""docs/migrating-from-mangum.md, checked: every Mangum option is mapped, and the behaviour
differences it describes are what Mangum and holdfast actually do with the same app and event."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from mangum import Mangum

import holdfast
from lambda_events import http_event

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "migrating-from-mangum.md").read_text()


class Context:
    function_name = "migrating"
    memory_limit_in_mb = 128
    aws_request_id = "0f7c6d2e-mangum-0001"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def counting_app():
    startups: list[int] = []

    async def lifespan(app):
        startups.append(1)
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/{rest:path}")
    async def echo(request: Request, rest: str):
        scope = request.scope
        return {"path": scope["path"], "root_path": scope["root_path"], "url": str(request.url)}

    return app, startups


def test_every_mangum_option_is_mapped():
    options = [name for name in inspect.signature(Mangum.__init__).parameters if name != "self"]
    assert options[0] == "app"
    for name in options[1:]:
        assert f"`{name}=" in DOC, f"Mangum's {name} is not in the option table"


def test_lifespan_runs_around_every_invocation_under_mangum_and_once_under_holdfast():
    app, startups = counting_app()
    mangum = Mangum(app, lifespan="auto")
    for _ in range(3):
        assert mangum(http_event("/x"), Context())["statusCode"] == 200
    assert len(startups) == 3

    app, startups = counting_app()
    handler = holdfast.Adapter(app, lifespan="auto")
    try:
        for _ in range(3):
            assert handler(http_event("/x"), Context())["statusCode"] == 200
        assert len(startups) == 1
    finally:
        handler.close()


@pytest.mark.parametrize("adapter", ["mangum", "holdfast"])
def test_a_base_path_is_stripped_by_mangum_and_becomes_root_path_under_holdfast(adapter):
    app, _ = counting_app()
    if adapter == "mangum":
        handler = Mangum(app, lifespan="off", api_gateway_base_path="/api")
    else:
        handler = holdfast.Adapter(app, lifespan="off", base_path="/api")
    try:
        seen = json.loads(handler(http_event("/api/items"), Context())["body"])
    finally:
        if adapter == "holdfast":
            handler.close()
    if adapter == "mangum":  # the prefix is gone, and URLs the app builds lack it
        assert (seen["path"], seen["root_path"]) == ("/items", "")
        assert seen["url"].endswith("/items") and "/api/" not in seen["url"]
    else:  # as uvicorn --root-path: full path, prefix in root_path, URLs keep it
        assert (seen["path"], seen["root_path"]) == ("/api/items", "/api")
        assert seen["url"].endswith("/api/items")
