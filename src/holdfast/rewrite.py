"""Request rewrites that settings ask for, as pure functions over raw ASGI headers and paths.

These are the Lambda Web Adapter's rules, shared by the in-process adapter and proxy mode:
``AWS_LWA_AUTHORIZATION_SOURCE`` (a header moved into ``Authorization``) and
``AWS_LWA_REMOVE_BASE_PATH`` (a prefix removed from the path, as LWA 1.1 does it).
"""

from __future__ import annotations

import logging

from holdfast._types import RawHeaders

logger = logging.getLogger("holdfast")


def move_authorization(headers: RawHeaders, source: bytes) -> RawHeaders:
    """Headers with ``source``'s value as the one ``authorization`` header.

    A Function URL with IAM auth keeps ``Authorization`` for its own signature, so clients send
    their token in another header. When ``source`` is present, it is removed and its (first)
    value replaces any ``authorization``; when it is missing the headers are left as they are —
    no ``Authorization`` is invented — and a warning is logged.
    """
    value = next((v for k, v in headers if k == source), None)
    if value is None:
        logger.warning(
            "authorization source header %r is missing from the request", source.decode()
        )
        return headers
    kept = [(k, v) for k, v in headers if k != source and k != b"authorization"]
    kept.append((b"authorization", value))
    return kept


def strip_base_path(path: str, base_path: str) -> str:
    """``path`` without the (normalised) ``base_path`` in front: removed once, and only on a
    segment boundary (``/api`` leaves ``/apiorder`` alone; ``/api/api/x`` becomes ``/api/x``);
    a path equal to the base becomes ``/``.

    LWA before 1.1 removed the prefix repeatedly and inside segments (``/prod`` turned
    ``/productx`` into ``/uctx``); holdfast does what 1.1 does.
    """
    if not base_path:
        return path
    if path == base_path:
        return "/"
    if path.startswith(base_path) and path[len(base_path)] == "/":
        return path[len(base_path) :]
    return path
