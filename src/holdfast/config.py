"""The one way holdfast reads settings: explicit arguments first, then the environment.

Every setting can come from ``HOLDFAST_<NAME>``; settings that the AWS Lambda Web Adapter (LWA)
also has are read from its ``AWS_LWA_<NAME>`` spelling, and then from LWA's legacy unprefixed
alias (``PORT``, ``READINESS_CHECK_PATH``, ...; deprecated by LWA, so a warning says so, except
for ``PORT``), so a function moving from LWA keeps its configuration. Empty values count as unset.

Values are parsed as LWA parses them: a value LWA would not accept falls back to LWA's default,
with a warning naming the variable, instead of failing the function.

What Lambda itself tells the process (the Runtime API address, Managed Instances' concurrency,
the initialization type, the handler, the log format) is read here too, into one
:class:`LambdaSettings`: the hosts decide from it, and no other module reads ``os.environ`` for a
setting. (:class:`holdfast.runtime.context.FunctionInfo` reads the function's own facts, its name
and memory, which are not settings: they only travel into each invocation's context.)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

logger = logging.getLogger("holdfast")

InvokeMode = Literal["buffered", "response_stream"]
ReadinessProtocol = Literal["http", "tcp"]


class _Names:
    """A setting's other spellings: LWA's name, and LWA's legacy alias (if any)."""

    # A plain class, not a dataclass: building dataclasses costs cold-start time at import.
    __slots__ = ("legacy", "legacy_deprecated", "lwa")

    def __init__(
        self, lwa: str | None = None, legacy: str | None = None, legacy_deprecated: bool = True
    ) -> None:
        self.lwa = lwa
        self.legacy = legacy
        #: LWA logs a deprecation warning when it falls back to the legacy name (all but PORT).
        self.legacy_deprecated = legacy_deprecated


#: Every setting holdfast reads, by its holdfast name (``HOLDFAST_<NAME>``).
SETTINGS: dict[str, _Names] = {
    # In-process and proxy: how events become requests and responses become results.
    "BASE_PATH": _Names("AWS_LWA_REMOVE_BASE_PATH", "REMOVE_BASE_PATH"),
    "ERROR_STATUS_CODES": _Names("AWS_LWA_ERROR_STATUS_CODES"),
    "INVOKE_MODE": _Names("AWS_LWA_INVOKE_MODE"),
    "ENABLE_COMPRESSION": _Names("AWS_LWA_ENABLE_COMPRESSION"),
    "AUTHORIZATION_SOURCE": _Names("AWS_LWA_AUTHORIZATION_SOURCE"),
    "PASS_THROUGH_PATH": _Names("AWS_LWA_PASS_THROUGH_PATH"),
    # In-process only (no LWA counterpart): what the after-response drain takes in.
    "ADOPT_TASKS": _Names(),
    "FLUSH_TELEMETRY": _Names(),
    "CONTEXT_HEADERS": _Names(),
    # Proxy mode (`holdfast proxy`): where the app listens and how to tell it is ready.
    "PORT": _Names("AWS_LWA_PORT", "PORT", legacy_deprecated=False),
    # The app's host name in proxy mode (LWA's HOST).
    "APP_HOST": _Names("AWS_LWA_HOST", "HOST"),
    "READINESS_CHECK_PORT": _Names("AWS_LWA_READINESS_CHECK_PORT", "READINESS_CHECK_PORT"),
    "READINESS_CHECK_PATH": _Names("AWS_LWA_READINESS_CHECK_PATH", "READINESS_CHECK_PATH"),
    "READINESS_CHECK_PROTOCOL": _Names(
        "AWS_LWA_READINESS_CHECK_PROTOCOL", "READINESS_CHECK_PROTOCOL"
    ),
    "READINESS_CHECK_HEALTHY_STATUS": _Names("AWS_LWA_READINESS_CHECK_HEALTHY_STATUS"),
    # Removed in LWA 1.0 (healthy = 100..N-1); still read when HEALTHY_STATUS is unset.
    "READINESS_CHECK_MIN_UNHEALTHY_STATUS": _Names("AWS_LWA_READINESS_CHECK_MIN_UNHEALTHY_STATUS"),
    "READINESS_CHECK_TIMEOUT_SECONDS": _Names("AWS_LWA_READINESS_CHECK_TIMEOUT_SECONDS"),
    "ASYNC_INIT": _Names("AWS_LWA_ASYNC_INIT", "ASYNC_INIT"),
    "POOL_IDLE_TIMEOUT_SECONDS": _Names("AWS_LWA_POOL_IDLE_TIMEOUT_SECONDS"),
    "LAMBDA_RUNTIME_API_PROXY": _Names("AWS_LWA_LAMBDA_RUNTIME_API_PROXY"),
}

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PASS_THROUGH_PATH = "/events"
DEFAULT_HEALTHY_STATUS = frozenset(range(100, 500))
DEFAULT_POOL_IDLE_TIMEOUT = 4.0
#: How long an async init waits for the app before letting Lambda's 10 s init limit win.
ASYNC_INIT_WAIT = 9.8

