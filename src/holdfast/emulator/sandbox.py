"""The platform side of the Runtime and Extensions APIs for one life of an execution environment.

A `Sandbox` holds the state RAPID keeps: where the runtime is in its next/response cycle, which
extensions registered for what, which events they still have to collect. It does no I/O of its
own: `server.py` turns HTTP into calls on it, `environment.py` dispatches invocations into it and
waits on it for the moments that matter (init done, everyone back in `next` → freeze). A reset
throws the whole object away, so no state leaks from one runtime process to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from .attempt import Attempt
from .invoke import RuntimeResponse
from .telemetry import TelemetryHub

MAX_EXTENSIONS = 10
INVOKE = "INVOKE"
SHUTDOWN = "SHUTDOWN"

_ERROR_TYPE = re.compile(r"(Runtime|Function|Extension)\.[A-Z][a-zA-Z]+")

# Runtime states, named as RAPID names them in its error messages.
_STARTED = "RuntimeStartedState"
_READY = "RuntimeReadyState"
_RUNNING = "RuntimeRunningState"
_RESPONDING = "RuntimeInvocationResponseState"
_RESPONSE_SENT = "RuntimeResponseSentState"
_INIT_ERROR = "RuntimeInitErrorState"
_RESTORE_READY = "RuntimeRestoreReadyState"
_RESTORING = "RuntimeRestoringState"
_RESTORE_ERROR = "RuntimeRestoreErrorState"


class APIError(Exception):
    """A refusal the Runtime/Extensions API answers with `{"errorType", "errorMessage"}`."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class FunctionMetadata:
    """What `/extension/register` tells extensions about the function."""

    function_name: str
    function_version: str
    handler: str
    account_id: str


@dataclass
class Extension:
    """A registered extension: external (its own process) or internal (a runtime thread)."""

    name: str
    events: frozenset[str]
    external: bool
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    waiting: bool = False
    _pending: deque[dict[str, Any]] = field(default_factory=deque)
    _waiter: asyncio.Future[dict[str, Any]] | None = None


def _transition_error(current: str, target: str) -> APIError:
    message = (
        f"State transition from {current} to {target} failed for runtime. "
        "Error: State transition is not allowed"
    )
    return APIError(403, "InvalidStateTransition", message)


def normalize_error_type(value: str | None) -> str:
    """Keep `Category.Reason` error types; map anything else to `Runtime.Unknown` as RAPID does."""
    if value and _ERROR_TYPE.fullmatch(value):
        return value
    if value and value.startswith("Function."):
        return "Function.Unknown"
    return "Runtime.Unknown"


