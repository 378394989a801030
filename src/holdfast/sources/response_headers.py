"""Response heads in the shapes the sources take: grouped values, one value per name, and the
status line's description."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from holdfast._types import RawHeaders


def header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def grouped_headers(headers: RawHeaders) -> dict[str, list[str]]:
    """Response headers grouped by name, values in order."""
    grouped: dict[str, list[str]] = {}
    for key, value in headers:
        grouped.setdefault(key.decode("latin-1"), []).append(header_text(value))
    return grouped


def status_description(status: int) -> str:
    """``"200 OK"``: ALB's ``statusDescription``."""
    description = _descriptions.get(status)
    if description is None:
        # http is imported by the first ALB response, not at init: most functions never have one.
        from http import HTTPStatus

        try:
            description = f"{status} {HTTPStatus(status).phrase}"
        except ValueError:
            description = str(status)
        _descriptions[status] = description
    return description


_descriptions: dict[int, str] = {}


def single_value_headers(grouped: dict[str, list[str]]) -> dict[str, str]:
    """Headers for sources that take one value per name (ALB single-value mode, VPC Lattice)."""
    return dict(_single_values(grouped))


def _single_values(grouped: dict[str, list[str]]) -> Iterator[tuple[str, str]]:
    # Single-value mode keeps one value per name. Repeated Set-Cookie headers cannot be joined,
    # so each goes out under a different letter case of the name (header names are
    # case-insensitive); other repeats are comma-joined as RFC 9110 allows.
    for name, values in grouped.items():
        if len(values) == 1:
            yield name, values[0]
        elif name == "set-cookie":
            yield from zip(_case_variants(name), values, strict=False)
        else:
            yield name, ",".join(values)


def _case_variants(name: str) -> Iterator[str]:
    letters = [(c.lower(), c.upper()) if c.isalpha() else (c,) for c in name]
    return ("".join(chars) for chars in itertools.product(*letters))