# Warnings already given, so reading a setting again does not repeat them.
_warned: set[tuple[str, str]] = set()


def _warn_once(key: str, value: str, message: str, *args: object) -> None:
    if (key, value) not in _warned:
        _warned.add((key, value))
        logger.warning(message, *args)


def setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The raw value of setting ``name`` from the environment, or ``None`` when unset.

    Precedence: ``HOLDFAST_<NAME>``, then LWA's ``AWS_LWA_*`` name, then LWA's legacy alias.
    """
    env = os.environ if environ is None else environ
    value = env.get(f"HOLDFAST_{name}")
    if value:
        return value
    names = SETTINGS.get(name)
    if names is None:
        return None
    if names.lwa and env.get(names.lwa):
        return env[names.lwa]
    if names.legacy and env.get(names.legacy):
        value = env[names.legacy]
        if names.legacy_deprecated:
            _warn_once(
                names.legacy,
                value,
                "%s is deprecated (as in the Lambda Web Adapter): use HOLDFAST_%s or %s",
                names.legacy,
                name,
                names.lwa,
            )
        return value
    return None


def _source(name: str, environ: Mapping[str, str] | None) -> str:
    """The variable a setting's value came from, for warnings."""
    env = os.environ if environ is None else environ
    names = SETTINGS.get(name, _Names())
    for key in (f"HOLDFAST_{name}", names.lwa, names.legacy):
        if key and env.get(key):
            return key
    return f"HOLDFAST_{name}"


# -- status code lists ----------------------------------------------------------------------------
def parse_status_codes(spec: str | Iterable[int] | None) -> frozenset[int]:
    """Parse ``"500,502-504"`` (or an iterable of ints) given in code; anything invalid raises.

    Settings from the environment are parsed leniently instead (see :func:`status_code_list`).
    """
    if spec is None:
        return frozenset()
    if not isinstance(spec, str):
        codes = frozenset(int(code) for code in spec)
    else:
        codes = frozenset(_strict_codes(spec))
    bad = sorted(code for code in codes if not 100 <= code <= 599)
    if bad:
        raise ValueError(f"error status codes must be within 100-599, got {bad}")
    return codes


def _strict_codes(spec: str) -> Iterator[int]:
    for part, codes in _status_items(spec):
        if codes is None:
            raise ValueError(
                f"invalid error status code {part!r} in {spec!r}: "
                "expected codes or ranges such as '500,502-504'"
            )
        yield from codes


def status_code_list(spec: str, variable: str = "status list") -> frozenset[int]:
    """Parse a status list as LWA does: comma-separated codes and inclusive ranges, whitespace
    trimmed; a bad item (``abc``, ``500-x``, ``200-300-400``, out of 100-599) is skipped with a
    warning, so an all-bad value is the empty set."""
    codes: set[int] = set()
    for part, parsed in _status_items(spec):
        if parsed is None or any(not 100 <= code <= 599 for code in parsed):
            _warn_once(variable, part, "%s: ignoring invalid status item %r", variable, part)
            continue
        codes.update(parsed)
    return frozenset(codes)


def _status_items(spec: str) -> Iterator[tuple[str, range | None]]:
    for part in filter(None, (item.strip() for item in spec.split(","))):
        bounds = [bound.strip() for bound in part.split("-")]
        try:
            if len(bounds) == 1:
                yield part, range(int(bounds[0]), int(bounds[0]) + 1)
            elif len(bounds) == 2:
                yield part, range(int(bounds[0]), int(bounds[1]) + 1)
            else:
                yield part, None
        except ValueError:
            yield part, None


