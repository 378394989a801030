"""The hosts: what runs an :class:`~holdfast.Adapter`'s invocations on a platform.

An adapter turns an event into an :class:`~holdfast.invocation.Invocation` and knows no host; a
host delivers the invocation's outcome, takes it over once the response is out (its
after-response work must drain before the environment may freeze) and winds the process down on
SIGTERM. One module per host:

* :mod:`.managed` — AWS's managed Python runtime (awslambdaric calls ``handler(event, context)``)
  with holdfast's internal extension holding the freeze until the work has drained;
* :mod:`.instances` — Lambda Managed Instances under awslambdaric: forked workers, no freeze;
* :mod:`.custom` — ``holdfast run``: holdfast's own custom runtime loop;
* :mod:`.proxy` — ``holdfast proxy``: the custom runtime serving a :class:`ProxyApp` that
  forwards to the app's own web server;
* :mod:`.shutdown` — the one SIGTERM path and the one :func:`~.shutdown.wind_down` of them all.

:func:`select` is the one place that chooses, from one :class:`~holdfast.config.LambdaSettings`.
``holdfast run`` / ``holdfast proxy`` choose in-process, before the app is imported
(:func:`install`); under awslambdaric the app's own ``holdfast.Adapter(app)`` is where the host
starts: ``holdfast.Adapter`` registers :func:`attach` with :func:`holdfast.adapter.on_created`,
so the host (and lifespan startup) starts during the init phase, before awslambdaric's first
``/next`` closes extension registration. Nothing here is imported by the core.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Literal, Protocol

from holdfast.config import LambdaSettings
from holdfast.engine import running_loop

if TYPE_CHECKING:
    from holdfast.adapter import Adapter
    from holdfast.invocation import Invocation

__all__ = ["HandOverHost", "Host", "HostKind", "attach", "install", "select"]

logger = logging.getLogger("holdfast")

HostKind = Literal["custom", "managed", "instances", "none"]


class Host(Protocol):
    """A platform's way of running invocations.

    Every host takes an invocation through the same steps (:mod:`holdfast.invocation`): the
    outcome, its delivery, ``handed_over()``, then ``drain()`` before the environment may
    freeze. The custom runtime (and the proxy on it) takes them inline in its worker, before its
    next ``/next``; the hosts under awslambdaric get the invocation from the synchronous handler
    through :meth:`HandOverHost.hand_over`. All of them wind down through :meth:`terminate`.
    """

    def terminate(self) -> None:
        """SIGTERM: wind down (in-flight work, then lifespan shutdown) within the one shutdown
        budget (:class:`holdfast.hosts.shutdown.Budget`)."""


class HandOverHost(Host, Protocol):
    """A host under awslambdaric: the handler returns the outcome, the host drains after."""

    adapters: list[Adapter]

    def hand_over(self, invocation: Invocation) -> None:
        """The handler has its outcome (the runtime posts it next): the invocation's
        after-response work is the host's to drain, within its budget, before the freeze."""


def select(settings: LambdaSettings) -> HostKind:
    """Which host an adapter created in this process gets, the one place that decides: none off
    Lambda, or when ``holdfast run``/``holdfast proxy`` installed theirs; the Managed Instances
    host when Lambda says so; else the managed runtime's (unless ``HOLDFAST_EXTENSION=off``)."""
    if _installed is not None:
        return "custom"
    if not settings.on_lambda:
        return "none"
    if settings.managed_instances:
        return "instances"
    return "managed" if settings.extension else "none"


def install(kind: Literal["custom"]) -> None:
    """Choose this process's host in-process (``holdfast run``, ``holdfast proxy``: the custom
    runtime, before the app is imported): an adapter the app creates then starts no other."""
    global _installed
    _installed = kind


def attach(adapter: Adapter) -> None:
    """The hook :func:`holdfast.adapter.on_created` calls for every adapter: on Lambda, run
    lifespan startup now (the init phase: a failure is an init error) and, on a managed runtime,
    serve the adapter from the process's one host, started with the first adapter."""
    settings = LambdaSettings()
    if not settings.on_lambda:
        return  # outside Lambda, creating an adapter starts nothing
    # Created inside a running loop (an async app factory), the adapter cannot step its own
    # loop here: startup then runs before the first invocation instead.
    if running_loop() is None:
        adapter.start()
    kind = select(settings)
    if kind in ("none", "custom"):
        return
    global _host
    with _lock:
        host = _host
        if host is None:
            host = _host = _start(kind, adapter, settings)
            if host is None:
                return
        else:
            # Another adapter of the same process: one extension (a second registration under
            # the same name would fail the init) and one SIGTERM path serve them all.
            host.adapters.append(adapter)
    adapter.drainer = host.hand_over


def _start(kind: HostKind, adapter: Adapter, settings: LambdaSettings) -> HandOverHost | None:
    if kind == "instances":
        from holdfast.hosts.instances import ManagedInstancesHost

        instances = ManagedInstancesHost(adapter)
        instances.start()
        return instances
    from holdfast.hosts.managed import AfterResponseExtension

    assert settings.runtime_api is not None
    extension = AfterResponseExtension(adapter, settings)
    try:
        extension.start()
    except Exception as exc:
        # The app still answers: its after-response work then drains before the handler
        # returns (the response waits for it, as under Mangum).
        logger.warning(
            "holdfast: the after-response extension could not register (%s);"
            " after-response work delays each response instead",
            exc,
        )
        return None
    return extension


_installed: HostKind | None = None
_host: HandOverHost | None = None
_lock = threading.Lock()
