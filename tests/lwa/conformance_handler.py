"""The conformance app as AWS's own runtime client runs it: `python -m awslambdaric
conformance_handler.handler` (holdfast's in-process adapter, under the managed Python runtime)."""

from conformance_app import app

import holdfast

handler = holdfast.Adapter(app)