# -- typed settings -------------------------------------------------------------------------------
def error_status_codes(
    value: str | Iterable[int] | None = None, environ: Mapping[str, str] | None = None
) -> frozenset[int]:
    """Statuses that make the invocation a function error (``AWS_LWA_ERROR_STATUS_CODES``)."""
    if value is not None:
        return parse_status_codes(value)
    spec = setting("ERROR_STATUS_CODES", environ)
    if spec is None:
        return frozenset()
    return status_code_list(spec, _source("ERROR_STATUS_CODES", environ))


def normalize_base_path(base_path: str | None) -> str:
    """``"api/"`` → ``"/api"``; ``None``, ``""`` and ``"/"`` mean no base path."""
    if not base_path:
        return ""
    stripped = base_path.strip().strip("/")
    return f"/{stripped}" if stripped else ""


def base_path(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The path prefix removed before routing (``AWS_LWA_REMOVE_BASE_PATH``), normalised."""
    return normalize_base_path(value if value is not None else setting("BASE_PATH", environ))


def invoke_mode(value: str | None = None, environ: Mapping[str, str] | None = None) -> InvokeMode:
    """``buffered`` or ``response_stream``, case-insensitive; anything else is buffered."""
    raw = value if value is not None else setting("INVOKE_MODE", environ)
    mode = (raw or "buffered").strip().lower()
    if mode == "response_stream":
        return "response_stream"
    if mode != "buffered":
        _warn_once(
            "INVOKE_MODE",
            mode,
            "%s=%r is not buffered or response_stream: using buffered",
            _source("INVOKE_MODE", environ) if value is None else "invoke_mode",
            raw,
        )
    return "buffered"


def flag(
    name: str,
    value: bool | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    default: bool = False,
) -> bool:
    """A boolean setting, parsed as LWA does: ``true`` or ``false``; unset is ``default``;
    anything else is ``default``, with a warning."""
    if value is not None:
        return value
    raw = setting(name, environ)
    if raw is None:
        return default
    text = raw.strip()
    if text not in ("true", "false"):
        fallback = "true" if default else "false"
        _warn_once(
            name,
            raw,
            "%s=%r is not 'true' or 'false': using %s",
            _source(name, environ),
            raw,
            fallback,
        )
        return default
    return text == "true"


def compression(
    value: bool | None = None, *, streaming: bool, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether to compress responses (``AWS_LWA_ENABLE_COMPRESSION``): buffered responses only;
    asked for together with response streaming, it is turned off with a warning (as LWA does)."""
    enabled = flag("ENABLE_COMPRESSION", value, environ)
    if enabled and streaming:
        _warn_once(
            "ENABLE_COMPRESSION",
            "streaming",
            "%s: compression is not available with response streaming: turned off",
            "enable_compression" if value is not None else _source("ENABLE_COMPRESSION", environ),
        )
        return False
    return enabled


def authorization_source(
    value: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The header whose value becomes ``Authorization`` (``AWS_LWA_AUTHORIZATION_SOURCE``),
    lower-case; ``None`` when unset."""
    raw = value if value is not None else setting("AUTHORIZATION_SOURCE", environ)
    name = (raw or "").strip().lower()
    return name or None


def pass_through_path(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Where non-HTTP events are POSTed (``AWS_LWA_PASS_THROUGH_PATH``, default ``/events``)."""
    raw = (value if value is not None else setting("PASS_THROUGH_PATH", environ) or "").strip()
    if not raw:
        return DEFAULT_PASS_THROUGH_PATH
    return raw if raw.startswith("/") else f"/{raw}"


def seconds(
    name: str,
    environ: Mapping[str, str] | None = None,
    *,
    default: float | None,
    allow_zero: bool,
) -> float | None:
    """A duration in (fractional) seconds; an unusable value (``10s``, ``-1``, ``NaN``, ``inf``,
    ``1e400``, and ``0`` unless allowed) gives ``default`` with a warning."""
    raw = setting(name, environ)
    if raw is None:
        return default
    try:
        number = float(raw.strip())
    except ValueError:
        number = math.nan
    if math.isfinite(number) and (number > 0 or (allow_zero and number == 0)):
        return number
    fallback = "unset" if default is None else f"{default:g} s"
    _warn_once(
        name, raw, "%s=%r is not a usable duration: using %s", _source(name, environ), raw, fallback
    )
    return default


def pool_idle_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds an idle connection to the app may be reused (``0``: never)."""
    value = seconds(
        "POOL_IDLE_TIMEOUT_SECONDS", environ, default=DEFAULT_POOL_IDLE_TIMEOUT, allow_zero=True
    )
    assert value is not None
    return value


class ProxySettings:
    """Where proxy mode finds the app and how it decides the app is ready."""

    __slots__ = (
        "async_init",
        "healthy_status",
        "host",
        "pool_idle_timeout",
        "port",
        "readiness_path",
        "readiness_port",
        "readiness_protocol",
        "readiness_timeout",
    )

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        readiness_port: int = DEFAULT_PORT,
        readiness_path: str = "/",
        readiness_protocol: ReadinessProtocol = "http",
        healthy_status: frozenset[int] = DEFAULT_HEALTHY_STATUS,
        readiness_timeout: float | None = None,
        async_init: bool = False,
        pool_idle_timeout: float = DEFAULT_POOL_IDLE_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.readiness_port = readiness_port
        self.readiness_path = readiness_path
        self.readiness_protocol = readiness_protocol
        self.healthy_status = healthy_status
        #: Seconds a synchronous init waits for the app; ``None`` waits until Lambda's limit.
        self.readiness_timeout = readiness_timeout
        self.async_init = async_init
        self.pool_idle_timeout = pool_idle_timeout


def proxy_settings(
    port: int | None = None, environ: Mapping[str, str] | None = None
) -> ProxySettings:
    """The proxy's settings; ``port`` (``holdfast proxy --port``) wins over the environment."""
    host = (setting("APP_HOST", environ) or DEFAULT_HOST).strip()
    if not host or any(char.isspace() or char in "/?#@" for char in host):
        raise ValueError(f"{_source('APP_HOST', environ)}={host!r} is not a valid host name")
    app_port = port if port is not None else _port("PORT", environ, DEFAULT_PORT)
    return ProxySettings(
        host=host,
        port=app_port,
        readiness_port=_port("READINESS_CHECK_PORT", environ, app_port),
        readiness_path=_readiness_path(environ),
        readiness_protocol=_readiness_protocol(environ),
        healthy_status=_healthy_status(environ),
        readiness_timeout=seconds(
            "READINESS_CHECK_TIMEOUT_SECONDS", environ, default=None, allow_zero=False
        ),
        async_init=flag("ASYNC_INIT", environ=environ),
        pool_idle_timeout=pool_idle_timeout(environ),
    )


def _port(name: str, environ: Mapping[str, str] | None, default: int) -> int:
    raw = setting(name, environ)
    if raw is None:
        return default
    text = raw.strip()
    # LWA refuses to start on a port that does not make a valid URL: so does holdfast.
    if not is_tcp_port(text):
        raise ValueError(f"{_source(name, environ)}={raw!r} is not a TCP port")
    return int(text)


def is_tcp_port(text: str) -> bool:
    """Whether ``text`` is a TCP port number, 1-65535, in ASCII digits ("²".isdigit() is
    true, and int() refuses it)."""
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536


def _readiness_path(environ: Mapping[str, str] | None) -> str:
    path = (setting("READINESS_CHECK_PATH", environ) or "/").strip()
    return path if path.startswith("/") else f"/{path}"


def _readiness_protocol(environ: Mapping[str, str] | None) -> ReadinessProtocol:
    raw = setting("READINESS_CHECK_PROTOCOL", environ)
    protocol = (raw or "http").strip().lower()
    if protocol == "tcp":
        return "tcp"
    if protocol != "http":
        _warn_once(
            "READINESS_CHECK_PROTOCOL",
            protocol,
            "%s=%r is not http or tcp: using http",
            _source("READINESS_CHECK_PROTOCOL", environ),
            raw,
        )
    return "http"


def _healthy_status(environ: Mapping[str, str] | None) -> frozenset[int]:
    spec = setting("READINESS_CHECK_HEALTHY_STATUS", environ)
    if spec is not None:
        return status_code_list(spec, _source("READINESS_CHECK_HEALTHY_STATUS", environ))
    legacy = setting("READINESS_CHECK_MIN_UNHEALTHY_STATUS", environ)
    if legacy is not None:
        # LWA 0.x: healthy means below this status. LWA 1.x ignores it; holdfast honours it so
        # a 0.x configuration keeps its meaning, and says how to write it today.
        try:
            limit = int(legacy.strip())
        except ValueError:
            limit = 0
        if 100 < limit <= 600:
            _warn_once(
                "READINESS_CHECK_MIN_UNHEALTHY_STATUS",
                legacy,
                "%s is gone from LWA 1.x: use AWS_LWA_READINESS_CHECK_HEALTHY_STATUS=100-%d",
                _source("READINESS_CHECK_MIN_UNHEALTHY_STATUS", environ),
                limit - 1,
            )
            return frozenset(range(100, limit))
        _warn_once(
            "READINESS_CHECK_MIN_UNHEALTHY_STATUS",
            legacy,
            "%s=%r is not a status: ignored",
            _source("READINESS_CHECK_MIN_UNHEALTHY_STATUS", environ),
            legacy,
        )
    return DEFAULT_HEALTHY_STATUS


def runtime_api(environ: Mapping[str, str] | None = None) -> str | None:
    """The Runtime API address the runtime loop talks to (see
    :attr:`LambdaSettings.runtime_loop_api`)."""
    return LambdaSettings(environ).runtime_loop_api


def max_concurrency(environ: Mapping[str, str] | None = None) -> int:
    """``AWS_LAMBDA_MAX_CONCURRENCY`` (Lambda Managed Instances): invocations at once, 1 when it
    is unset or not a positive integer (with a warning)."""
    value = (os.environ if environ is None else environ).get("AWS_LAMBDA_MAX_CONCURRENCY")
    if not value:
        return 1
    try:
        concurrency = int(value)
    except ValueError:
        concurrency = 0
    if concurrency < 1:
        _warn_once(
            "AWS_LAMBDA_MAX_CONCURRENCY",
            value,
            "ignoring AWS_LAMBDA_MAX_CONCURRENCY=%r: not a positive integer",
            value,
        )
        return 1
    return concurrency


_OFF = ("off", "0", "false")


class LambdaSettings:
    """What the Lambda environment tells this process, read once (uvicorn's ``Config`` is the
    model): every host decides from one of these, never from ``os.environ`` itself."""

    __slots__ = (
        "execution_env",
        "extension",
        "handler",
        "initialization_type",
        "log_format",
        "log_level",
        "managed_instances",
        "max_concurrency",
        "runtime_api",
        "runtime_api_proxy",
        "task_root",
    )

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        #: ``AWS_LAMBDA_RUNTIME_API``: set only inside a Lambda execution environment.
        self.runtime_api: str | None = env.get("AWS_LAMBDA_RUNTIME_API") or None
        #: Where the runtime loop sends its calls (``AWS_LWA_LAMBDA_RUNTIME_API_PROXY``), if not
        #: to the Runtime API itself.
        self.runtime_api_proxy: str | None = setting("LAMBDA_RUNTIME_API_PROXY", env)
        #: Lambda Managed Instances: ``AWS_LAMBDA_MAX_CONCURRENCY`` is present (awslambdaric
        #: checks presence the same way).
        self.managed_instances = env.get("AWS_LAMBDA_MAX_CONCURRENCY") is not None
        self.max_concurrency = max_concurrency(env)
        #: ``on-demand``, ``provisioned-concurrency``, ``snap-start`` (or empty outside Lambda).
        self.initialization_type = env.get("AWS_LAMBDA_INITIALIZATION_TYPE", "")
        #: ``HOLDFAST_EXTENSION=off`` turns the managed runtime's after-response host off.
        self.extension = env.get("HOLDFAST_EXTENSION", "on").lower() not in _OFF
        self.handler: str | None = env.get("_HANDLER") or None
        self.task_root: str | None = env.get("LAMBDA_TASK_ROOT") or None
        self.log_format: str | None = env.get("AWS_LAMBDA_LOG_FORMAT")
        self.log_level: str | None = env.get("AWS_LAMBDA_LOG_LEVEL")
        self.execution_env = env.get("AWS_EXECUTION_ENV", "")

    @property
    def on_lambda(self) -> bool:
        """Whether this process runs in a Lambda execution environment."""
        return self.runtime_api is not None

    @property
    def snapstart(self) -> bool:
        return self.initialization_type == "snap-start"

    @property
    def runtime_loop_api(self) -> str | None:
        """The address the runtime loop talks to: the proxy when one intercepts the runtime's
        calls, else the Runtime API. Extension registration always uses the real address."""
        return self.runtime_api_proxy or self.runtime_api
