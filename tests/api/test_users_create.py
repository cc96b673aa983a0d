"""POST /Users: Entra's create bodies, checked in the response and in the directory."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import PosixSettings
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import (
    CORE,
    ECMA2HOST,
    ENTERPRISE,
    POSIX,
    USERS,
    assert_error,
    configured_client,
    delete_quietly,
    entry,
    new_user,
    uid_number,
    unique,
    user_body,
)
from tests.conftest import TOKEN, make_settings


def entra_body(user_name: str, number: int | str) -> dict[str, Any]:
    """Everything Entra's default mapping sends (ENTRA.md §5), plus the POSIX extension."""
    return {
        "schemas": [CORE, ENTERPRISE, POSIX],
        "externalId": "Pat.Lee",
        "userName": user_name,
        "active": True,
        "displayName": "Pat Lee",
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "name": {"formatted": "Pat Lee", "familyName": "Lee", "givenName": "Pat"},
        "emails": [{"primary": True, "type": "work", "value": "pat@example.com"}],
        "phoneNumbers": [
            {"type": "work", "value": "+1 555 0100"},
            {"type": "mobile", "value": "+1 555 0101"},
            {"type": "fax", "value": "+1 555 0102"},
        ],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "1 Main St",
                "locality": "Redmond",
                "region": "WA",
                "postalCode": "98052",
                "country": "US",
            }
        ],
        ENTERPRISE: {"employeeNumber": "4711", "department": "R&D"},
        POSIX: {"uidNumber": number},
    }


@pytest.mark.parametrize("as_string", [False, True], ids=["number", "string"])
def test_entra_full_body(
    client: TestClient, ldap: Connection, sandbox: Sandbox, as_string: bool
) -> None:
    login = unique("pat.")
    user_name = f"{login.capitalize()}@Contoso.COM"
    number = uid_number()
    response = client.post(USERS, json=entra_body(user_name, str(number) if as_string else number))
    assert response.status_code == 201, response.text
    body = response.json()
    try:
        assert response.headers["location"] == body["meta"]["location"]
        assert body["meta"]["location"].endswith(f"/Users/{body['id']}")
        assert response.headers["etag"] == body["meta"]["version"]
        assert body["meta"]["resourceType"] == "User"
        assert body["userName"] == user_name
        assert body["active"] is True
        assert body["externalId"] == "Pat.Lee"
        assert body["name"] == {"formatted": "Pat Lee", "familyName": "Lee", "givenName": "Pat"}
        assert [(e["type"], e["value"]) for e in body["emails"]] == [("work", "pat@example.com")]
        phones = {p["type"]: p["value"] for p in body["phoneNumbers"]}
        assert phones == {"work": "+1 555 0100", "mobile": "+1 555 0101", "fax": "+1 555 0102"}
        assert body["addresses"][0]["locality"] == "Redmond"
        assert body[ENTERPRISE] == {"employeeNumber": "4711", "department": "R&D"}
        assert body[POSIX] == {"uidNumber": number}, "server defaults are not SCIM values"
        assert set(body["schemas"]) == {CORE, ENTERPRISE, POSIX}

        raw = entry(ldap, f"uid={login},{sandbox.directory.users_dn}")
        assert raw is not None
        assert raw["entryUUID"] == [body["id"]]
        assert sorted(raw["objectClass"]) == sorted(
            ["inetOrgPerson", "posixAccount", "shadowAccount", "ldapPublicKey", "scimUser"]
        )
        expected = {
            "uid": login,
            "scimUserName": user_name,
            "scimExternalId": "Pat.Lee",
            "scimActive": "TRUE",
            "cn": "Pat Lee",
            "displayName": "Pat Lee",
            "givenName": "Pat",
            "sn": "Lee",
            "scimFormattedName": "Pat Lee",
            "title": "Engineer",
            "preferredLanguage": "en-US",
            "mail": "pat@example.com",
            "telephoneNumber": "+1 555 0100",
            "mobile": "+1 555 0101",
            "facsimileTelephoneNumber": "+1 555 0102",
            "street": "1 Main St",
            "l": "Redmond",
            "st": "WA",
            "postalCode": "98052",
            "co": "US",
            "employeeNumber": "4711",
            "departmentNumber": "R&D",
            "uidNumber": str(number),
            "gidNumber": "10000",
            "homeDirectory": f"/home/{login}",
            "loginShell": "/bin/bash",
        }
        assert {name: raw.get(name) for name in expected} == {
            name: [value] for name, value in expected.items()
        }
        assert sorted(raw["scimDefaulted"]) == ["cn", "gidNumber", "homeDirectory", "loginShell"]
    finally:
        delete_quietly(client, body["id"])


