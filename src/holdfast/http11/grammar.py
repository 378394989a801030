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
# What a field line may hold besides its line end: HTAB, SP, visible characters, obs-text.
_FIELD_BYTES = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\r\n"
# A request line, decoded as latin-1, without its LF.
_REQUEST_LINE = re.compile("(" + _TOKEN.decode() + r") ([\x21-\x7e\x80-\xff]+) HTTP/1\.([01])\r?")
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?\r?")
_DIGITS = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_STR_TOKEN = _TOKEN.decode()
_TOKEN_CHARS = re.compile(_STR_TOKEN)
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")

#: Header fields as (name, value) text (latin-1), values without surrounding whitespace.
Fields = list[tuple[str, str]]


class ProtocolError(ConnectionError):
    """The peer spoke broken HTTP: the connection cannot be trusted any further."""


def parse_fields(block: bytes, *, lower: bool = True) -> Fields:
    """The fields of `block` (the lines after the start line, each with its line end, without
    the blank line); names lower-cased unless `lower` is False."""
    _check_bytes(block)
    if block and not block.endswith(b"\n"):
        raise ProtocolError(f"bad header line in {_shown(block)}")
    return _fields(block.decode("latin-1").split("\n")[:-1], lower)


def parse_response_head(head: bytes) -> tuple[int, bool, Fields]:
    """(status, HTTP/1.1?, fields with lower-case names) of a head through its blank line."""
    if len(head) > MAX_HEAD_BYTES:
        raise ProtocolError("header section too large")
    _check_bytes(head)
    # Decoded and split once: the status line, the field lines, the blank line's two parts.
    lines = head.decode("latin-1").split("\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise ProtocolError(f"bad status line {lines[0][:60]!r}")
    return int(match[2]), match[1] == "1", _fields(lines[1:-2], True)


def _check_bytes(data: bytes) -> None:
    # C-speed byte operations rather than a regular expression: this runs on the custom
    # runtime's hot path. Only field characters, CR and LF; every CR ends a line.
    if data.translate(None, _FIELD_BYTES) or data.count(b"\r") != data.count(b"\r\n"):
        raise ProtocolError(f"control character in {_shown(data)}")


def _fields(lines: list[str], lower: bool) -> Fields:
    fields: Fields = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name:
            raise ProtocolError(f"bad header line {line[:60]!r}")
        fields.append((name.lower() if lower else name, value.strip(" \t\r")))
    # Every name a token: no whitespace before the colon, no obs-fold line (it starts blank).
    # Usual names are ASCII letters, digits and dashes: C-speed string methods say so.
    names = "".join([name for name, _ in fields])
    usual = names.isascii() and names.replace("-", "").isalnum()
    if not usual and _TOKEN_CHARS.fullmatch(names) is None and fields:
        raise ProtocolError(f"bad header line in {'|'.join(lines)[:60]!r}")
    return fields


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """(method, target, version) of a request line (with its LF)."""
    text = line.decode("latin-1")
    if not text.endswith("\n"):
        raise ProtocolError(f"bad request line {_shown(line)}")
    return _request_line(text[:-1])


def parse_request_head(head: bytes) -> tuple[str, str, str, Fields]:
    """(method, target, version, fields with names as sent) of a whole request head, through
    the blank line that ends it: decoded and split once for all of it."""
    lines = head.decode("latin-1").split("\n")
    method, target, version = _request_line(lines[0])
    _check_bytes(head)  # past a valid request line, what this refuses is in the fields
    # The last two parts are the blank line's (CR or nothing, then what follows its LF).
    return method, target, version, _fields(lines[1:-2], False)


def _request_line(text: str) -> tuple[str, str, str]:
    match = _REQUEST_LINE.fullmatch(text)
    if match is None:
        raise ProtocolError(f"bad request line {text[:60]!r}")
    method, target, minor = match.groups()
    return method, target, f"HTTP/1.{minor}"


def body_framing(fields: Fields) -> tuple[int | None, bool]:
    """(Content-Length or None, chunked?) as fields with lower-case names give them;
    contradictions refused."""
    length: int | None = None
    chunked = False
    for name, value in fields:
        if name == "content-length":
            if value.isdigit() and value.isascii() and len(value) <= 18 and length is None:
                length = int(value)  # the usual case, without the general parse below
                continue
            # A list of one repeated length is what a proxy may fold duplicates into (§8.6).
            for item in value.split(","):
                item = item.strip(" \t")
                if _DIGITS.fullmatch(item) is None:
                    raise ProtocolError(f"bad Content-Length {value[:60]!r}")
                if length is not None and int(item) != length:
                    raise ProtocolError("Content-Length headers disagree")
                length = int(item)
        elif name == "transfer-encoding":
            if chunked or value.lower() != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {value[:60]!r}")
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


def forbidden_field(fields: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first field HTTP forbids in `fields` (a name that is no token, a value with CR, LF,
    NUL, another control character or a character beyond latin-1): one that would split or
    corrupt the message it went into. None when every field may be sent."""
    if not fields:
        return None
    names = [name for name, _ in fields]
    values = "\t".join([value for _, value in fields])
    tokens = _TOKEN_CHARS.fullmatch("".join(names)) is not None and "" not in names
    if tokens and _FORBIDDEN_IN_VALUE.search(values) is None:
        return None  # the common case: two regular expressions, whatever the number of fields
    for name, value in fields:
        if _TOKEN_CHARS.fullmatch(name) is None or _FORBIDDEN_IN_VALUE.search(value):
            return name, value
    return None  # unreachable: the joined checks failed, so one field fails them


def _shown(data: bytes) -> str:
    return repr(data[:60])
