"""Response compression for buffered responses (``HOLDFAST_ENABLE_COMPRESSION`` /
``AWS_LWA_ENABLE_COMPRESSION``), with the Lambda Web Adapter's rules.

The encoding is negotiated from the request's ``Accept-Encoding`` (q-values honoured; ``br`` is
preferred over ``gzip`` when the client likes both equally; ``br`` only when the optional
``brotli`` package is installed). A response is left as it is when it is small (under 32 bytes),
already encoded (``Content-Encoding`` set: pre-compressed bodies pass through untouched), an
image (except SVG), gRPC, a server-sent event stream (``text/event-stream``), carries no body,
or is a partial response. Streamed responses are never compressed
(:func:`holdfast.config.compression`).
"""

from __future__ import annotations

import gzip
from types import ModuleType

from holdfast._types import RawHeaders
from holdfast.sources import HTTPResponse

#: Bodies smaller than this are not worth compressing (LWA's threshold).
MIN_SIZE = 32
_GZIP_LEVEL = 6
_BROTLI_QUALITY = 4  # brotli's maximum (11) costs far more CPU than it saves in transfer time
_DROPPED = frozenset({b"content-length", b"accept-ranges"})


def _load_brotli() -> ModuleType | None:
    try:
        import brotli  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    return brotli  # type: ignore[no-any-return, unused-ignore]


_brotli = _load_brotli()


_AVAILABLE = ("br", "gzip") if _brotli is not None else ("gzip",)


def available() -> tuple[str, ...]:
    """The encodings this installation can produce, most preferred first."""
    return _AVAILABLE


def negotiate(accept_encoding: bytes | None) -> str | None:
    """The encoding to use for a client sending ``accept_encoding``, or ``None``."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.decode("latin-1").split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weights[name] = _quality(params)
    best: tuple[float, str] | None = None
    for encoding in available():
        q = weights.get(encoding, weights.get("*", 0.0))
        if q > 0 and (best is None or q > best[0]):
            best = (q, encoding)
    return None if best is None else best[1]


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def compressible(response: HTTPResponse) -> bool:
    """Whether LWA's predicate allows compressing ``response``."""
    if len(response.body) < MIN_SIZE or response.status in (204, 206, 304):
        return False
    for name, value in response.headers:
        if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return False
        if name == b"content-range":
            return False
        if name == b"content-type":
            mime = value.split(b";", 1)[0].strip().lower()
            if mime.startswith(b"image/") and mime != b"image/svg+xml":
                return False
            if mime.startswith(b"application/grpc") or mime == b"text/event-stream":
                return False
    return True


def compress(response: HTTPResponse, accept_encoding: bytes | None) -> HTTPResponse:
    """``response`` compressed for a client sending ``accept_encoding``, when that applies."""
    encoding = negotiate(accept_encoding)
    return response if encoding is None else compress_as(response, encoding)


def compress_as(response: HTTPResponse, encoding: str) -> HTTPResponse:
    """``response`` compressed with ``encoding`` (one :func:`negotiate` chose), when LWA's
    predicate allows it."""
    if not compressible(response):
        return response
    if encoding == "br":
        assert _brotli is not None
        body: bytes = _brotli.compress(response.body, quality=_BROTLI_QUALITY)
    else:
        body = gzip.compress(response.body, compresslevel=_GZIP_LEVEL, mtime=0)
    headers: RawHeaders = [(k, v) for k, v in response.headers if k not in _DROPPED]
    headers.append((b"content-encoding", encoding.encode()))
    if not any(k == b"vary" and b"accept-encoding" in v.lower() for k, v in headers):
        headers.append((b"vary", b"accept-encoding"))
    return HTTPResponse(response.status, headers, body)
