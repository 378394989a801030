"""One execution environment, by concept: state and waits (`base`), variables, platform
telemetry, shutdown, init, attempts, SnapStart, Managed Instances, and the `Environment` itself."""

from .environment import Environment

__all__ = ["Environment"]
