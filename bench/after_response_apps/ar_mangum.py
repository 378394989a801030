"""Mangum, default options, as the handler of awslambdaric: ``awslambdaric ar_mangum.handler``.

Mangum returns once the app's call has returned, which for Starlette/FastAPI is after the
background tasks have run: the response waits for them.
"""

from ar_app import app
from mangum import Mangum

handler = Mangum(app)
