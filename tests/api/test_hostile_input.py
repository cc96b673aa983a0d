"""Values that mean something to LDAP (RFC 4514 DNs, RFC 4515 filters) reach it as data only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    ENTERPRISE,
    USERS,
    assert_error,
    delete_quietly,
    entry,
    new_user,
    unique,
    user_body,
)

SPECIALS = 'a*b(c)d\\e,f+g=h"i#j;k<l>m '


@pytest.fixture(scope="module")
def bystanders(client: TestClient) -> Iterator[list[dict[str, Any]]]:
    """Users a wildcard or an injected filter would match."""
    users = [
        new_user(client, unique("by")),
        new_user(client, f"{unique('by')}@example.com", externalId=SPECIALS),
    ]
    yield users
    delete_quietly(client, *(u["id"] for u in users))


def total(client: TestClient, filter_text: str) -> int:
    response = client.get(USERS, params={"filter": filter_text})
    assert response.status_code == 200, response.text
    count: int = response.json()["totalResults"]
    return count


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "**",
        "a)(uid=*",
        "*)(|(uid=*",
        "\\2a",
        "\\",
        "\\\\",
        ")",
        "(",
        "*\u00e9*",
    ],
)
def test_filter_values_match_nobody(
    client: TestClient, bystanders: list[dict[str, Any]], value: str
) -> None:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    for attribute in ("userName", "externalId", "displayName", 'emails[type eq "work"].value'):
        assert total(client, f'{attribute} eq "{quoted}"') == 0, attribute
    assert total(client, f'userName sw "{quoted}"') == 0


def test_filter_values_with_specials_match_exactly(
    client: TestClient, bystanders: list[dict[str, Any]]
) -> None:
    quoted = SPECIALS.replace("\\", "\\\\").replace('"', '\\"')
    response = client.get(USERS, params={"filter": f'externalId eq "{quoted}"'})
    assert [r["id"] for r in response.json()["Resources"]] == [bystanders[1]["id"]]
    assert total(client, 'externalId co "(c)d\\\\e,f+"') == 1
    assert total(client, 'externalId sw "a*"') == 1
    assert total(client, 'externalId sw "a*c"') == 0
    assert total(client, 'externalId sw "A*"') == 0


@pytest.mark.parametrize("value", ["\x00", "x\x00*"])
def test_nul_in_a_filter_is_invalid(
    client: TestClient, bystanders: list[dict[str, Any]], value: str
) -> None:
    response = client.get(USERS, params={"filter": f'userName eq "{value}"'})
    assert_error(response, 400, "invalidFilter")


def test_stored_specials_round_trip(client: TestClient, ldap: Connection) -> None:
    title = SPECIALS + "\r\n\t"
    created = new_user(client, displayName=f" {SPECIALS}", title=title)
    try:
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["title"] == [title]
        assert raw["displayName"] == [f" {SPECIALS}"]
        assert created["title"] == title
    finally:
        delete_quietly(client, created["id"])


def test_nul_is_refused_in_values(client: TestClient) -> None:
    error = assert_error(client.post(USERS, json=user_body(title="a\x00b")), 400, "invalidValue")
    assert "title" in error["detail"]
    assert_error(client.post(USERS, json=user_body("a\x00b@example.com")), 400, "invalidValue")


@pytest.mark.parametrize(
    "user_name",
    [
        "o'brien,ceo+1@example.com",
        "uid=admin,dc=example,dc=org",
        "#admin@example.com",
        " leading@example.com",
        "a=b@example.com",
        '"quoted"@example.com',
        "back\\slash@example.com",
        "star*@example.com",
        "paren(s)@example.com",
        "Ünïcode@example.com",
        "1digit@example.com",
        "-dash@example.com",
        "@example.com",
        "x" * 33 + "@example.com",
        "a b@example.com",
        "tab\t@example.com",
    ],
)
def test_user_names_without_a_valid_login_are_refused(
    client: TestClient, ldap: Connection, sandbox: Sandbox, user_name: str
) -> None:
    response = client.post(USERS, json=user_body(user_name))
    error = assert_error(response, 400, "invalidValue")
    assert repr(user_name) in error["detail"]
    ldap.search(sandbox.directory.users_dn, "(uid=*)", attributes=["uid"])
    assert all("," not in str(e["dn"]).split(",", 1)[0] for e in ldap.response)


@pytest.mark.parametrize(
    "domain",
    ['ex,ample+1"=#.com', "*.example.com", "a)(uid=*", "x\\2a\\00", " spaced "],
)
def test_specials_after_the_login_are_kept_verbatim(
    client: TestClient, ldap: Connection, sandbox: Sandbox, domain: str
) -> None:
    login = unique("sp.")
    user_name = f"{login}@{domain}"
    created = new_user(client, user_name)
    try:
        assert created["userName"] == user_name
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["dn"] == [f"uid={login},{sandbox.directory.users_dn}"]
        assert raw["scimUserName"] == [user_name]
        quoted = user_name.replace("\\", "\\\\").replace('"', '\\"')
        response = client.get(USERS, params={"filter": f'userName eq "{quoted}"'})
        assert [r["id"] for r in response.json()["Resources"]] == [created["id"]]
        assert total(client, f'userName eq "{login}@*"') == 0
    finally:
        delete_quietly(client, created["id"])


def test_login_with_dollar(client: TestClient, ldap: Connection, sandbox: Sandbox) -> None:
    login = f"{unique('host')}$"
    created = new_user(client, login)
    try:
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["dn"] == [f"uid={login},{sandbox.directory.users_dn}"]
        assert "scimUserName" not in raw
    finally:
        delete_quietly(client, created["id"])


@pytest.mark.parametrize(
    "manager",
    [
        "uid=admin,dc=example,dc=org",
        {"value": "*"},
        {"value": "(objectClass=*)"},
        "00000000-0000-0000-0000-000000000000)(entryUUID=*",
    ],
)
def test_manager_values_are_ids_only(
    client: TestClient, ldap: Connection, bystanders: list[dict[str, Any]], manager: object
) -> None:
    created = new_user(client, **{ENTERPRISE: {"manager": manager, "department": "D"}})
    try:
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert "manager" not in raw
        assert "manager" not in created[ENTERPRISE]
    finally:
        delete_quietly(client, created["id"])


@pytest.mark.parametrize("user_id", ["*", "..", "%2A", "uid=admin,dc=example,dc=org", "a" * 300])
def test_hostile_ids(client: TestClient, bystanders: list[dict[str, Any]], user_id: str) -> None:
    assert_error(client.get(f"{USERS}/{user_id}"), 404)
    assert_error(client.delete(f"{USERS}/{user_id}"), 404)
    operation = {"op": "replace", "path": "title", "value": "x"}
    response = client.patch(
        f"{USERS}/{user_id}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [operation],
        },
    )
    assert_error(response, 404)
    assert total(client, f'id eq "{user_id}"') == 0


def test_hostile_paths_in_patch(client: TestClient, bystanders: list[dict[str, Any]]) -> None:
    user_id = bystanders[0]["id"]
    for path in ("title)(uid=*", "uid", "objectClass", "userPassword", "-dn-", "dn"):
        response = client.patch(
            f"{USERS}/{user_id}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": path, "value": "x"}],
            },
        )
        assert_error(response, 400, "invalidPath")


def test_huge_values_are_refused(client: TestClient) -> None:
    error = assert_error(client.post(USERS, json=user_body(title="x" * 5000)), 400, "invalidValue")
    assert "title" in error["detail"]


def test_deeply_nested_filter_is_refused(client: TestClient) -> None:
    nested = "not (" * 200 + 'userName eq "x"' + ")" * 200
    assert_error(client.get(USERS, params={"filter": nested}), 400, "invalidFilter")


def test_long_filter_is_answered(client: TestClient, bystanders: list[dict[str, Any]]) -> None:
    terms = [f'userName eq "x{i}"' for i in range(199)]
    terms.append(f'userName eq "{bystanders[0]["userName"]}"')
    response = client.get(USERS, params={"filter": " or ".join(terms)})
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["Resources"]] == [bystanders[0]["id"]]
