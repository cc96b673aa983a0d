"""Every failure is a SCIM error body (RFC 7644 §3.12) with the right status and scimType."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import (
    ENTERPRISE,
    PATCH_OP,
    POSIX,
    USERS,
    assert_error,
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
