"""OAuth 2.0 client credentials as Entra performs it, and the named tokens SCIM accepts."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api.deps import require_token
from app.clientsecrets import hash_secret
from app.config import AuthSettings, OAuthClient, OAuthSettings, Settings, StaticToken
from app.ldap.sandbox import Sandbox, SandboxDirectory
from app.main import create_app
from app.oauth import AccessTokens
from tests.api.helpers import USERS, assert_error

TOKEN_URL = "/oauth/token"
SIGNING_KEY = "signing-key-of-the-tests-0123456789-abcdefgh"
ENTRA_ID = "entra-prod"
ENTRA_SECRETS = ("first-secret-of-entra-0123456789", "second-secret-of-entra-987654321")
OTHER_ID = "staging"
OTHER_SECRET = "secret-of-the-staging-job-0123456"
STATIC = "static-token-of-the-tests-0123456789"
NAMED = "named-token-of-the-tests-0123456789"
SECRETS = (SIGNING_KEY, *ENTRA_SECRETS, OTHER_SECRET, STATIC, NAMED)


def _client(client_id: str, *secrets: str, name: str = "") -> OAuthClient:
    hashes = [SecretStr(hash_secret(secret, rounds=1000)) for secret in secrets]
    return OAuthClient(client_id=client_id, name=name, secret_hashes=hashes)


def oauth_settings(directory: SandboxDirectory, *clients: OAuthClient) -> Settings:
    return Settings(
        ldap=directory.ldap_settings(),
        auth=AuthSettings(
            tokens=[
                StaticToken(token=SecretStr(STATIC)),
                StaticToken(name="monitoring", token=SecretStr(NAMED)),
            ],
            oauth=OAuthSettings(
                clients=list(clients),
                signing_key=SecretStr(SIGNING_KEY),
                issuer="https://scim.example.com",
                audience="https://scim.example.com/scim/v2",
            ),
        ),
    )


whoami = APIRouter()


@whoami.get("/whoami", dependencies=[Depends(require_token)])
def _whoami(request: Request) -> dict[str, str]:
    return {"token_name": request.state.token_name}


def _app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    app.include_router(whoami)
    return app


@pytest.fixture(scope="module")
def settings(sandbox: Sandbox) -> Settings:
    return oauth_settings(
        sandbox.directory,
        _client(ENTRA_ID, *ENTRA_SECRETS, name="entra"),
        _client(OTHER_ID, OTHER_SECRET),
    )


@pytest.fixture(scope="module")
def anonymous(settings: Settings) -> Iterator[TestClient]:
    with TestClient(_app(settings)) as test_client:
        yield test_client


def request_token(
    client: TestClient, client_id: str, secret: str, *, basic: bool = False, **extra: str
) -> httpx.Response:
    form = {"grant_type": "client_credentials", **extra}
    response: httpx.Response
    if basic:
        response = client.post(TOKEN_URL, data=form, auth=(client_id, secret))
    else:
        body = {**form, "client_id": client_id, "client_secret": secret}
        response = client.post(TOKEN_URL, data=body)
    return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issued(client: TestClient, client_id: str = ENTRA_ID, secret: str = ENTRA_SECRETS[0]) -> str:
    response = request_token(client, client_id, secret)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) <= {"error", "error_description"}
    for secret in SECRETS:
        assert secret not in response.text


@pytest.mark.parametrize("basic", [False, True], ids=["form-body", "basic"])
def test_client_credentials_flow(anonymous: TestClient, basic: bool) -> None:
    response = request_token(anonymous, ENTRA_ID, ENTRA_SECRETS[0], basic=basic)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    token = body["access_token"]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "at+jwt"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id"}
    assert claims["iss"] == "https://scim.example.com"
    assert claims["aud"] == "https://scim.example.com/scim/v2"
    assert claims["sub"] == claims["client_id"] == ENTRA_ID
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60

    listed = anonymous.get(USERS, params={"count": "0"}, headers=bearer(token))
    assert listed.status_code == 200, listed.text
    assert listed.json()["totalResults"] >= 0
    assert anonymous.get("/whoami", headers=bearer(token)).json() == {"token_name": "entra"}


def test_each_token_is_new(anonymous: TestClient) -> None:
    first, second = issued(anonymous), issued(anonymous)
    assert first != second
    ids = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in (first, second)}
    assert len(ids) == 2


def test_an_issued_token_writes_the_directory(anonymous: TestClient) -> None:
    headers = bearer(issued(anonymous, OTHER_ID, OTHER_SECRET))
    user = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "oauth.writer@example.com",
    }
    created = anonymous.post(USERS, json=user, headers=headers)
    assert created.status_code == 201, created.text
    deleted = anonymous.delete(f"{USERS}/{created.json()['id']}", headers=headers)
    assert deleted.status_code == 204


def test_both_secrets_of_a_client_work_during_rotation(anonymous: TestClient) -> None:
    for secret in ENTRA_SECRETS:
        for basic in (False, True):
            response = request_token(anonymous, ENTRA_ID, secret, basic=basic)
            assert response.status_code == 200, response.text


@pytest.mark.parametrize("basic", [False, True], ids=["form-body", "basic"])
@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        (ENTRA_ID, "wrong-secret-0123456789abcdef"),
        (ENTRA_ID, OTHER_SECRET),
        (OTHER_ID, ENTRA_SECRETS[0]),
        ("nobody", ENTRA_SECRETS[0]),
        (ENTRA_ID, ""),
    ],
)
def test_wrong_secret_is_invalid_client(
    anonymous: TestClient, client_id: str, secret: str, basic: bool
) -> None:
    response = request_token(anonymous, client_id, secret, basic=basic)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")


def test_no_client_authentication_is_invalid_client(anonymous: TestClient) -> None:
    response = anonymous.post(TOKEN_URL, data={"grant_type": "client_credentials"})
    assert_oauth_error(response, 401, "invalid_client")
    bad_basic = anonymous.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic not-base64!"},
    )
    assert_oauth_error(bad_basic, 401, "invalid_client")
    no_colon = base64.b64encode(ENTRA_ID.encode()).decode()
    missing = anonymous.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {no_colon}"},
    )
    assert_oauth_error(missing, 401, "invalid_client")


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token", "implicit"])
def test_other_grants_are_unsupported(anonymous: TestClient, grant: str) -> None:
    response = anonymous.post(
        TOKEN_URL,
        data={"grant_type": grant, "client_id": ENTRA_ID, "client_secret": ENTRA_SECRETS[0]},
    )
    assert_oauth_error(response, 400, "unsupported_grant_type")


def test_malformed_requests_are_invalid_request(anonymous: TestClient) -> None:
    credentials = {"client_id": ENTRA_ID, "client_secret": ENTRA_SECRETS[0]}
    no_grant = anonymous.post(TOKEN_URL, data=credentials)
    assert_oauth_error(no_grant, 400, "invalid_request")
    as_json = anonymous.post(TOKEN_URL, json={"grant_type": "client_credentials", **credentials})
    assert_oauth_error(as_json, 400, "invalid_request")
    repeated = anonymous.post(
        TOKEN_URL,
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(ENTRA_ID, ENTRA_SECRETS[0]),
    )
    assert_oauth_error(repeated, 400, "invalid_request")
    twice = request_token(
        anonymous, ENTRA_ID, ENTRA_SECRETS[0], basic=True, client_secret=ENTRA_SECRETS[1]
    )
    assert_oauth_error(twice, 400, "invalid_request")
    basic = (ENTRA_ID, ENTRA_SECRETS[0])
    grant = {"grant_type": "client_credentials"}
    other_id = anonymous.post(TOKEN_URL, data={**grant, "client_id": OTHER_ID}, auth=basic)
    assert_oauth_error(other_id, 400, "invalid_request")
    repeated_alike = {**grant, "client_id": ENTRA_ID, "client_secret": ENTRA_SECRETS[0]}
    same = anonymous.post(TOKEN_URL, data=repeated_alike, auth=basic)
    assert same.status_code == 200, same.text
    huge = anonymous.post(TOKEN_URL, data={"grant_type": "client_credentials", "x": "y" * 20000})
    assert_oauth_error(huge, 400, "invalid_request")


def test_only_post_is_offered(anonymous: TestClient) -> None:
    assert anonymous.get(TOKEN_URL).status_code == 405


def _token(settings: OAuthSettings, client_id: str = ENTRA_ID, **changes: Any) -> str:
    clock = changes.pop("clock", time.time)
    issuer = AccessTokens(settings.model_copy(update=changes), clock=clock)
    client = next(c for c in settings.clients if c.client_id == client_id)
    return issuer.issue(client).access_token


def test_tokens_signed_otherwise_are_refused(anonymous: TestClient, settings: Settings) -> None:
    oauth = settings.auth.oauth
    assert anonymous.get("/whoami", headers=bearer(_token(oauth))).status_code == 200
    cases = {
        "expired": _token(oauth, clock=lambda: time.time() - 7200),
        "another audience": _token(oauth, audience="https://other.example.com/scim/v2"),
        "another issuer": _token(oauth, issuer="https://other.example.com"),
        "signature": _token(oauth, signing_key=SecretStr("another-key-" + "x" * 40)),
    }
    for reason, token in cases.items():
        response = anonymous.get(USERS, params={"count": "0"}, headers=bearer(token))
        assert_error(response, 401)
        assert reason in response.json()["detail"], (reason, response.text)


def test_tokens_that_are_not_access_tokens_are_refused(
    anonymous: TestClient, settings: Settings
) -> None:
    now = int(time.time())
    claims = {
        "iss": settings.auth.oauth.issuer,
        "aud": settings.auth.oauth.audience,
        "sub": ENTRA_ID,
        "client_id": ENTRA_ID,
        "iat": now,
        "exp": now + 600,
        "jti": "x",
    }
    plain_jwt = jwt.encode(claims, SIGNING_KEY, algorithm="HS256")
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"typ": "at+jwt"})
    no_jti = jwt.encode(
        {k: v for k, v in claims.items() if k != "jti"},
        SIGNING_KEY,
        algorithm="HS256",
        headers={"typ": "at+jwt"},
    )
    valid = jwt.encode(claims, SIGNING_KEY, algorithm="HS256", headers={"typ": "at+jwt"})
    tampered = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    for token in (plain_jwt, unsigned, no_jti, tampered, "a.b.c"):
        assert_error(anonymous.get(USERS, headers=bearer(token)), 401)
    assert anonymous.get("/whoami", headers=bearer(valid)).status_code == 200


def test_a_removed_clients_tokens_are_refused(
    anonymous: TestClient, settings: Settings, sandbox: Sandbox
) -> None:
    """The same key on a server whose configuration no longer lists the client."""
    removed_token = issued(anonymous)
    kept_token = issued(anonymous, OTHER_ID, OTHER_SECRET)
    kept = [c for c in settings.auth.oauth.clients if c.client_id != ENTRA_ID]
    with TestClient(_app(oauth_settings(sandbox.directory, *kept))) as after:
        assert_error(after.get(USERS, headers=bearer(removed_token)), 401)
        assert "not configured" in after.get(USERS, headers=bearer(removed_token)).text
        assert after.get("/whoami", headers=bearer(kept_token)).json() == {"token_name": OTHER_ID}
        assert_oauth_error(request_token(after, ENTRA_ID, ENTRA_SECRETS[0]), 401, "invalid_client")


def test_a_previous_signing_key_keeps_its_tokens(
    anonymous: TestClient, settings: Settings, sandbox: Sandbox
) -> None:
    before = issued(anonymous)
    rotated = oauth_settings(sandbox.directory, *settings.auth.oauth.clients)
    rotated.auth.oauth.previous_signing_keys = [SecretStr(SIGNING_KEY)]
    rotated.auth.oauth.signing_key = SecretStr("the-next-signing-key-" + "n" * 40)
    with TestClient(_app(rotated)) as after:
        assert after.get("/whoami", headers=bearer(before)).json() == {"token_name": "entra"}
        fresh = issued(after)
        assert after.get("/whoami", headers=bearer(fresh)).status_code == 200
    assert_error(anonymous.get(USERS, headers=bearer(fresh)), 401)


@pytest.mark.parametrize(
    ("token", "name"), [(STATIC, "token-1"), (NAMED, "monitoring")], ids=["positional", "named"]
)
def test_static_tokens_have_names(anonymous: TestClient, token: str, name: str) -> None:
    assert anonymous.get("/whoami", headers=bearer(token)).json() == {"token_name": name}
    assert anonymous.get(USERS, params={"count": "0"}, headers=bearer(token)).status_code == 200


def test_the_token_endpoint_needs_no_bearer_and_scim_still_does(anonymous: TestClient) -> None:
    assert_error(anonymous.get(USERS), 401)
    assert_error(anonymous.get("/whoami"), 401)
    response = request_token(anonymous, ENTRA_ID, ENTRA_SECRETS[1], basic=True)
    assert response.status_code == 200


def test_no_secret_reaches_a_log_or_a_response(
    anonymous: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="app"):
        answers: list[httpx.Response] = []
        for basic in (False, True):
            answers.append(request_token(anonymous, ENTRA_ID, ENTRA_SECRETS[0], basic=basic))
            answers.append(request_token(anonymous, ENTRA_ID, ENTRA_SECRETS[1] + "x", basic=basic))
        answers.append(request_token(anonymous, ENTRA_SECRETS[0], ENTRA_SECRETS[0]))
        token = answers[0].json()["access_token"]
        answers.append(anonymous.get(USERS, params={"count": "0"}, headers=bearer(token)))
        expired = _token(settings.auth.oauth, clock=lambda: time.time() - 7200)
        answers.append(anonymous.get(USERS, headers=bearer(expired)))
        answers.append(anonymous.get(USERS, headers=bearer(STATIC + "x")))
    assert "access token issued to entra" in caplog.text
    assert "token request refused: wrong secret for entra" in caplog.text
    assert "token request refused: unknown client_id" in caplog.text
    assert "has expired" in caplog.text
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in (*SECRETS, ENTRA_SECRETS[1] + "x", STATIC + "x", token, expired):
        assert secret not in logged
    for answer in answers[1:]:
        for secret in SECRETS:
            assert secret not in answer.text
            assert secret not in str(answer.headers)


def test_without_clients_every_token_request_is_refused(client: TestClient) -> None:
    response = request_token(client, ENTRA_ID, ENTRA_SECRETS[0])
    assert_oauth_error(response, 401, "invalid_client")
