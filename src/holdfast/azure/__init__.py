"""holdfast on Azure Functions (the Python v2 programming model): `holdfast.azure.FunctionApp`.

Needs the `azure` extra (`pip install 'holdfast[azure]'`: azure-functions, and for `azure://`
task queues azure-storage-queue and azure-data-tables); add
`azurefunctions-extensions-http-fastapi` for the HTTP streaming mode, in which the response
goes out at once and after-response work runs inside the invocation. See docs/deploying-azure.md.
"""

from __future__ import annotations

from holdfast.azure.app import FunctionApp, streaming_available
from holdfast.azure.requests import InvocationContext

__all__ = ["FunctionApp", "InvocationContext", "streaming_available"]
