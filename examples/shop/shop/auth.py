"""Bearer JWTs (HS256) for the status endpoints: the FastAPI dependency and a token issuer.

A small standard-library implementation so the example has no extra dependency; a real service
would verify tokens from its identity provider (PyJWT with the provider's JWKS, say).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .settings import settings

_bearer = HTTPBearer(auto_error=False)


def issue_token(subject: str, *, secret: str, scope: str = "reports", ttl: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": subject, "scope": scope, "iat": now, "exp": now + ttl}
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = _sign(f"{header}.{payload}".encode(), secret)
    return f"{header}.{payload}.{signature}"


def verify_token(token: str, *, secret: str) -> dict[str, Any]:
    """The token's claims; `ValueError` when it is malformed, forged or expired."""
    try:
        header, payload, signature = token.split(".")
        if json.loads(_unb64(header)).get("alg") != "HS256":
            raise ValueError("unsupported algorithm")
        expected = _sign(f"{header}.{payload}".encode(), secret)
        if not hmac.compare_digest(signature, expected):
            raise ValueError("bad signature")
        claims = json.loads(_unb64(payload))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid token: {exc}") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        raise ValueError("invalid token: no expiry")
    if claims["exp"] < time.time():
        raise ValueError("token expired")
    return claims


def require_reports_scope(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> dict[str, Any]:
    """The status endpoints' dependency: a valid bearer token with the ``reports`` scope."""
    unauthorized = HTTPException(
        401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
    )
    if credentials is None:
        raise unauthorized
    try:
        claims = verify_token(credentials.credentials, secret=settings.jwt_secret)
    except ValueError:
        raise unauthorized from None
    if "reports" not in str(claims.get("scope", "")).split():
        raise HTTPException(403, "the token lacks the 'reports' scope")
    return claims


def _sign(data: bytes, secret: str) -> str:
    return _b64(hmac.new(secret.encode(), data, hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: The verified claims of the request's bearer token, as a parameter type.
Claims = Annotated[dict[str, Any], Depends(require_reports_scope)]


if __name__ == "__main__":  # python -m shop.auth alice  → a token for local testing
    import sys

    print(issue_token(sys.argv[1] if len(sys.argv) > 1 else "dev", secret=settings.jwt_secret))
