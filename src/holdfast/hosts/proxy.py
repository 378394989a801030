"""``holdfast proxy``'s host: the custom runtime (:mod:`holdfast.hosts.custom`) serving a
:class:`~holdfast.proxy.app.ProxyApp` under an ordinary :class:`~holdfast.Adapter`.

Nothing else: the proxy is not a runtime of its own. Its app's lifespan startup starts the web
server's command and waits until it is ready; each event the adapter decodes is forwarded to
that server; SIGTERM winds down as ``holdfast run``'s does (the proxy's lifespan shutdown stops
the command).
"""

from __future__ import annotations

import logging

from holdfast import config
from holdfast.adapter import Adapter
from holdfast.config import LambdaSettings, ProxySettings
from holdfast.errors import LifespanError
from holdfast.hosts.custom import CustomRuntime
from holdfast.proxy.app import ProxyApp
from holdfast.runtime.bootstrap import fail_init
from holdfast.runtime.loader import Target
from holdfast.runtime.report import ErrorReport

__all__ = ["serve"]

logger = logging.getLogger("holdfast")

# Under SnapStart and provisioned concurrency, init is not on the request path: async init is
# pointless there and ignored, as LWA 1.1 does.
_PREINITIALIZED = ("snap-start", "provisioned-concurrency")


def serve(
    command: list[str], settings: ProxySettings, lambda_settings: LambdaSettings, address: str
) -> int:
    """Start ``command``'s server, wait until it is ready (the init), then serve invocations
    until SIGTERM; returns the process exit status."""
    concurrency = lambda_settings.max_concurrency
    initialization = lambda_settings.initialization_type
    async_init = settings.async_init
    if async_init and initialization in _PREINITIALIZED:
        logger.warning("ASYNC_INIT is ignored under %s: init waits for the app", initialization)
        async_init = False
    app = ProxyApp(
        command,
        settings,
        # Several invocations at once means Lambda Managed Instances: no freeze, pooling is safe.
        reuse=concurrency > 1 and initialization != "snap-start",
        exclusive=concurrency == 1,
        async_init=async_init,
    )
    try:
        # The app behind the proxy reads the Web Adapter's context headers: always sent.
        adapter = Adapter(app, lifespan="on", context_headers=True)
        adapter.start()  # the init phase: the app's command starts and must become ready
    except LifespanError as exc:
        report = ErrorReport.runtime(
            "ProxyAppNotReady", str(exc).removeprefix("lifespan startup failed: ")
        )
        return fail_init(address, report)
    runtime = CustomRuntime(
        Target(adapter=adapter),
        address,
        concurrency=concurrency,
        streaming=config.invoke_mode() == "response_stream",
        snapstart=initialization == "snap-start",
    )
    # SIGTERM: before CustomRuntime.run takes it over, holdfast.hosts.shutdown ends the process
    # (the watch started by prepare_process); from then on it winds down as holdfast run's.
    return adapter.engine.run(runtime.run())
