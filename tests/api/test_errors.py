"""Every failure is a SCIM error body (RFC 7644 §3.12) with the right status and scimType."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import PosixSettings
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import (
    ENTERPRISE,
    PATCH_OP,
    POSIX,
    USERS,
    assert_error,
    configured_client,
    delete_quietly,
    entry,
    new_user,
    patch,
    user_body,
)
from tests.conftest import TOKEN, make_settings


@pytest.fixture(scope="module")
def small_body_client(sandbox: Sandbox) -> Iterator[TestClient]:
    app = create_app(make_settings(sandbox.directory, max_body_bytes=2048))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


@pytest.fixture
def user(client: TestClient) -> Iterator[dict[str, Any]]:
    created = new_user(client)
    yield created
    delete_quietly(client, created["id"])


def _send(client: TestClient, method: str, url: str, content: bytes, **headers: str) -> Any:
    return client.request(
        method, url, content=content, headers={"Content-Type": "application/scim+json", **headers}
    )


# ---- bodies


@pytest.mark.parametrize(
    "content", [b"{", b'{"userName": }', b"nul", b"{'userName': 'a'}", b"\xff\xfe{}"]
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_malformed_json(
    client: TestClient, user: dict[str, Any], method: str, content: bytes
) -> None:
    url = USERS if method == "POST" else f"{USERS}/{user['id']}"
    assert_error(_send(client, method, url, content), 400, "invalidSyntax")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_empty_body(client: TestClient, user: dict[str, Any], method: str) -> None:
    url = USERS if method == "POST" else f"{USERS}/{user['id']}"
    assert_error(_send(client, method, url, b"  \n"), 400, "invalidSyntax")


@pytest.mark.parametrize("content", [b"[]", b'"user"', b"5", b"null", b"true"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_body_not_an_object(
    client: TestClient, ldap: Connection, user: dict[str, Any], method: str, content: bytes
) -> None:
    url = USERS if method == "POST" else f"{USERS}/{user['id']}"
    before = entry(ldap, user["id"])
    assert_error(_send(client, method, url, content), 400, "invalidSyntax")
    assert entry(ldap, user["id"]) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/scim+json", "application/scim+json; charset=utf-8", "application/json"],
)
def test_content_types_accepted(client: TestClient, content_type: str) -> None:
    body = json.dumps(user_body()).encode()
    response = client.post(USERS, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    delete_quietly(client, response.json()["id"])


def test_body_over_the_limit(small_body_client: TestClient, sandbox: Sandbox) -> None:
    body = user_body(title="x" * 3000)
    assert_error(small_body_client.post(USERS, json=body), 413)

    def chunks() -> Iterator[bytes]:
        yield b'{"userName": "big@example.com", "title": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = small_body_client.post(
        USERS, content=chunks(), headers={"Content-Type": "application/scim+json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413)
    listed = small_body_client.get(USERS, params={"filter": 'userName eq "big@example.com"'})
    assert listed.json()["totalResults"] == 0


def test_body_under_the_limit(small_body_client: TestClient) -> None:
    response = small_body_client.post(USERS, json=user_body(title="x" * 1000))
    assert response.status_code == 201, response.text
    delete_quietly(small_body_client, response.json()["id"])


# ---- authentication


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/Users"), ("POST", "/Users"), ("GET", "/Users/x"), ("GET", "/Schemas")],
)
def test_unauthenticated(
    app: Any, sandbox: Sandbox, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with TestClient(app) as anonymous:
        response = anonymous.request(method, f"/scim/v2{path}", headers=headers, json={})
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_bearer_scheme_is_case_insensitive(app: Any) -> None:
    with TestClient(app) as anonymous:
        response = anonymous.get(
            "/scim/v2/Users", params={"count": "0"}, headers={"Authorization": f"bearer {TOKEN}"}
        )
    assert response.status_code == 200, response.text


# ---- routes


@pytest.mark.parametrize("path", ["/scim/v2/Nope", "/scim/v2/Users/a/b", "/nope", "/scim/v1/Users"])
def test_unknown_route(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404)


def test_method_not_allowed(client: TestClient) -> None:
    response = client.request("DELETE", USERS)
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/scim+json")
    assert response.json()["status"] == "405"


# ---- values


@pytest.mark.parametrize(
    ("body", "attribute"),
    [
        ({POSIX: {"uidNumber": "abc"}}, "uidNumber"),
        ({POSIX: {"uidNumber": 1, "gidNumber": "1x"}}, "gidNumber"),
        ({POSIX: {"uidNumber": -1}}, "uidNumber"),
        ({POSIX: {"uidNumber": 2**31}}, "uidNumber"),
        ({POSIX: {"uidNumber": True}}, "uidNumber"),
        ({"active": "maybe"}, "active"),
        ({"active": 1}, "active"),
        ({"title": {"x": 1}}, "title"),
        ({"name": "Pat"}, "complex"),
        ({ENTERPRISE: "x"}, ENTERPRISE),
        ({ENTERPRISE: {"manager": 5}}, "manager"),
        ({"emails": ["pat@example.com"]}, "emails"),
    ],
)
def test_invalid_values_on_create(client: TestClient, body: dict[str, Any], attribute: str) -> None:
    response = client.post(USERS, json=user_body(**body))
    error = assert_error(response, 400, "invalidValue")
    assert attribute in error["detail"]


@pytest.mark.parametrize(
    ("path", "value", "attribute"),
    [
        (f"{POSIX}:uidNumber", "abc", "uidNumber"),
        (f"{POSIX}:gidNumber", 1.5, "gidNumber"),
        ("active", "maybe", "active"),
        ("active", "yes", "active"),
    ],
)
def test_invalid_values_on_patch(
    client: TestClient,
    ldap: Connection,
    user: dict[str, Any],
    path: str,
    value: object,
    attribute: str,
) -> None:
    before = entry(ldap, user["id"])
    response = patch(client, user["id"], {"op": "replace", "path": path, "value": value})
    assert attribute in assert_error(response, 400, "invalidValue")["detail"]
    assert entry(ldap, user["id"]) == before


def test_directory_refusal_is_invalid_value(client: TestClient) -> None:
    response = client.post(USERS, json=user_body(emails=[{"type": "work", "value": "pät@ex.com"}]))
    error = assert_error(response, 400, "invalidValue")
    assert "mail" in error["detail"]


def test_conflict_and_precondition_bodies(client: TestClient, user: dict[str, Any]) -> None:
    body = assert_error(client.post(USERS, json=user_body(user["userName"])), 409, "uniqueness")
    assert user["userName"] in body["detail"]
    response = patch(
        client,
        user["id"],
        {"op": "replace", "path": "title", "value": "x"},
        **{"If-Match": 'W/"stale"'},
    )
    assert_error(response, 412)


def test_patch_op_schema_is_required(client: TestClient, user: dict[str, Any]) -> None:
    response = client.patch(
        f"{USERS}/{user['id']}",
        json={"schemas": [PATCH_OP.replace("PatchOp", "Other")], "Operations": []},
    )
    assert_error(response, 400, "invalidSyntax")


# ---- JSON that parsers disagree on or choke on (issue 7, findings 1 and 7)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"userName": "a", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested deeper"),
        (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper"),
        (b'{"userName": "a", "x": ' + b"7" * 5000 + b"}", "more than 100 digits"),
        (b'{"userName": "a", "x": 1e400}', "out of range"),
        (b'{"userName": "a", "x": -1e400}', "out of range"),
        (b'{"userName": "a", "title": NaN}', "NaN"),
        (b'{"userName": "a", "title": Infinity}', "Infinity"),
        (b'{"userName": "a", "title": -Infinity}', "Infinity"),
        (b'{"userName": "a", "userName": "b"}', "'userName'"),
        (b'{"userName": "a", "name": {"givenName": "x", "givenName": "y"}}', "'givenName'"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_json_beyond_the_bounds_is_invalid_syntax(
    client: TestClient, user: dict[str, Any], method: str, content: bytes, words: str
) -> None:
    url = USERS if method == "POST" else f"{USERS}/{user['id']}"
    error = assert_error(_send(client, method, url, content), 400, "invalidSyntax")
    assert words in error["detail"]


def test_search_request_beyond_the_bounds_is_invalid_syntax(client: TestClient) -> None:
    for content in (b'{"startIndex": ' + b"9" * 5000 + b"}", b'{"count": NaN}'):
        assert_error(_send(client, "POST", f"{USERS}/.search", content), 400, "invalidSyntax")


def test_nan_is_not_stored(client: TestClient) -> None:
    body = user_body(title=float("nan"))
    content = json.dumps(body).encode()
    assert b"NaN" in content
    assert_error(_send(client, "POST", USERS, content), 400, "invalidSyntax")
    listed = client.get(USERS, params={"filter": f'userName eq "{body["userName"]}"'})
    assert listed.json()["totalResults"] == 0


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data"],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_other_content_types_are_415(
    client: TestClient, user: dict[str, Any], method: str, content_type: str
) -> None:
    url = USERS if method == "POST" else f"{USERS}/{user['id']}"
    body = json.dumps(user_body()).encode()
    error = assert_error(_send(client, method, url, body, **{"Content-Type": content_type}), 415)
    assert content_type in error["detail"]


def test_a_body_without_content_type_is_415(client: TestClient) -> None:
    response = client.post(USERS, content=json.dumps(user_body()).encode())
    assert "content-type" not in response.request.headers
    assert_error(response, 415)


@pytest.mark.parametrize(
    "content_type",
    ["APPLICATION/JSON", "application/json; charset=UTF-8", "application/scim+json;"],
)
def test_json_types_with_parameters_are_accepted(client: TestClient, content_type: str) -> None:
    body = json.dumps(user_body()).encode()
    response = client.post(USERS, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text
    delete_quietly(client, response.json()["id"])


@pytest.mark.parametrize(
    "number", ["\u0661\u0662\u0663\u0664\u0665", "\uff11\uff12\uff13\uff14\uff15"]
)
def test_uid_numbers_are_ascii_digits(client: TestClient, number: str) -> None:
    error = assert_error(client.post(USERS, json=user_body(**{POSIX: {"uidNumber": number}})), 400)
    assert "uidNumber" in error["detail"]


def test_an_rdn_longer_than_the_directory_takes_is_400(sandbox: Sandbox) -> None:
    """slapd refuses an RDN over 245 bytes with result 80 (other); it is not an outage."""
    posix = PosixSettings(login_max_length=256)
    with configured_client(sandbox, posix=posix) as long_logins:
        login = "x" * 250
        response = long_logins.post(USERS, json=user_body(login))
        error = assert_error(response, 400, "invalidValue")
        assert "Retry-After" not in response.headers
        assert "at most 240" in error["detail"]
        created = new_user(long_logins, "y" * 200)
        try:
            renamed = patch(
                long_logins, created["id"], {"op": "replace", "path": "userName", "value": login}
            )
            assert_error(renamed, 400, "invalidValue")
        finally:
            delete_quietly(long_logins, created["id"])
