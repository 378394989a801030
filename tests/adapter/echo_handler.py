"""The FastAPI echo app as a managed-runtime handler: ``awslambdaric echo_handler.handler``."""

from __future__ import annotations

from echo_apps import fastapi_app

import holdfast

handler = holdfast.Adapter(fastapi_app)
