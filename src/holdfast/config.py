"""The one way holdfast reads settings: explicit arguments first, then the environment.

Every setting can come from ``HOLDFAST_<NAME>``; settings that AWS Lambda Web Adapter also has
are read from its ``AWS_LWA_<NAME>`` spelling too, so a function moving from LWA keeps working.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

#: Settings whose AWS Lambda Web Adapter name differs from holdfast's.
_LWA_NAMES: dict[str, str] = {
    "ERROR_STATUS_CODES": "AWS_LWA_ERROR_STATUS_CODES",
    "BASE_PATH": "AWS_LWA_REMOVE_BASE_PATH",
    "INVOKE_MODE": "AWS_LWA_INVOKE_MODE",
}


def setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The raw value of setting ``name`` from the environment, or ``None`` when unset.

    ``HOLDFAST_<NAME>`` wins over the Lambda Web Adapter spelling; empty values count as unset.
    """
    env = os.environ if environ is None else environ
    for key in (f"HOLDFAST_{name}", _LWA_NAMES.get(name)):
        if key and env.get(key):
            return env[key]
    return None


def parse_status_codes(spec: str | Iterable[int] | None) -> frozenset[int]:
    """Parse ``"500,502-504"`` (or an iterable of ints) into a set of HTTP status codes."""
    if spec is None:
        return frozenset()
    if not isinstance(spec, str):
        codes = frozenset(int(code) for code in spec)
    else:
        codes = frozenset(_parse_status_spec(spec))
    bad = sorted(code for code in codes if not 100 <= code <= 599)
    if bad:
        raise ValueError(f"error status codes must be within 100-599, got {bad}")
    return codes


def _parse_status_spec(spec: str) -> Iterable[int]:
    for part in filter(None, (item.strip() for item in spec.split(","))):
        low, sep, high = part.partition("-")
        try:
            if sep:
                yield from range(int(low), int(high) + 1)
            else:
                yield int(part)
        except ValueError:
            raise ValueError(
                f"invalid error status code {part!r} in {spec!r}: "
                "expected codes or ranges such as '500,502-504'"
            ) from None


def normalize_base_path(base_path: str | None) -> str:
    """``"api/"`` → ``"/api"``; ``None``, ``""`` and ``"/"`` mean no base path."""
    if not base_path:
        return ""
    stripped = base_path.strip("/")
    return f"/{stripped}" if stripped else ""
