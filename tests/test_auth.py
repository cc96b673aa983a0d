"""Bearer tokens by name, client secrets by hash, access tokens by signature."""

from __future__ import annotations

import time

import jwt
import pytest
from pydantic import SecretStr
from scim2_models import UnauthorizedException

from app.auth import BearerAuth
from app.clientsecrets import ROUNDS, hash_problem, hash_secret, matches, secret_problem
from app.config import AuthSettings, OAuthClient, OAuthSettings, StaticToken
from app.oauth import AccessTokenError, AccessTokens

KEY = "an-hs256-key-of-at-least-32-bytes-0123456789"
SECRET = "the-client-secret-0123456789"


def oauth(*clients: OAuthClient, **extra: object) -> OAuthSettings:
    return OAuthSettings(clients=list(clients), signing_key=SecretStr(KEY), **extra)


def client(client_id: str = "entra", *secrets: str) -> OAuthClient:
    hashes = [SecretStr(hash_secret(s, rounds=1000)) for s in secrets or (SECRET,)]
    return OAuthClient(client_id=client_id, secret_hashes=hashes)


def test_static_tokens_answer_their_names() -> None:
    auth = BearerAuth(
        AuthSettings(
            tokens=[
                SecretStr("first-token-0123456789"),
                StaticToken(name="monitoring", token=SecretStr("second-token-0123456789")),
                SecretStr("third-token-0123456789"),
            ]
        )
    )
    assert auth.check("Bearer first-token-0123456789") == "token-1"
    assert auth.check("bearer  second-token-0123456789 ") == "monitoring"
    assert auth.check("Bearer third-token-0123456789") == "token-3"
    for wrong in ("Bearer first-token-012345678", "Bearer first-token-0123456789x", "Basic x"):
        with pytest.raises(UnauthorizedException):
            auth.check(wrong)


def test_access_tokens_answer_the_client_name() -> None:
    settings = oauth(
        OAuthClient(
            client_id="3f1c",
            name="entra-prod",
            secret_hashes=[SecretStr(hash_secret(SECRET, rounds=1000))],
        )
    )
    auth = BearerAuth(AuthSettings(oauth=settings))
    issued = auth.access_tokens.issue(settings.clients[0])
    assert auth.check(f"Bearer {issued.access_token}") == "entra-prod"
    assert issued.expires_in == 3600


def test_without_clients_no_jwt_is_accepted() -> None:
    signer = AccessTokens(oauth(client()))
    token = signer.issue(signer.settings.clients[0]).access_token
    auth = BearerAuth(AuthSettings(tokens=[SecretStr("static-token-0123456789")]))
    with pytest.raises(UnauthorizedException):
        auth.check(f"Bearer {token}")
    with pytest.raises(AccessTokenError):
        AccessTokens(OAuthSettings()).verify(token)


def test_client_authentication_checks_every_secret() -> None:
    tokens = AccessTokens(oauth(client("entra", "old-secret-0123456789", SECRET), client("other")))
    assert tokens.authenticate("entra", SECRET) is not None
    assert tokens.authenticate("entra", "old-secret-0123456789") is not None
    assert tokens.authenticate("entra", "wrong-secret-0123456789") is None
    assert tokens.authenticate("nobody", SECRET) is None
    assert AccessTokens(OAuthSettings()).authenticate("entra", SECRET) is None


def test_lifetime_and_clock() -> None:
    start = 1_900_000_000.0
    tokens = AccessTokens(oauth(client(), token_lifetime=300), clock=lambda: start)
    issued = tokens.issue(tokens.settings.clients[0])
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert (claims["iat"], claims["exp"]) == (1_900_000_000, 1_900_000_300)
    assert issued.expires_in == 300
    with pytest.raises(AccessTokenError, match="not valid yet"):
        AccessTokens(oauth(client())).verify(issued.access_token)


def test_expiry_allows_a_little_clock_difference() -> None:
    tokens = AccessTokens(oauth(client(), token_lifetime=300), clock=lambda: time.time() - 310)
    token = tokens.issue(tokens.settings.clients[0]).access_token
    assert tokens.verify(token).client_id == "entra"
    late = AccessTokens(oauth(client(), token_lifetime=300), clock=lambda: time.time() - 340)
    with pytest.raises(AccessTokenError, match="expired"):
        late.verify(late.issue(late.settings.clients[0]).access_token)


def test_secret_rules() -> None:
    assert secret_problem("short") is not None
    assert secret_problem("a" * 15) is not None
    assert secret_problem("with space in it 0123") is not None
    assert secret_problem("with+plus-0123456789") is not None
    assert secret_problem("with%25percent-0123456789") is not None
    assert secret_problem("0123456789abcdef0123456789abcdef") is None
    assert secret_problem("A-b_c.d~e!f:g@h/i?j=0123") is None


def test_hashes() -> None:
    hashed = hash_secret(SECRET)
    assert hashed.startswith(f"$pbkdf2-sha256${ROUNDS}$")
    assert SECRET not in hashed
    assert hash_secret(SECRET) != hashed
    assert hash_problem(hashed) is None
    assert hash_problem(SECRET) is not None
    assert hash_problem("$pbkdf2-sha256$x$y$z") is not None
    assert matches(SECRET, [hash_secret("another-secret-0123456789", rounds=1000), hashed])
    assert not matches(SECRET + "x", [hashed])
