"""A FastAPI and a Flask app that echo everything a framework derives from the scope: the URL
(host, port, scheme), query, headers, cookies, client and body. Whatever scope holdfast builds,
neither may answer 5xx; the fuzz tests send them mutated events (``holdfast run
echo_apps:fastapi_app`` serves them under the emulator)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from flask import Flask
from flask import request as flask_request

#: The echo app under each runtime, as ``python`` arguments (run in tests/adapter).
RUNTIMES = {
    "holdfast-run": ["-m", "holdfast", "run", "echo_apps:fastapi_app"],
    "awslambdaric": ["-m", "awslambdaric", "echo_handler.handler"],
}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

fastapi_app = FastAPI()


@fastapi_app.get("/oversized")
async def oversized() -> Response:
    """4.3 MiB of binary body and 300 KB of headers: the body alone would fit Lambda's 6 MB
    once base64-encoded, the whole response does not."""
    headers = {f"x-padding-{i}": "p" * 1000 for i in range(300)}
    body = bytes(range(256)) * (int(4.3 * 1024 * 1024) // 256)
    return Response(body, media_type="application/octet-stream", headers=headers)


@fastapi_app.api_route("/{rest:path}", methods=METHODS)
async def fastapi_echo(request: Request, rest: str) -> dict[str, Any]:
    body = await request.body()
    url = request.url
    return {
        "url": str(url),
        "base_url": str(request.base_url),
        "scheme": url.scheme,
        "host": url.hostname,
        "port": url.port,
        "path": url.path,
        "route": rest,
        "query": request.query_params.multi_items(),
        "headers": request.headers.items(),
        "cookies": request.cookies,
        "client": request.client.host if request.client else None,
        "body_length": len(body),
        "self": str(request.url_for("fastapi_echo", rest=rest)),
    }


flask_app = Flask(__name__)


@flask_app.route("/", defaults={"rest": ""}, methods=METHODS)
@flask_app.route("/<path:rest>", methods=METHODS)
def flask_echo(rest: str) -> dict[str, Any]:
    request = flask_request
    return {
        "url": request.url,
        "host_url": request.host_url,
        "scheme": request.scheme,
        "host": request.host,
        "path": request.path,
        "full_path": request.full_path,
        "route": rest,
        "query": list(request.args.items(multi=True)),
        "headers": list(request.headers.items()),
        "cookies": dict(request.cookies),
        "client": request.remote_addr,
        "body_length": len(request.get_data()),
    }
