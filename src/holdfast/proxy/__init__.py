"""``holdfast proxy``: the Lambda Web Adapter's architecture, with the after-response guarantee.

The app keeps its own server (uvicorn, gunicorn, ...) started from a command; holdfast is the
Lambda runtime in front of it and forwards each event over loopback (see :mod:`.app`).
"""

from holdfast.proxy.app import ProxyApp

__all__ = ["ProxyApp"]
