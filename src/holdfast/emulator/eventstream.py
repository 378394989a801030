"""The binary event-stream framing (`application/vnd.amazon.eventstream`) AWS APIs stream in.

One message: total length and headers length (uint32, big-endian), the CRC-32 of those 8
bytes, the headers, the payload, and the CRC-32 of everything before it. A header is its name
length (1 byte), the name, a type byte (7: string) and a length-prefixed (uint16) value.
`InvokeWithResponseStream` sends `PayloadChunk` events (raw bytes) and one `InvokeComplete`
(JSON: `ErrorCode`, `ErrorDetails`, `LogResult`).
"""

from __future__ import annotations

import json
import struct
import zlib

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(encoded_name))
        + encoded_name
        + struct.pack("!BH", _STRING, len(encoded_value))
        + encoded_value
    )


def message(event_type: str, payload: bytes, content_type: str) -> bytes:
    """One `event` message of `event_type` carrying `payload`."""
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", content_type)
        + _header(":message-type", "event")
    )
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(headers))
    body = prelude + struct.pack("!I", zlib.crc32(prelude)) + headers + payload
    return body + struct.pack("!I", zlib.crc32(body))


def payload_chunk(data: bytes) -> bytes:
    """A `PayloadChunk` event: a piece of the function's response."""
    return message("PayloadChunk", data, "application/octet-stream")


def invoke_complete(error_code: str | None = None, error_details: str | None = None) -> bytes:
    """The `InvokeComplete` event that ends the stream, with the error if the function failed."""
    document: dict[str, str] = {}
    if error_code is not None:
        document["ErrorCode"] = error_code
        document["ErrorDetails"] = error_details or ""
    return message("InvokeComplete", json.dumps(document).encode(), "application/json")