class Sandbox:
    """Runtime and extension state for one environment life (see the module docstring)."""

    def __init__(
        self,
        metadata: FunctionMetadata,
        external_names: Collection[str] = (),
        *,
        max_concurrency: int | None = None,
        telemetry: TelemetryHub | None = None,
        snap_start: bool = False,
    ) -> None:
        self.metadata = metadata
        self.external_names = frozenset(external_names)
        # How many extension processes were started: init waits for as many registrations.
        self.expected_externals = len(external_names)
        # Before the runtime starts only extension processes run: whoever registers then is
        # external, whatever its name (run locally, AWS's samples register under the name of
        # their directory, not of the file the emulator started).
        self.runtime_started = False
        self.extensions: dict[str, Extension] = {}
        self.current: Attempt | None = None
        self.init_failure: RuntimeResponse | None = None
        self.registration_open = True
        # Managed Instances: many invocations at once, each answered by whichever poller took it.
        self.max_concurrency = max_concurrency
        self.telemetry = telemetry or TelemetryHub()
        # Told when the runtime is done with an invocation (`platform.runtimeDone`) and when it
        # first asks for work (`platform.initRuntimeDone`).
        self.on_runtime_done: Callable[[Attempt], None] = _ignore
        self.on_runtime_ready: Callable[[], None] = _ignore
        # SnapStart: init ends with the runtime in `/runtime/restore/next`; the snapshot is taken
        # there, and `restore()` answers that call. A `/runtime/restore/error` fails the restore.
        self.snap_start = snap_start
        self.restore_failure: RuntimeResponse | None = None
        self.on_restored: Callable[[], None] = _ignore
        self._restore_waiter: asyncio.Future[None] | None = None
        self._runtime_state = _STARTED
        self._runtime_waiter: asyncio.Future[Attempt] | None = None
        self._runtime_delivery: Callable[[Attempt], object] | None = None
        self._pollers: deque[asyncio.Future[Attempt]] = deque()
        self._active: dict[str, Attempt] = {}
        self._responding: set[str] = set()
        self._expired_requests: set[str] = set()
        self._expired_invocations: set[str] = set()
        self._watchers: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conditions: list[tuple[Callable[[], bool], Callable[[], None]]] = []

    @property
    def concurrent(self) -> bool:
        """Whether this is a Managed Instances environment (several invocations at once)."""
        return self.max_concurrency is not None

    # -- what the environment waits for -------------------------------------------------------

    @property
    def runtime_waiting(self) -> bool:
        """The runtime is blocked in `/next` with nothing to do (one poller, when concurrent)."""
        if self.concurrent:
            return self.idle_pollers > 0
        return self._runtime_state == _READY

    @property
    def idle_pollers(self) -> int:
        """How many `/next` calls wait for an invocation right now."""
        if not self.concurrent:
            return 1 if self.runtime_waiting else 0
        return sum(1 for poller in self._pollers if not poller.done())

    @property
    def initialized(self) -> bool:
        """Init is over: the runtime and every registered extension have called `next`."""
        return self.runtime_waiting and all(e.waiting for e in self.extensions.values())

    @property
    def snapshot_ready(self) -> bool:
        """SnapStart init is over: the runtime waits in `restore/next` (or, if it ignores
        SnapStart, in `next`) and every registered extension has called `next`."""
        runtime_ready = self._runtime_state == _RESTORE_READY or self.runtime_waiting
        return runtime_ready and all(e.waiting for e in self.extensions.values())

    @property
    def quiescent(self) -> bool:
        """The attempt is over: the runtime and every INVOKE extension are back in `next`."""
        return self.runtime_waiting and all(
            e.waiting for e in self.extensions.values() if INVOKE in e.events
        )

    @property
    def has_internal_extensions(self) -> bool:
        """Whether a thread of the runtime registered as an extension (earns it a SIGTERM)."""
        return any(not e.external for e in self.extensions.values())

    @property
    def has_external_extensions(self) -> bool:
        """Whether an extension process registered."""
        return any(e.external for e in self.extensions.values())

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; it is re-checked on every state change."""
        loop = asyncio.get_running_loop()
        while not predicate():
            watcher: asyncio.Future[None] = loop.create_future()
            self._watchers.append(watcher)
            await watcher

    def watch(
        self, predicate: Callable[[], bool], callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call `callback()` once `predicate()` holds: now, or at the state change that makes it.

        The check runs inside the state change itself, so the waiting side learns of it without
        a round through the event loop. Returns a function that drops the watch.
        """
        if predicate():
            callback()
            return _ignore
        condition = (predicate, callback)
        self._conditions.append(condition)

        def unwatch() -> None:
            if condition in self._conditions:
                self._conditions.remove(condition)

        return unwatch

    def _changed(self) -> None:
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)
        if self._conditions:
            for condition in list(self._conditions):
                if condition in self._conditions and condition[0]():
                    self._conditions.remove(condition)
                    condition[1]()

    def _future(self) -> asyncio.Future[Any]:
        # The loop is looked up once: asyncio.get_running_loop() is a system call (getpid).
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.create_future()

    # -- driven by the environment ------------------------------------------------------------

    def dispatch(self, attempt: Attempt) -> None:
        """Hand `invocation` to the waiting runtime and its INVOKE event to the extensions."""
        if self.concurrent:
            while self._pollers and self._pollers[0].done():
                self._pollers.popleft()
            if not self._pollers:
                raise RuntimeError("dispatch while no runtime poller waits in /next")
            self._active[attempt.request_id] = attempt
            self._pollers.popleft().set_result(attempt)
        else:
            if self._runtime_waiter is None or self._runtime_waiter.done():
                raise RuntimeError("dispatch while the runtime is not waiting in /next")
            self.current = attempt
            self._runtime_state = _RUNNING
            self._runtime_waiter.set_result(attempt)
            deliver, self._runtime_delivery = self._runtime_delivery, None
            if deliver is not None:
                deliver(attempt)
        for extension in self.extensions.values():
            if INVOKE in extension.events:
                self._deliver(extension, attempt.extension_event())
        self._changed()

    def shutdown(self, reason: str, deadline_ms: int) -> list[Extension]:
        """Send SHUTDOWN to the extensions that asked for it; returns them."""
        event = {"eventType": SHUTDOWN, "shutdownReason": reason, "deadlineMs": deadline_ms}
        targets = [e for e in self.extensions.values() if SHUTDOWN in e.events]
        for extension in targets:
            self._deliver(extension, dict(event))
        self._changed()
        return targets

    # -- Runtime API --------------------------------------------------------------------------

    async def runtime_next(self, deliver: Callable[[Attempt], object] | None = None) -> Attempt:
        """Long-poll for the next invocation (GET /runtime/invocation/next).

        `deliver(attempt)`, if given, is called the moment the invocation is dispatched, inside
        `dispatch` (the runtime is answered then, not a round of the event loop later when the
        poll's task wakes); when several pollers share an environment (Managed Instances), the
        poll is answered as it returns.
        """
        if self.concurrent:
            return await self._poll()
        # A client that dropped its long poll (its waiter got cancelled) may poll again.
        abandoned = self._runtime_waiter is not None and self._runtime_waiter.cancelled()
        if self._runtime_state not in (_STARTED, _RESPONSE_SENT, _RESTORING) and not abandoned:
            raise _transition_error(self._runtime_state, _READY)
        previous, finished = self._runtime_state, self.current
        self.registration_open = False
        self._runtime_state = _READY
        self._runtime_waiter = self._future()
        self._runtime_delivery = deliver
        if previous == _STARTED:
            self.on_runtime_ready()
        elif previous == _RESTORING:
            self.on_restored()
        elif previous == _RESPONSE_SENT and finished is not None and not abandoned:
            self.on_runtime_done(finished)
        self._changed()
        return await self._runtime_waiter

    async def _poll(self) -> Attempt:
        first = self.registration_open
        self.registration_open = False
        poller: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
        self._pollers.append(poller)
        if first:
            self.on_runtime_ready()
        self._changed()
        try:
            return await poller
        finally:
            if not poller.done() or poller.cancelled():
                with contextlib.suppress(ValueError):
                    self._pollers.remove(poller)
                self._changed()

    def begin_response(self, request_id: str, invocation_id: str | None = None) -> Attempt:
        """Accept a `/response` or `/error` for `request_id`, or refuse it as RAPID does.

        A post for an invocation that already timed out (named by its request id or by the
        `Lambda-Runtime-Invocation-Id` it was given) is answered 410 Gone.
        """
        if invocation_id in self._expired_invocations or (
            request_id in self._expired_requests and request_id not in self._active
        ):
            raise APIError(410, "InvocationTimedOut", f"Attempt {request_id} has already timed out")
        if self.concurrent:
            attempt = self._active.get(request_id)
            if attempt is None or not _same_attempt(attempt, invocation_id):
                raise APIError(400, "InvalidRequestID", "Invalid request ID")
            if request_id in self._responding or attempt.result.done():
                raise _transition_error(_RESPONSE_SENT, _RESPONSE_SENT)
            self._responding.add(request_id)
            attempt.record_response_start()
            return attempt
        if self._runtime_state != _RUNNING:
            raise _transition_error(self._runtime_state, _RESPONSE_SENT)
        assert self.current is not None
        if request_id != self.current.request_id or not _same_attempt(self.current, invocation_id):
            raise APIError(400, "InvalidRequestID", "Invalid request ID")
        self._runtime_state = _RESPONDING
        self.current.record_response_start()
        return self.current

    def end_response(self, attempt: Attempt) -> None:
        """The `/response` or `/error` body has been read: the runtime may call `/next` again.

        When concurrent, no poller can be told apart from another, so the runtime counts as done
        with the invocation here (`platform.runtimeDone`), not at its next `/next`.
        """
        if self.concurrent:
            if attempt.request_id in self._responding:
                self._responding.discard(attempt.request_id)
                self._active.pop(attempt.request_id, None)
                self.on_runtime_done(attempt)
                self._changed()
            return
        if self._runtime_state == _RESPONDING:
            self._runtime_state = _RESPONSE_SENT
            self._changed()

    def expire(self, attempt: Attempt) -> None:
        """`invocation` timed out: a result posted for it from now on is answered 410 Gone."""
        self._expired_requests.add(attempt.request_id)
        self._expired_invocations.add(attempt.invocation_id)
        self._active.pop(attempt.request_id, None)
        self._responding.discard(attempt.request_id)
        self._changed()

    async def restore_next(self) -> None:
        """SnapStart: wait across the snapshot until the restore (GET /runtime/restore/next)."""
        if not self.snap_start:
            raise APIError(403, "InvalidStateTransition", "SnapStart is not enabled")
        if self._runtime_state != _STARTED:
            raise _transition_error(self._runtime_state, _RESTORE_READY)
        self.registration_open = False
        self._runtime_state = _RESTORE_READY
        self._restore_waiter = asyncio.get_running_loop().create_future()
        self.on_runtime_ready()
        self._changed()
        await self._restore_waiter
        self._runtime_state = _RESTORING

    def restore(self) -> None:
        """Answer the runtime's `restore/next`: the environment has been restored."""
        if self._restore_waiter is not None and not self._restore_waiter.done():
            self._restore_waiter.set_result(None)

    def restore_error(self, error_type: str | None, body: bytes) -> None:
        """Record a failed restore (POST /runtime/restore/error)."""
        if self._runtime_state != _RESTORING:
            raise _transition_error(self._runtime_state, _RESTORE_ERROR)
        self._runtime_state = _RESTORE_ERROR
        kept = normalize_error_type(error_type)
        self.restore_failure = RuntimeResponse(body or b"{}", error_type=kept)
        self._changed()

    def init_error(self, error_type: str | None, body: bytes) -> None:
        """Record an init failure (POST /runtime/init/error)."""
        if self._runtime_state != _STARTED:
            raise _transition_error(self._runtime_state, _INIT_ERROR)
        self._runtime_state = _INIT_ERROR
        self.init_failure = RuntimeResponse(body, error_type=normalize_error_type(error_type))
        self._changed()

    # -- Extensions API -----------------------------------------------------------------------

    def register(self, name: str | None, body: bytes) -> Extension:
        """Register an extension (POST /extension/register)."""
        if not name:
            raise APIError(403, "Extension.InvalidExtensionName", "Empty extension name")
        events = _parse_events(body)
        external = name in self.external_names or not self.runtime_started
        for event in events:
            if event not in (INVOKE, SHUTDOWN) or (event == SHUTDOWN and not external):
                reason = "not allowed for an internal extension" if event == SHUTDOWN else "unknown"
                raise APIError(403, "Extension.InvalidEventType", f"{event}: {reason} event")
        if not self.registration_open:
            raise APIError(
                403, "Extension.RegistrationClosed", "Extension registration closed already"
            )
        if any(e.name == name for e in self.extensions.values()):
            raise APIError(
                403,
                "Extension.InvalidExtensionState",
                "Extension with this name already registered",
            )
        if len(self.extensions) >= MAX_EXTENSIONS:
            raise APIError(
                403, "Extension.TooManyExtensions", f"Extension limit ({MAX_EXTENSIONS}) reached"
            )
        extension = Extension(name=name, events=frozenset(events), external=external)
        self.extensions[extension.id] = extension
        self.telemetry.emit(
            "platform.extension", {"name": name, "state": "Ready", "events": sorted(events)}
        )
        self._changed()
        return extension

    def registration_body(self, accept_features: str | None) -> dict[str, str]:
        """The body of a successful registration."""
        meta = self.metadata
        body = {
            "functionName": meta.function_name,
            "functionVersion": meta.function_version,
            "handler": meta.handler,
        }
        if accept_features and "accountId" in accept_features:
            body["accountId"] = meta.account_id
        return body

    def extension(self, identifier: str | None) -> Extension:
        """The extension named by a `Lambda-Extension-Identifier` header, or the RAPID refusal."""
        if not identifier:
            raise APIError(
                403,
                "Extension.MissingExtensionIdentifier",
                "Missing Lambda-Extension-Identifier header",
            )
        try:
            uuid.UUID(identifier)
        except ValueError:
            raise APIError(
                403,
                "Extension.InvalidExtensionIdentifier",
                "Invalid Lambda-Extension-Identifier",
            ) from None
        extension = self.extensions.get(identifier)
        if extension is None:
            raise APIError(
                403, "Extension.UnknownExtensionIdentifier", "Unknown extension " + identifier
            )
        return extension

    async def extension_next(self, extension: Extension) -> dict[str, Any]:
        """Long-poll for the extension's next event (GET /extension/event/next)."""
        if extension.waiting:
            raise APIError(
                403,
                "Extension.InvalidExtensionState",
                f"Extension {extension.name} is already waiting for an event",
            )
        if extension._pending:
            return extension._pending.popleft()
        extension._waiter = asyncio.get_running_loop().create_future()
        extension.waiting = True
        self._changed()
        try:
            return await extension._waiter
        finally:
            extension.waiting = False
            extension._waiter = None

    def extension_init_error(self, extension: Extension, error_type: str) -> None:
        """An extension failed its init: the whole init fails with its error type."""
        if self.init_failure is None:
            message = f"Extension {extension.name} init failed: {error_type}"
            kept = error_type if _ERROR_TYPE.fullmatch(error_type) else "Extension.InitError"
            self.init_failure = RuntimeResponse.platform_error(kept, message)
        self._changed()

    def _deliver(self, extension: Extension, event: dict[str, Any]) -> None:
        waiter = extension._waiter
        if waiter is not None and not waiter.done():
            extension.waiting = False
            waiter.set_result(event)
        else:
            extension._pending.append(event)


def _same_attempt(attempt: Attempt, invocation_id: str | None) -> bool:
    """Whether a post's `Lambda-Runtime-Invocation-Id` (if it sent one) names `invocation`: an
    async retry keeps the request id, so only this tells a stale attempt's result apart."""
    return invocation_id is None or invocation_id == attempt.invocation_id


def _ignore(*_: object) -> None:
    pass


def _parse_events(body: bytes) -> list[str]:
    try:
        document = json.loads(body or b"{}")
    except ValueError as exc:
        raise APIError(403, "InvalidRequestFormat", f"invalid JSON: {exc}") from None
    events = document.get("events", []) if isinstance(document, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise APIError(403, "InvalidRequestFormat", "'events' must be a list of event names")
    if isinstance(document, dict) and document.get("configurationKeys"):
        raise APIError(
            403,
            "InvalidRequestFormat",
            "configurationKeys are deprecated; use environment variables instead",
        )
    return events
