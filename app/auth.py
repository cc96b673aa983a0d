"""Bearer token authentication (RFC 6750): static tokens and OAuth access tokens, by name."""

from __future__ import annotations

import hashlib
import hmac
import logging

from scim2_models import UnauthorizedException

from app.config import AuthSettings
from app.oauth import AccessTokenError, AccessTokens

log = logging.getLogger(__name__)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` and answers the name of the token or client.

    Every static token is compared, in constant time and on digests of equal length, whatever
    matched before, so the time taken tells nothing about which token or how much of it was
    right. A token that is none of them is checked as an OAuth access token.
    """

    def __init__(self, settings: AuthSettings, access_tokens: AccessTokens | None = None) -> None:
        self._tokens = [(t.name, _digest(t.token.get_secret_value())) for t in settings.tokens]
        self.access_tokens = access_tokens or AccessTokens(settings.oauth)

    def check(self, authorization: str | None) -> str:
        """The name of the token presented; 401 when there is none or it is not valid."""
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise UnauthorizedException(detail="A bearer token is required")
        candidate = presented.strip()
        digest = _digest(candidate)
        matched = ""
        for name, token in self._tokens:
            if hmac.compare_digest(digest, token) and not matched:
                matched = name
        if matched:
            return matched
        if self.access_tokens.enabled and candidate.count(".") == 2:
            try:
                return self.access_tokens.verify(candidate).name
            except AccessTokenError as refused:
                log.info("bearer token refused: %s", refused.args[0])
                detail = f"The bearer token is not valid: {refused}"
                raise UnauthorizedException(detail=detail) from None
        raise UnauthorizedException(detail="The bearer token is not valid")
