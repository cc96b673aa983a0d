"""OAuth 2.0 client credentials (RFC 6749 §4.4) with JWT access tokens (RFC 9068).

Entra's non-gallery provisioning takes a Token Endpoint, a Client identifier
and a Client Secret: it posts ``grant_type=client_credentials`` with them and
sends the ``access_token`` it gets back as a bearer token. The tokens are
signed with HS256 (``auth.oauth.signing_key``) and checked on every request:
signature, ``typ`` ``at+jwt``, ``iss``, ``aud``, ``exp``, and that the client
is still configured.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from app.clientsecrets import matches
from app.config import OAuthClient, OAuthSettings

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"
"""RFC 9068 §2.1: the ``typ`` header of a JWT access token."""
LEEWAY_SECONDS = 30
"""Clock difference allowed between the server that issued a token and the one checking it."""
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")


class AccessTokenError(Exception):
    """A bearer token that is a JWT but not a valid access token; ``args[0]`` says why."""


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class AccessTokens:
    """Authenticates clients, issues their access tokens and checks the tokens presented."""

    def __init__(self, settings: OAuthSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._clients = {client.client_id: client for client in settings.clients}
        self._signing_key = settings.signing_key.get_secret_value() if settings.signing_key else ""
        self._keys = [self._signing_key] if self._signing_key else []
        self._keys += [key.get_secret_value() for key in settings.previous_signing_keys]

    @property
    def enabled(self) -> bool:
        return bool(self._clients)

    def client(self, client_id: str) -> OAuthClient | None:
        """The configured client of this id, or None."""
        return self._clients.get(client_id)

    def authenticate(self, client_id: str, secret: str) -> OAuthClient | None:
        """The client whose id and secret these are, or None.

        Every hash of the client is checked; an unknown client id costs the same hashes
        (those of the first client), so the time taken does not tell which ids exist.
        """
        client = self._clients.get(client_id)
        decoy = client or next(iter(self._clients.values()), None)
        if decoy is None:
            return None
        hashes = [h.get_secret_value() for h in decoy.secret_hashes]
        return client if matches(secret, hashes) and client is not None else None

    def issue(self, client: OAuthClient) -> IssuedToken:
        """A signed access token for ``client`` (RFC 9068 §2.2)."""
        now = int(self._clock())
        lifetime = self.settings.token_lifetime
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": client.client_id,
            "aud": self.settings.audience,
            "exp": now + lifetime,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client.client_id,
        }
        token = jwt.encode(
            claims, self._signing_key, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE}
        )
        return IssuedToken(token, lifetime)

    def verify(self, token: str) -> OAuthClient:
        """The configured client an access token was issued to (RFC 9068 §4)."""
        if not self._keys:
            raise AccessTokenError("no access tokens are accepted")
        decoded = self._decode(token)
        typ = str(decoded["header"].get("typ", "")).lower()
        if typ not in (TOKEN_TYPE, f"application/{TOKEN_TYPE}"):
            raise AccessTokenError("the token is not an access token (typ)")
        claims: dict[str, Any] = decoded["payload"]
        client = self._clients.get(str(claims["client_id"]))
        if client is None or claims["sub"] != client.client_id:
            raise AccessTokenError("the token's client is not configured")
        return client

    def _decode(self, token: str) -> dict[str, Any]:
        for key in self._keys:
            try:
                decoded: dict[str, Any] = jwt.decode_complete(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    audience=self.settings.audience,
                    issuer=self.settings.issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": list(REQUIRED_CLAIMS)},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise AccessTokenError("the access token has expired") from None
            except jwt.ImmatureSignatureError:
                raise AccessTokenError("the access token is not valid yet (iat)") from None
            except jwt.InvalidAudienceError:
                raise AccessTokenError("the access token is for another audience") from None
            except jwt.InvalidIssuerError:
                raise AccessTokenError("the access token is from another issuer") from None
            except jwt.PyJWTError:
                raise AccessTokenError("the access token is malformed") from None
            return decoded
        raise AccessTokenError("the access token's signature is not valid")
