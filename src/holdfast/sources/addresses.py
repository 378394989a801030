"""The scope's ``scheme``, ``server`` and ``client``, derived from the Host and X-Forwarded-*
headers as a proxy's would be (docs/adapter.md says which of them are trusted, and why)."""

from __future__ import annotations

import ipaddress
import re

from holdfast.sources.fields import utf8

# Host = reg-name / IPv4 / "[" IPv6 "]", then an optional ":" port (RFC 3986 authority).
_HOST = re.compile(
    r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(?P<port>[0-9]{0,5}))?"
)
_PORT = re.compile(r"[0-9]{1,5}")
_FORWARDED_SCHEMES = frozenset({"http", "https"})
#: The X-Forwarded-Port values the fronts send, parsed once: one lookup on every request.
FRONT_PORTS = {b"443": 443, b"80": 80}


def parse_host(value: bytes) -> tuple[str, int | None] | None:
    """``(host, port or None)`` from a Host header; ``None`` unless it is ``host[:port]``.
    Cached: a function is reached under the same few host names."""
    if value in _hosts:
        return _hosts[value]
    parsed = _parse_host(value)
    if len(_hosts) < 256:
        _hosts[value] = parsed
    return parsed


_hosts: dict[bytes, tuple[str, int | None] | None] = {}


def _parse_host(value: bytes) -> tuple[str, int | None] | None:
    match = _HOST.fullmatch(value.decode("latin-1"))
    if match is None:
        return None
    name, port_text = match["name"], match["port"]
    port = _port(port_text) if port_text else None
    if port_text and port is None:
        return None
    if name.startswith("["):
        name = name[1:-1]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    elif "" in name.split(".")[:-1]:
        # An empty label (".", ".a", "a..b") is no DNS name: IDNA, and so Werkzeug, refuse it.
        return None
    return name, port


def _port(text: str) -> int | None:
    # Digits only, ASCII only ("²".isdigit() is true), and at most 65535: what int() may parse.
    return int(text) if _PORT.fullmatch(text) and int(text) <= 65535 else None


def forwarded_scheme(proto: bytes | None, default: str = "https") -> str:
    """``http`` or ``https`` from X-Forwarded-Proto (set by the front), else ``default``."""
    if proto == b"https":  # what the fronts send
        return "https"
    if proto:
        scheme = proto.split(b",")[0].strip().decode("latin-1").lower()
        if scheme in _FORWARDED_SCHEMES:
            return scheme
    return default


def server_address(
    host: tuple[str, int | None] | None, forwarded_port: bytes | None, scheme: str
) -> tuple[str, int] | None:
    """``(host, port)`` from the Host header, the port falling back to X-Forwarded-Port and
    then the scheme's; ``None`` without a valid Host header (an invalid one is dropped)."""
    if host is None:
        return None
    name, port = host
    if port is None and forwarded_port is not None:
        port = FRONT_PORTS.get(forwarded_port)
        if port is None:
            port = _port(forwarded_port.split(b",")[0].strip().decode("latin-1"))
    if port is None:
        port = 443 if scheme == "https" else 80
    return name, port


def client_address(forwarded_for: bytes | None, source_ip: str | None) -> tuple[str, int] | None:
    """``(address, 0)``: the source IP the front reports, else the last X-Forwarded-For entry
    (the one the front appended; earlier entries are the client's to forge)."""
    if source_ip:
        utf8(source_ip, "the source IP")
        return source_ip, 0
    if forwarded_for:
        address = forwarded_for.split(b",")[-1].strip().decode("latin-1")
        if address:
            return address, 0
    return None
