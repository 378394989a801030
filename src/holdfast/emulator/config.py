"""Settings of one emulated function, kept apart from the code that serves it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from holdfast.config import InvokeMode as InvokeMode

EventFormat = Literal["v2", "v1", "alb"]
EVENT_FORMATS: tuple[EventFormat, ...] = ("v2", "v1", "alb")
INVOKE_MODES: tuple[InvokeMode, ...] = ("buffered", "response_stream")

ACCOUNT_ID = "000000000000"
# `holdfast emulate`'s execution environments at most. Lambda would start more (an account has
# 1,000 by default); ten answer a browser's parallel requests and back-to-back requests that
# arrive while the last one's after-response work runs, without filling a laptop's memory.
DEFAULT_CONCURRENCY = 10


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs to know about the function it emulates.

    `command` is the runtime (what Lambda would start as `bootstrap`); `extensions` are the
    commands of external extensions (what Lambda would find in /opt/extensions), started before
    the runtime in the same process group. Times are in seconds. `concurrency` is how many
    environments may run at once; a synchronous request that finds them all busy waits for one,
    or with `throttle` is refused with 429 as Lambda refuses it (`holdfast emulate` throttles,
    with `DEFAULT_CONCURRENCY` environments; the Python API's default keeps tests deterministic:
    one environment, reused in turn). `keep_records` bounds the freeze records and reports
    kept for the Python API (the last ones).
    """

    command: Sequence[str]
    host: str = "127.0.0.1"
    port: int = 0
    event_format: EventFormat = "v2"
    timeout: float = 30.0
    memory: int = 512
    concurrency: int = 1
    throttle: bool = False
    invoke_mode: InvokeMode = "buffered"
    function_name: str = "function"
    region: str = "us-east-1"
    alb_multi_value: bool = False
    init_timeout: float = 10.0
    async_retry_delays: Sequence[float] = (1.0, 2.0)
    extensions: Sequence[Sequence[str]] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    handler: str | None = None
    max_concurrency: int | None = None
    snap_start: bool = False
    snapshot_age: float = 0.0
    keep_records: int = 1000

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("a runtime command is required")
        if self.event_format not in EVENT_FORMATS:
            raise ValueError(f"event_format must be one of {EVENT_FORMATS}")
        if self.invoke_mode not in INVOKE_MODES:
            raise ValueError(f"invoke_mode must be one of {INVOKE_MODES}")
        if self.timeout <= 0 or self.init_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.memory < 128:
            raise ValueError("memory must be at least 128 MB")
        if self.max_concurrency is not None:
            if self.max_concurrency < 1:
                raise ValueError("max_concurrency must be at least 1")
            if self.concurrency != 1:
                raise ValueError("max_concurrency emulates one environment: leave concurrency at 1")
            if self.snap_start:
                raise ValueError("SnapStart and Managed Instances do not go together")
        if self.keep_records < 1:
            raise ValueError("keep_records must be at least 1")
        if self.snapshot_age < 0:
            raise ValueError("snapshot_age must not be negative")

    @property
    def function_arn(self) -> str:
        """The ARN the runtime is told it was invoked as."""
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"
