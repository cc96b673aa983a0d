"""Bearer token authentication (RFC 6750) with several valid tokens for rotation."""

from __future__ import annotations

import hmac

from scim2_models import UnauthorizedException

from app.config import AuthSettings


class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` against every configured token.

    Every token is compared, in constant time, whatever matched before, so the
    time taken tells nothing about which token or how much of it was right.
    """

    def __init__(self, settings: AuthSettings) -> None:
        self._tokens = [t.get_secret_value().encode() for t in settings.tokens]

    def check(self, authorization: str | None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise UnauthorizedException(detail="A bearer token is required")
        candidate = presented.strip().encode()
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        if not matched:
            raise UnauthorizedException(detail="The bearer token is not valid")
