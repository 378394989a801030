"""The two records a codec translates between: the decoded request and the collected response."""

from __future__ import annotations

from typing import Any

from holdfast._types import RawHeaders

# Plain classes, not dataclasses: a dataclass costs a quarter of a millisecond to define, and
# these are defined at init.


class _Record:
    """Equality and repr by the fields (``__slots__``), as a dataclass has them."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and bool(_values(self) == _values(other))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


class HTTPRequest(_Record):
    """An HTTP request decoded from a Lambda event, in the terms of an ASGI ``http`` scope."""

    __slots__ = (
        "body",
        "client",
        "headers",
        "method",
        "path",
        "query_string",
        "raw_path",
        "root_path",
        "scheme",
        "server",
    )

    def __init__(
        self,
        method: str,
        scheme: str,
        server: tuple[str, int] | None,
        client: tuple[str, int] | None,
        root_path: str,
        path: str,
        raw_path: bytes,
        query_string: bytes,
        headers: RawHeaders,
        body: bytes,
    ) -> None:
        self.method = method
        self.scheme = scheme
        self.server = server
        self.client = client
        self.root_path = root_path
        self.path = path
        self.raw_path = raw_path
        self.query_string = query_string
        self.headers = headers
        self.body = body


class HTTPResponse(_Record):
    """A complete buffered response, ready to be encoded for the event's source."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: RawHeaders, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def _values(record: Any) -> list[Any]:
    return [getattr(record, name) for name in record.__slots__]
