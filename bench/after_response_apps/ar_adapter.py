"""holdfast's Adapter as the handler of AWS's runtime client (awslambdaric ar_adapter.handler)."""

from ar_app import app

import holdfast

handler = holdfast.Adapter(app)
