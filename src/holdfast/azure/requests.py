"""What an Azure Functions invocation hands holdfast, as the adapter's event and context.

The event is the small one `holdfast.sources.azure` decodes (see there). The context stands
where Lambda's context object stands: `aws_request_id` is the worker's invocation id (so logs
and drain reports name the Azure invocation), and `get_remaining_time_in_millis` counts down
from the function's timeout (host.json `functionTimeout`), which bounds the drain.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from holdfast.sources.azure import MARKER


class InvocationContext:
    """One Azure invocation, as the adapter reads a context (`scope["aws.context"]`).

    `azure` is the worker's own `azure.functions.Context` (invocation id, function name, trace
    context): the only platform context holdfast trusts on Azure.
    """

    __slots__ = ("_deadline", "azure", "function_name", "invocation_id")

    def __init__(self, azure: Any, invocation_id: str, function_name: str, timeout: float) -> None:
        self.azure = azure
        self.invocation_id = invocation_id
        self.function_name = function_name
        self._deadline = time.monotonic() + timeout

    @property
    def aws_request_id(self) -> str:
        # The name the adapter reads a request id by; on Azure it is the invocation id.
        return self.invocation_id

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"<InvocationContext {self.function_name} {self.invocation_id}>"


def context_for(azure_context: Any, function_name: str, timeout: float) -> InvocationContext:
    """The adapter's context for the worker's `azure.functions.Context` (None in a bare call)."""
    invocation_id = str(getattr(azure_context, "invocation_id", "") or "-")
    name = str(getattr(azure_context, "function_name", "") or function_name)
    return InvocationContext(azure_context, invocation_id, name, timeout)


def http_event(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    route_prefix: str,
    invocation_id: str,
) -> dict[str, Any]:
    """The event `holdfast.sources.azure.AzureHTTP` decodes."""
    return {
        MARKER: "http",
        "method": method,
        "url": url,
        "headers": [[name, value] for name, value in headers],
        "body": body,
        "routePrefix": route_prefix,
        "invocationId": invocation_id,
    }
