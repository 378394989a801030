"""The Telemetry API (2022-07-01): subscriptions, event records, buffering, delivery.

An extension subscribes with `PUT /2022-07-01/telemetry` (`Lambda-Extension-Identifier`, a body
naming `types`, `buffering` and an HTTP or TCP `destination` on `sandbox.localdomain`). From then on
the environment's events reach it in batches: a JSON array per HTTP POST, or NDJSON lines on one
TCP connection. A batch goes out when it holds `maxItems` events or `maxBytes` bytes, or
`timeoutMs` after its first event, whichever comes first, and only while the environment is thawed:
a frozen listener cannot take it, so a batch due during a freeze leaves at the next thaw (or at
shutdown), as on Lambda. Events emitted during init before a subscription are kept and handed to
each subscriber that arrives while the init lasts, so an extension subscribing during init still
sees `platform.initStart`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
# The Logs API (2020-08-15), which the Telemetry API superseded: the same subscriptions and
# delivery, its own schema versions (optional) and its own set of platform events.
LOGS_SCHEMA_VERSIONS = ("2020-08-15", "2021-03-18")
LOGS_PLATFORM_EVENTS = frozenset(
    {
        "platform.start",
        "platform.end",
        "platform.report",
        "platform.extension",
        "platform.logsSubscription",
        "platform.logsDropped",
        "platform.fault",
        "platform.runtimeDone",
    }
)
# Platform events only the Logs API has.
LOGS_ONLY_EVENTS = frozenset({"platform.end", "platform.logsSubscription"})
TYPES = ("platform", "function", "extension")
PROTOCOLS = ("HTTP", "TCP")
# The hosts that name the execution environment itself; Lambda delivers nowhere else. `0.0.0.0`
# is what a listener bound to every interface subscribes with under AWS SAM's local mode;
# `sandbox` is the Logs API's older spelling.
LOCAL_HOSTS = ("sandbox.localdomain", "sandbox", "localhost", "127.0.0.1", "0.0.0.0")
RESERVED_PORT = 9001

# (default, minimum, maximum) of each buffering setting, as AWS documents them.
MAX_ITEMS = (1000, 1000, 10000)
MAX_BYTES = (262144, 262144, 1048576)
TIMEOUT_MS = (1000, 25, 30000)
# A subscriber's buffer holds this many batches of `maxBytes` before events are dropped.
BACKLOG_BATCHES = 4

# Backoff between delivery attempts to a listener that is not there (yet) or answered an error.
_RETRY_FIRST = 0.05
_RETRY_LAST = 1.0


def now_iso() -> str:
    """An event's `time`: ISO 8601 UTC with milliseconds, as Lambda writes it."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def iso(timestamp: float) -> str:
    """`timestamp` (epoch seconds) in the shape of `now_iso`."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def category(event_type: str) -> str:
    """The subscription type an event belongs to: platform, function or extension."""
    return "platform" if event_type.startswith("platform.") else event_type


@dataclass(frozen=True)
class Buffering:
    """A batch is due at `max_items` events, at `max_bytes`, or `timeout_ms` after its first."""

    max_items: int = MAX_ITEMS[0]
    max_bytes: int = MAX_BYTES[0]
    timeout_ms: int = TIMEOUT_MS[0]


@dataclass(frozen=True)
class Destination:
    """Where batches go: `protocol` HTTP (POST to `path`) or TCP (NDJSON), on 127.0.0.1:`port`."""

    protocol: str
    port: int
    path: str
    host_header: str


@dataclass(frozen=True)
class Subscription:
    """A validated subscription request."""

    types: frozenset[str]
    buffering: Buffering
    destination: Destination
    schema_version: str
    # "telemetry" (PUT /2022-07-01/telemetry) or "logs" (PUT /2020-08-15/logs).
    api: str = "telemetry"

    def wants(self, event_type: str) -> bool:
        """Whether events of `event_type` go to this subscriber."""
        kind = category(event_type)
        if kind not in self.types:
            return False
        if kind != "platform":
            return True
        if self.api == "logs":
            return event_type in LOGS_PLATFORM_EVENTS
        return event_type not in LOGS_ONLY_EVENTS


class InvalidSubscription(ValueError):
    """A subscription request Lambda refuses with 400 `ValidationError`."""


def parse_subscription(body: bytes, api: str = "telemetry") -> Subscription:
    """Validate a Telemetry API (or, `api="logs"`, a Logs API) subscription request; a bad one
    raises `InvalidSubscription`."""
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise _invalid("the request body is not JSON") from None
    if not isinstance(document, dict):
        raise _invalid("the request body must be a JSON object")
    problems: list[str] = []
    schema = document.get("schemaVersion")
    if api == "logs":
        schema = LOGS_SCHEMA_VERSIONS[0] if schema is None else schema
        versions: tuple[str, ...] = LOGS_SCHEMA_VERSIONS
    else:
        versions = SCHEMA_VERSIONS
    if schema not in versions:
        problems.append(f"schemaVersion must be one of {', '.join(versions)}")
    types = document.get("types")
    if not isinstance(types, list) or not types:
        problems.append("types should not be empty")
    elif not all(isinstance(t, str) and t in TYPES for t in types):
        problems.append(f"types must be among {', '.join(TYPES)}")
    buffering = _buffering(document.get("buffering"), problems)
    destination = _destination(document.get("destination"), problems)
    if problems or buffering is None or destination is None:
        raise _invalid("; ".join(problems))
    assert isinstance(types, list) and isinstance(schema, str)
    return Subscription(frozenset(types), buffering, destination, schema, api)


def _invalid(message: str) -> InvalidSubscription:
    return InvalidSubscription(message)


def _buffering(value: Any, problems: list[str]) -> Buffering | None:
    if value is None:
        return Buffering()
    if not isinstance(value, dict):
        problems.append("buffering must be an object")
        return None
    settings = []
    for name, (default, low, high) in (
        ("maxItems", MAX_ITEMS),
        ("maxBytes", MAX_BYTES),
        ("timeoutMs", TIMEOUT_MS),
    ):
        setting = value.get(name, default)
        if isinstance(setting, bool) or not isinstance(setting, int) or not low <= setting <= high:
            problems.append(f"buffering.{name} must be an integer from {low} to {high}")
            setting = default
        settings.append(setting)
    return Buffering(*settings)


def _destination(value: Any, problems: list[str]) -> Destination | None:
    if not isinstance(value, dict):
        problems.append("destination is required")
        return None
    protocol = value.get("protocol")
    uri = value.get("URI")
    if protocol not in PROTOCOLS:
        problems.append("destination.protocol must be HTTP or TCP")
        return None
    if not isinstance(uri, str) or not uri:
        problems.append("destination.URI is required")
        return None
    try:
        parts = urlsplit(uri if "://" in uri else f"tcp://{uri}")
        port = parts.port
    except ValueError:
        problems.append("destination.URI is not a valid URI")
        return None
    if protocol == "HTTP" and parts.scheme != "http":
        problems.append("destination.URI must be an http:// URI (Lambda does not speak HTTPS)")
    if (parts.hostname or "") not in LOCAL_HOSTS:
        problems.append(
            "destination.URI must be inside the execution environment (sandbox.localdomain)"
        )
    if port is None:
        problems.append("URI port is not provided")
        return None
    if port == RESERVED_PORT:
        problems.append(f"port {RESERVED_PORT} is reserved by Lambda")
    return Destination(protocol, port, parts.path or "/", parts.netloc)


def event(event_type: str, record: Any, time: str | None = None) -> dict[str, Any]:
    """One telemetry event: `{"time", "type", "record"}`."""
    return {"time": time or now_iso(), "type": event_type, "record": record}


class Subscriber:
    """One extension's subscription: its bounded buffer and the task that delivers it.

    The buffer holds at most `BACKLOG_BATCHES` batches' worth of bytes while the listener is
    slow, frozen or away; events beyond that are dropped and counted, and the subscriber is told
    with a `platform.logsDropped` event once there is room again, as Lambda tells it.
    """

    def __init__(self, name: str, subscription: Subscription, hub: TelemetryHub) -> None:
        self.name = name
        self.subscription = subscription
        self._hub = hub
        self._buffer: list[bytes] = []
        self._size = 0
        self._limit = BACKLOG_BATCHES * subscription.buffering.max_bytes
        self._dropped = 0
        self._dropped_bytes = 0
        # Events taken into the buffer and events delivered, counted since the subscription:
        # a flush waits for the delivered count to reach the taken count of its moment.
        self._taken = 0
        self._delivered = 0
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []
        self._due = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task = asyncio.create_task(self._deliver(), name=f"telemetry-{name}")
        self._tcp: asyncio.StreamWriter | None = None

    def add(self, encoded: bytes) -> None:
        """Buffer one encoded event; the batch is due when full, or after `timeoutMs`. A full
        buffer drops the event (and counts it)."""
        if self._size + len(encoded) > self._limit:
            self._dropped += 1
            self._dropped_bytes += len(encoded)
            return
        self._buffer.append(encoded)
        self._size += len(encoded)
        self._taken += 1
        self._schedule()

    def flush(self) -> asyncio.Future[None]:
        """Make whatever is buffered due now; the future resolves once it has been delivered
        (events added later do not hold it up)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._delivered >= self._taken:
            done.set_result(None)
            return done
        self._flushes.append((self._taken, done))
        self._make_due()
        return done

    async def close(self) -> None:
        """Stop delivering (what is left is dropped, as when the environment goes away)."""
        if self._timer is not None:
            self._timer.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for _, done in self._flushes:
            done.cancel()
        if self._tcp is not None:
            self._tcp.close()

    def _schedule(self) -> None:
        buffering = self.subscription.buffering
        if len(self._buffer) >= buffering.max_items or self._size >= buffering.max_bytes:
            self._make_due()
        elif self._timer is None and not self._due.is_set():
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(buffering.timeout_ms / 1000, self._make_due)

    def _make_due(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.set()

    def _take_batch(self) -> list[bytes]:
        limit = self.subscription.buffering.max_items
        batch, self._buffer = self._buffer[:limit], self._buffer[limit:]
        self._size -= sum(len(e) for e in batch)
        return batch

    def _report_drops(self) -> None:
        """Tell the subscriber how much was dropped, now that its buffer has room."""
        if not self._dropped:
            return
        record = {
            "reason": "Some logs were dropped because the downstream consumer is slower "
            "than the logs production rate",
            "droppedRecords": self._dropped,
            "droppedBytes": self._dropped_bytes,
        }
        self._dropped = self._dropped_bytes = 0
        if "platform" in self.subscription.types:
            encoded = _encode(event("platform.logsDropped", record))
            self._buffer.append(encoded)
            self._size += len(encoded)
            self._taken += 1

    async def _deliver(self) -> None:
        while True:
            await self._due.wait()
            await self._hub.thawed.wait()
            self._due.clear()
            batch = self._take_batch()
            if batch:
                await self._send_until_taken(batch)
                self._delivered += len(batch)
                self._settle_flushes()
            self._report_drops()
            if self._buffer:
                self._schedule()

    def _settle_flushes(self) -> None:
        waiting = []
        for target, done in self._flushes:
            if self._delivered >= target:
                if not done.done():
                    done.set_result(None)
            else:
                waiting.append((target, done))
        self._flushes = waiting
        if waiting:
            self._make_due()

    async def _send_until_taken(self, batch: list[bytes]) -> None:
        delay = _RETRY_FIRST
        while True:
            await self._hub.thawed.wait()
            try:
                if await self._send(batch):
                    return
            except (OSError, asyncio.IncompleteReadError, ValueError):
                if self._tcp is not None:
                    self._tcp.close()
                    self._tcp = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_LAST)

    async def _send(self, batch: list[bytes]) -> bool:
        destination = self.subscription.destination
        if destination.protocol == "TCP":
            if self._tcp is None:
                _, self._tcp = await asyncio.open_connection("127.0.0.1", destination.port)
            self._tcp.write(b"".join(line + b"\n" for line in batch))
            await self._tcp.drain()
            return True
        return await post_json(destination, b"[" + b",".join(batch) + b"]")


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def post_json(destination: Destination, body: bytes) -> bool:
    """POST `body` to an HTTP destination on 127.0.0.1; whether it answered 2xx."""
    reader, writer = await asyncio.open_connection("127.0.0.1", destination.port)
    try:
        head = (
            f"POST {destination.path} HTTP/1.1\r\n"
            f"Host: {destination.host_header}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"bad status line {status_line[:60]!r}")
        # The listener's answer body is of no interest; reading to EOF lets it finish cleanly.
        with contextlib.suppress(OSError):
            await reader.read()
        return 200 <= int(parts[1]) < 300
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class TelemetryHub:
    """The telemetry of one environment life: who subscribed, and every event emitted.

    `thawed` is set while the environment runs; deliveries wait for it. Events emitted while
    `in_init` are also kept for subscribers that arrive later in the same init.
    """

    def __init__(self) -> None:
        self.subscribers: dict[str, Subscriber] = {}
        self.thawed = asyncio.Event()
        self.thawed.set()
        self.in_init = True
        self._init_backlog: list[tuple[str, bytes]] = []

    def subscribe(self, extension_name: str, subscription: Subscription) -> None:
        """Add (or replace) `extension_name`'s subscription."""
        old = self.subscribers.pop(extension_name, None)
        if old is not None:
            asyncio.get_running_loop().create_task(old.close())
        subscriber = Subscriber(extension_name, subscription, self)
        self.subscribers[extension_name] = subscriber
        if self.in_init:
            for event_type, encoded in self._init_backlog:
                if subscription.wants(event_type):
                    subscriber.add(encoded)
        record = {
            "name": extension_name,
            "state": "Subscribed",
            "types": sorted(subscription.types),
        }
        kind = "logs" if subscription.api == "logs" else "telemetry"
        self.emit(f"platform.{kind}Subscription", record)

    @property
    def listening(self) -> bool:
        """Whether an event emitted now goes anywhere (callers skip building one that would
        not: most environments have no subscriber after their init)."""
        return bool(self.subscribers) or self.in_init

    def emit(self, event_type: str, record: Any, time: str | None = None) -> None:
        """Record an event and buffer it for every subscriber of its type."""
        if not self.subscribers and not self.in_init:
            return
        encoded = _encode(event(event_type, record, time))
        if self.in_init:
            self._init_backlog.append((event_type, encoded))
        for subscriber in self.subscribers.values():
            if subscriber.subscription.wants(event_type):
                subscriber.add(encoded)

    def emit_lines(self, kind: str, lines: Iterable[str]) -> None:
        """Log lines of the function or of an extension, one event each."""
        for line in lines:
            self.emit(kind, line)

    def init_done(self) -> None:
        """Init is over: later subscribers do not get the init's events."""
        self.in_init = False
        self._init_backlog.clear()

    def freeze(self) -> None:
        """The environment is being frozen: nothing is delivered until `thaw`."""
        self.thawed.clear()

    def thaw(self) -> None:
        """The environment runs again: due batches go out."""
        self.thawed.set()

    async def flush(self) -> None:
        """Deliver everything buffered so far (thawing the environment); events emitted
        meanwhile go out as they come but are not waited for, so a chatty listener (its own
        log lines are events) cannot hold the caller up batch after batch."""
        self.thaw()
        await asyncio.gather(*(s.flush() for s in self.subscribers.values()))

    async def close(self) -> None:
        """Stop every delivery."""
        subscribers, self.subscribers = list(self.subscribers.values()), {}
        await asyncio.gather(*(s.close() for s in subscribers))
