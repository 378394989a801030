"""The scope's ``path``, ``raw_path`` and ``root_path`` from the path a source delivers."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from holdfast.sources.fields import utf8
from holdfast.sources.query import as_sent

# Path characters that stay literal when re-encoding a decoded path (RFC 3986 pchar + "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9/:@!$&'()*+,;=\-._~]")


def split_path(
    path: str, *, encoded: bool, mount: str = "", base_path: str = ""
) -> tuple[str, bytes, str]:
    """``(path, raw_path, root_path)`` for the scope from the full path the client asked for.

    ``encoded`` says whether the source delivers the path percent-encoded as sent (REST API,
    Function URLs, ALB, VPC Lattice) or already decoded (HTTP API). As uvicorn does, ``path``
    keeps the full path and ``root_path`` names the prefix the app is mounted below: the API
    stage or mapping (``mount``) and then the configured ``base_path``, each removed at most once
    when a framework routes.
    """
    if not path.startswith("/"):
        path = "/" + path
    if encoded:
        raw = as_sent(path, "the path")  # as sent, non-ASCII escaped
        # Without an escape, as_sent changed nothing: the path is its own decoded form.
        decoded = unquote(raw.decode("ascii")) if b"%" in raw else path
    else:
        utf8(path, "the path")
        quoted = quote(path, safe=_PATH_SAFE) if _NEEDS_QUOTING.search(path) else path
        raw, decoded = quoted.encode("ascii"), path
    if not (mount or base_path):
        return decoded, raw, ""
    return _mounted(decoded, raw, mount, base_path)


def plain_split(path: str, mount: str = "", base_path: str = "") -> tuple[str, bytes, str] | None:
    """What :func:`split_path` answers for a path that reads the same encoded or decoded (it
    starts with ``/``, holds no escape and nothing to quote), whatever the source; ``None``
    for any other path."""
    # A slice, not startswith: on Python 3.11 and 3.12 that parses its arguments the old way,
    # code a framework's request leaves cold.
    if path[:1] != "/" or _NEEDS_QUOTING.search(path):
        return None
    raw = path.encode("ascii")
    if not (mount or base_path):
        return path, raw, ""
    return _mounted(path, raw, mount, base_path)


def _mounted(decoded: str, raw: bytes, mount: str, base_path: str) -> tuple[str, bytes, str]:
    root_path = ""
    for prefix in (mount, base_path):
        candidate = root_path + prefix
        if prefix and (decoded == candidate or decoded[: len(candidate) + 1] == candidate + "/"):
            root_path = candidate
    if base_path and decoded == root_path and decoded.endswith(base_path):
        # The base path itself is the app's root ("/", as LWA forwards it); an empty path
        # below the root path would make frameworks redirect instead.
        decoded, raw = decoded + "/", raw + b"/"
    return decoded, raw, root_path
