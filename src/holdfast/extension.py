"""The after-response extension: holds Lambda's freeze until an invocation's work has drained.

Under AWS's managed Python runtime (awslambdaric), ``handler = holdfast.Adapter(app)`` returns
as soon as the response is ready and the runtime posts it at once. Lambda freezes the
environment only when the runtime *and every extension subscribed to INVOKE* have asked for the
next event, so an internal extension (a thread of this process) registered during import can
keep the environment thawed exactly as long as the invocation's pending work needs.

Registering also earns the process a SIGTERM, 500 ms before it is killed at shutdown: the
extension uses it to finish running work and run lifespan shutdown.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from holdfast.adapter import Adapter, Invocation

logger = logging.getLogger("holdfast")

EXTENSION_NAME = "holdfast-after-response"
#: Lambda gives a runtime with internal extensions this long between SIGTERM and SIGKILL.
SHUTDOWN_WINDOW = 0.5


class ExtensionsAPIError(RuntimeError):
    """The Extensions API refused a call."""


class _ExtensionsAPI:
    """A blocking client for the Extensions API, used from the extension's own thread."""

    def __init__(self, address: str) -> None:
        import http.client  # here, not at import: hosts without the extension skip its cost

        host, _, port = address.rpartition(":")
        # No timeout: event/next blocks for as long as the environment stays frozen.
        self._connection = http.client.HTTPConnection(host, int(port))
        self.identifier = ""

    def register(self, name: str) -> dict[str, Any]:
        status, headers, body = self._call(
            "POST",
            "/2020-01-01/extension/register",
            {"Lambda-Extension-Name": name},
            json.dumps({"events": ["INVOKE"]}).encode(),
        )
        if status != 200:
            raise ExtensionsAPIError(f"extension registration failed ({status}): {body!r}")
        self.identifier = headers.get("Lambda-Extension-Identifier", "")
        registration: dict[str, Any] = json.loads(body or b"{}")
        return registration

    def next_event(self) -> dict[str, Any]:
        status, _, body = self._call(
            "GET",
            "/2020-01-01/extension/event/next",
            {"Lambda-Extension-Identifier": self.identifier},
        )
        if status != 200:
            raise ExtensionsAPIError(f"extension event/next failed ({status}): {body!r}")
        event: dict[str, Any] = json.loads(body)
        return event

    def _call(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, Any, bytes]:
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        return response.status, response.headers, response.read()


class AfterResponseExtension:
    """Drains each invocation's pending work before letting Lambda freeze the environment."""

    def __init__(self, adapter: Adapter, runtime_api: str) -> None:
        self._adapter = adapter
        self._api = _ExtensionsAPI(runtime_api)
        self._handed_over: dict[str, Invocation] = {}
        self._condition = threading.Condition()

    def start(self) -> None:
        """Register (this must happen before the runtime's first ``next``) and start."""
        self._api.register(EXTENSION_NAME)
        # Block SIGTERM first: threads inherit the mask, and a thread that does not block it
        # could take the signal and die of its default action instead of shutting down.
        _watch_sigterm(self._on_sigterm)
        threading.Thread(target=self._serve, name="holdfast-extension", daemon=True).start()

    def hand_over(self, invocation: Invocation) -> None:
        """Called by the handler when its response is ready: the rest is the extension's."""
        with self._condition:
            self._handed_over[invocation.request_id] = invocation
            self._condition.notify_all()

    def _serve(self) -> None:
        while True:
            try:
                event = self._api.next_event()
            except Exception:
                logger.exception("the after-response extension lost the Extensions API")
                return
            if event.get("eventType") == "INVOKE":
                self._finish(str(event.get("requestId")), event.get("deadlineMs"))

    def _finish(self, request_id: str, deadline_ms: int | None) -> None:
        with self._condition:
            self._condition.wait_for(lambda: request_id in self._handed_over)
            invocation = self._handed_over.pop(request_id)
        if invocation.idle:
            return
        timeout = self._adapter.drain_timeout(invocation.context)
        if timeout is None and deadline_ms:
            timeout = max(0.0, deadline_ms / 1000 - time.time() - self._adapter.drain_margin)
        self._adapter.engine.run(invocation.drain(timeout))

    def _on_sigterm(self) -> None:
        adapter = self._adapter
        try:
            adapter.engine.run(adapter.shutdown(timeout=SHUTDOWN_WINDOW * 0.8))
        except Exception:
            logger.exception("lifespan shutdown failed")
        finally:
            logging.shutdown()
            os._exit(0)


def _watch_sigterm(on_sigterm: Callable[[], None]) -> None:
    """Run ``on_sigterm`` in a thread of its own when SIGTERM arrives.

    The main thread spends its idle time inside the runtime's C client, where a Python signal
    handler would never run; blocking the signal there and waiting for it in a thread works
    whatever the main thread is doing.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.warning("holdfast.Adapter was created off the main thread: no SIGTERM shutdown")
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        signal.sigwait({signal.SIGTERM})
        on_sigterm()

    threading.Thread(target=wait, name="holdfast-sigterm", daemon=True).start()


def start_for(adapter: Adapter) -> AfterResponseExtension | None:
    """Start the extension when ``adapter`` is the handler of a managed Lambda runtime.

    Hosts that drain pending work themselves (``holdfast run``) set ``HOLDFAST_HOST=runtime``;
    ``HOLDFAST_EXTENSION=off`` turns the extension off.
    """
    runtime_api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not runtime_api or os.environ.get("HOLDFAST_HOST") == "runtime":
        return None
    if os.environ.get("HOLDFAST_EXTENSION", "on").lower() in ("off", "0", "false"):
        return None
    extension = AfterResponseExtension(adapter, runtime_api)
    extension.start()
    adapter.host = extension.hand_over
    return extension
