"""The HTTP/1.1 message syntax (RFC 9110 / 9112), strictly: what every reader here refuses.

A message that does not fit is `ProtocolError`, never a guess: a field name that is not a
token, a value with a control character (NUL, a bare CR, a LF of an obs-fold), whitespace before
the colon, a `Content-Length` that is not ASCII digits or disagrees with another, a
`Transfer-Encoding` other than `chunked` or sent with a `Content-Length` (the smuggling pair).
Checks are compiled regular expressions over whole lines, so they cost C time, not Python time.
"""

from __future__ import annotations

import re

#: The most a head (start line and fields) may hold.
MAX_HEAD_BYTES = 64 * 1024

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# field-value: visible characters, obs-text, SP and HTAB inside; no other control character.
_VALUE = rb"[^\x00-\x08\x0a-\x1f\x7f]*"
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")\r?\n")
_FIELDS = re.compile(rb"(?:" + _TOKEN + rb":" + _VALUE + rb"\r?\n)*")
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e\x80-\xff]+) HTTP/1\.([01])\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: " + _VALUE + rb")?\r?\n")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_VALID_NAME = re.compile(_TOKEN)
_VALID_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")

Fields = list[tuple[bytes, bytes]]


class ProtocolError(ConnectionError):
    """The peer spoke broken HTTP: the connection cannot be trusted any further."""


def parse_fields(block: bytes, *, keep_case: bool = False) -> Fields:
    """The fields of `block` (the lines after the start line, without the blank line):
    names lower-cased (unless `keep_case`), values without surrounding whitespace."""
    if _FIELDS.fullmatch(block) is None:
        raise ProtocolError(f"bad header line in {_shown(block)}")
    if keep_case:
        return [(name, value.rstrip(b" \t")) for name, value in _FIELD.findall(block)]
    return [(name.lower(), value.rstrip(b" \t")) for name, value in _FIELD.findall(block)]


def split_head(head: bytes) -> tuple[bytes, bytes]:
    """The start line (with its line end) and the field block of a head ending in a blank line."""
    if len(head) > MAX_HEAD_BYTES:
        raise ProtocolError("header section too large")
    end = head.find(b"\n") + 1
    blank = 2 if head.endswith(b"\r\n\r\n") or head.endswith(b"\n\r\n") else 1
    return head[:end], head[end : len(head) - blank]


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """(method, target, version) of a request line."""
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"bad request line {_shown(line)}")
    method, target, minor = match.groups()
    return method.decode("ascii"), target.decode("latin-1"), f"HTTP/1.{minor.decode()}"


def parse_status_line(line: bytes) -> tuple[int, bool]:
    """(status, HTTP/1.1?) of a status line."""
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"bad status line {_shown(line)}")
    return int(match[2]), match[1] == b"1"


def body_framing(fields: Fields) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked?) as the fields give them; contradictions refused."""
    length: int | None = None
    chunked = False
    for name, value in fields:
        if name == b"content-length":
            # A list of one repeated length is what a proxy may fold duplicates into (§8.6).
            for item in value.split(b","):
                item = item.strip(b" \t")
                if _DIGITS.fullmatch(item) is None:
                    raise ProtocolError(f"bad Content-Length {_shown(value)}")
                if length is not None and int(item) != length:
                    raise ProtocolError("Content-Length headers disagree")
                length = int(item)
        elif name == b"transfer-encoding":
            if chunked or value.lower() != b"chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {_shown(value)}")
            chunked = True
    if chunked and length is not None:
        raise ProtocolError("both Transfer-Encoding and Content-Length")
    return length, chunked


def chunk_size(line: bytes) -> int:
    """The size a chunk-size line announces (extensions ignored)."""
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"bad chunk size line {_shown(line)}")
    return int(match[1], 16)


def bad_field(name: str, value: str) -> bool:
    """Whether a field HTTP forbids (a name that is no token, a value with CR, LF, NUL or
    another control character): one that would split or corrupt the message it went into."""
    try:
        raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        return True
    return _VALID_NAME.fullmatch(raw_name) is None or _VALID_VALUE.fullmatch(raw_value) is None


def _shown(data: bytes) -> str:
    return repr(data[:60])
