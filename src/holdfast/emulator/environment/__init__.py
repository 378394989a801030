"""One execution environment, a module per concept, each a layer over the one before.

`base` (shared state, waits, freeze and thaw) <- `platform_telemetry` (the lifecycle's platform
events) <- `shutdown` (SIGTERM, SHUTDOWN, windows, reset) <- `init` (extensions, then the runtime,
until all call `next`) <- `attempts` (dispatch, freeze, report; failed starts) <- `snapstart` and
`managed_instances` <- `environment` (`Environment`: an attempt's path through them).
`variables` holds the metadata and environment variables the processes are given.
"""

from .environment import Environment

__all__ = ["Environment"]