def test_ecma2host_namespace(client: TestClient, ldap: Connection) -> None:
    """ECMA2Host names are the LDAP attributes; uid is the login, -dn- must agree with it."""
    login = unique("ecma")
    chosen = unique("chosen")
    number = uid_number()
    body = {
        "schemas": [CORE, ECMA2HOST],
        "userName": f"{login}@example.com",
        ECMA2HOST: {
            "uidNumber": str(number),
            "gidNumber": 20000,
            "homeDirectory": f"/srv/home/{login}",
            "loginShell": "/bin/zsh",
            "uid": chosen,
            "cn": "Chosen Cn",
            "objectClass": ["top", "inetOrgPerson", "posixAccount"],
            "userPassword": "secret-Pa55",
            "-dn-": f"uid={chosen},ou=people,dc=example,dc=org",
            "sn": "Raw",
            "mail": f"{login}@example.net",
        },
    }
    response = client.post(USERS, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    try:
        assert created[POSIX] == {
            "uidNumber": number,
            "gidNumber": 20000,
            "homeDirectory": f"/srv/home/{login}",
            "loginShell": "/bin/zsh",
        }
        answered = created[ECMA2HOST]
        assert answered["uid"] == chosen
        assert answered["cn"] == "Chosen Cn"
        assert answered["mail"] == f"{login}@example.net"
        assert "userPassword" not in answered and "objectClass" not in answered
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["dn"][0] == f"uid={chosen},ou=people,dc=example,dc=org"
        assert raw["uid"] == [chosen]
        assert raw["uidNumber"] == [str(number)]
        assert raw["sn"] == ["Raw"]
        assert raw["cn"] == ["Chosen Cn"]
        assert raw["mail"] == [f"{login}@example.net"]
        assert "secret-Pa55" not in str(raw.get("userPassword"))
    finally:
        delete_quietly(client, created["id"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("-dn-", "uid=evil,dc=example,dc=org"),
        ("-dn-", "cn=x,ou=people,dc=example,dc=org"),
        ("objectClass", ["inetOrgPerson", "organizationalUnit"]),
        ("uid", "has space"),
    ],
)
def test_ecma2host_values_it_cannot_honour_are_refused(
    client: TestClient, name: str, value: Any
) -> None:
    body = {"userName": f"{unique()}@example.com", ECMA2HOST: {name: value}}
    assert_error(client.post(USERS, json=body), 400, "invalidValue")


def test_ecma2host_attributes_as_paths(client: TestClient, ldap: Connection) -> None:
    number = uid_number()
    body = {"userName": f"{unique()}@example.com", f"{ECMA2HOST}:uidNumber": number}
    response = client.post(USERS, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    try:
        assert created[POSIX]["uidNumber"] == number
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["uidNumber"] == [str(number)]
    finally:
        delete_quietly(client, created["id"])


def test_user_name_equal_to_login_is_not_kept_twice(client: TestClient, ldap: Connection) -> None:
    login = unique("plain")
    created = new_user(client, login)
    try:
        assert created["userName"] == login
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["uid"] == [login]
        assert "scimUserName" not in raw
        assert raw["cn"] == [login]
        assert raw["sn"] == [login]
        assert sorted(raw["scimDefaulted"]) == [
            "cn",
            "gidNumber",
            "homeDirectory",
            "loginShell",
            "sn",
        ]
        assert "familyName" not in created.get("name", {})
        assert "scimActive" not in raw, "active was not sent: it stays unassigned"
        assert "active" not in created
        assert "scimExternalId" not in raw
    finally:
        delete_quietly(client, created["id"])


def test_external_id_is_kept_verbatim(client: TestClient, ldap: Connection) -> None:
    external = "  Mixed-Case\u00e9 Id  "
    created = new_user(client, externalId=external)
    try:
        assert created["externalId"] == external
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["scimExternalId"] == [external]
    finally:
        delete_quietly(client, created["id"])


def test_uid_number_is_allocated_when_absent(client: TestClient, ldap: Connection) -> None:
    first, second = user_body(), user_body()
    del first[POSIX], second[POSIX]
    one = client.post(USERS, json=first)
    two = client.post(USERS, json=second)
    try:
        assert one.status_code == two.status_code == 201, one.text + two.text
        numbers = [one.json()[POSIX]["uidNumber"], two.json()[POSIX]["uidNumber"]]
        assert 10000 <= numbers[0] < numbers[1] <= 59999
        raw = entry(ldap, one.json()["id"])
        assert raw is not None
        assert raw["uidNumber"] == [str(numbers[0])]
    finally:
        delete_quietly(client, one.json().get("id", ""))
        delete_quietly(client, two.json().get("id", ""))


def test_uid_number_is_required_by_the_attribute_strategy(sandbox: Sandbox) -> None:
    settings = make_settings(sandbox.directory)
    settings.posix = PosixSettings(uid_strategy="attribute")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        body = user_body()
        del body[POSIX]
        error = assert_error(c.post(USERS, json=body), 400, "invalidValue")
    assert "uidNumber" in error["detail"]


def test_empty_user_name_is_refused(client: TestClient) -> None:
    assert_error(client.post(USERS, json=user_body("")), 400, "invalidValue")
    body = user_body()
    del body["userName"]
    error = assert_error(client.post(USERS, json=body), 400, "invalidValue")
    assert "userName" in error["detail"]


def test_duplicate_user_name_conflicts(client: TestClient) -> None:
    created = new_user(client)
    try:
        for user_name in (created["userName"], created["userName"].upper()):
            response = client.post(USERS, json=user_body(user_name))
            assert_error(response, 409, "uniqueness")
    finally:
        delete_quietly(client, created["id"])


def test_same_login_from_another_domain_conflicts_when_strict(
    client: TestClient, ldap: Connection, sandbox: Sandbox
) -> None:
    login = unique("bob")
    created = new_user(client, f"{login}@a.com")
    try:
        with configured_client(sandbox, posix=PosixSettings(login_policy="strict")) as strict:
            error = assert_error(
                strict.post(USERS, json=user_body(f"{login}@b.com")), 409, "uniqueness"
            )
        assert login in error["detail"]
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["scimUserName"] == [f"{login}@a.com"]
    finally:
        delete_quietly(client, created["id"])


@pytest.mark.parametrize(
    ("sent", "stored", "answered"),
    [
        ("False", "FALSE", False),
        ("false", "FALSE", False),
        ("True", "TRUE", True),
        (False, "FALSE", False),
    ],
)
def test_active_as_string(
    client: TestClient, ldap: Connection, sent: object, stored: str, answered: bool
) -> None:
    created = new_user(client, active=sent)
    try:
        assert created["active"] is answered
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["scimActive"] == [stored]
        fetched = client.get(f"{USERS}/{created['id']}").json()
        assert fetched["active"] is answered
    finally:
        delete_quietly(client, created["id"])


@pytest.mark.parametrize("shape", ["object", "string", "upper-case"])
def test_manager_reference(client: TestClient, ldap: Connection, shape: str) -> None:
    boss = new_user(client)
    manager: object = {"value": boss["id"]} if shape == "object" else boss["id"]
    if shape == "upper-case":
        manager = {"value": boss["id"].upper()}
    created = new_user(client, **{ENTERPRISE: {"manager": manager, "department": "Ops"}})
    try:
        assert created[ENTERPRISE]["manager"]["value"] == boss["id"]
        assert created[ENTERPRISE]["manager"]["$ref"].endswith(f"/Users/{boss['id']}")
        boss_entry = entry(ldap, boss["id"])
        raw = entry(ldap, created["id"])
        assert boss_entry is not None
        assert raw is not None
        assert raw["manager"] == boss_entry["dn"]
        fetched = client.get(f"{USERS}/{created['id']}").json()
        assert fetched[ENTERPRISE]["manager"] == created[ENTERPRISE]["manager"]
    finally:
        delete_quietly(client, created["id"], boss["id"])


@pytest.mark.parametrize(
    "manager", ["7c4d1d9e-0000-4000-8000-000000000000", "not-a-uuid", {"value": "x"}]
)
def test_unknown_manager_is_ignored(client: TestClient, ldap: Connection, manager: object) -> None:
    created = new_user(client, **{ENTERPRISE: {"manager": manager, "department": "Ops"}})
    try:
        assert "manager" not in created[ENTERPRISE]
        assert created[ENTERPRISE]["department"] == "Ops"
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert "manager" not in raw
        assert raw["departmentNumber"] == ["Ops"]
    finally:
        delete_quietly(client, created["id"])


def test_ignored_and_read_only_attributes(client: TestClient, ldap: Connection) -> None:
    created = new_user(
        client,
        id="11111111-1111-4111-8111-111111111111",
        meta={"resourceType": "Group"},
        groups=[{"value": "g"}],
        nickName="Babs",
        roles=[{"value": "admin", "primary": "True"}],
        password="Secret123!",
    )
    try:
        assert created["id"] != "11111111-1111-4111-8111-111111111111"
        assert created["meta"]["resourceType"] == "User"
        assert created["nickName"] == "Babs"
        assert created["roles"] == [{"value": "admin", "primary": True}]
        assert "groups" not in created
        assert "password" not in created
        raw = entry(ldap, created["id"])
        assert raw is not None
        stored = [str(v) for v in raw["userPassword"]]
        assert len(stored) == 1
        assert "Secret123!" not in stored[0], "a plaintext password must never land"
        assert stored[0].startswith("{"), "the directory hashed it (Password Modify)"
    finally:
        delete_quietly(client, created["id"])


def test_schemas_without_core_is_refused(client: TestClient) -> None:
    body = user_body(schemas=[POSIX])
    assert_error(client.post(USERS, json=body), 400, "invalidValue")


def test_display_name_becomes_cn(client: TestClient, ldap: Connection) -> None:
    created = new_user(client, displayName="Zoë Ångström")
    try:
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["cn"] == ["Zoë Ångström"]
        assert raw["displayName"] == ["Zoë Ångström"]
        assert created["displayName"] == "Zoë Ångström"
    finally:
        delete_quietly(client, created["id"])


def test_get_returns_what_post_answered(client: TestClient) -> None:
    created = new_user(client, displayName="Same", title="T")
    try:
        response = client.get(f"{USERS}/{created['id']}")
        assert response.status_code == 200
        assert response.headers["etag"] == created["meta"]["version"]
        assert response.json() == created
    finally:
        delete_quietly(client, created["id"])
