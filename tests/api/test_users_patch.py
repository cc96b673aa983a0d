"""PATCH /Users/{id} in both Entra dialects (ENTRA.md §2), checked in the directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import PosixSettings
from app.ldap.accounts import HIDDEN_CLASS
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    CORE,
    ENTERPRISE,
    POSIX,
    USERS,
    assert_error,
    configured_client,
    delete_quietly,
    entry,
    new_user,
    patch,
    unique,
)

EMPLOYEE_NUMBER = f"{ENTERPRISE}:employeeNumber"
MANAGER = f"{ENTERPRISE}:manager"


@pytest.fixture
def user(client: TestClient) -> Iterator[dict[str, Any]]:
    """A user with no work email, address or manager yet."""
    created = new_user(
        client,
        f"{unique('pat')}@Example.com",
        displayName="Patricia",
        title="Engineer",
        name={"givenName": "Patricia", "familyName": "Lee"},
        active=True,
    )
    yield created
    delete_quietly(client, created["id"])


@pytest.fixture
def boss(client: TestClient) -> Iterator[dict[str, Any]]:
    created = new_user(client)
    yield created
    delete_quietly(client, created["id"])


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["etag"] == body["meta"]["version"]
    return body


def raw_of(ldap: Connection, user_id: str) -> dict[str, list[str]]:
    raw = entry(ldap, user_id)
    assert raw is not None
    return raw


# ---- the examples of ENTRA.md §2, legacy dialect


def test_legacy_disable_with_string(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "Replace", "path": "active", "value": "False"}))
    assert body["active"] is False
    assert raw_of(ldap, user["id"])["scimActive"] == ["FALSE"]
    assert client.get(f"{USERS}/{user['id']}").json()["active"] is False
    listed = client.get(USERS, params={"filter": f'userName eq "{user["userName"]}"'}).json()
    assert [r["id"] for r in listed["Resources"]] == [user["id"]]
    assert listed["Resources"][0]["active"] is False

    body = ok(patch(client, user["id"], {"op": "Replace", "path": "active", "value": "True"}))
    assert body["active"] is True
    assert raw_of(ldap, user["id"])["scimActive"] == ["TRUE"]


def test_legacy_add_nick_name_is_kept(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "Add", "path": "nickName", "value": "Babs"}))
    assert body["nickName"] == "Babs"
    assert client.get(f"{USERS}/{user['id']}").json()["nickName"] == "Babs"
    assert "Babs" in raw_of(ldap, user["id"])["scimUnmapped"][0]


def test_legacy_multi_replace_creates_work_email(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    assert "emails" not in user
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "Replace", "path": "displayName", "value": "Pat Lee"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "pat@example.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Pat"},
            {"op": "Replace", "path": "name.familyName", "value": "Leigh"},
            {"op": "Replace", "path": "externalId", "value": "plee"},
            {"op": "Replace", "path": EMPLOYEE_NUMBER, "value": "4711"},
        )
    )
    assert body["displayName"] == "Pat Lee"
    assert [(e["type"], e["value"]) for e in body["emails"]] == [("work", "pat@example.com")]
    assert body["name"] == {"givenName": "Pat", "familyName": "Leigh"}
    assert body["externalId"] == "plee"
    assert body[ENTERPRISE] == {"employeeNumber": "4711"}
    raw = raw_of(ldap, user["id"])
    assert raw["mail"] == ["pat@example.com"]
    assert raw["displayName"] == ["Pat Lee"]
    assert raw["cn"] == ["Pat Lee"]
    assert raw["givenName"] == ["Pat"]
    assert raw["sn"] == ["Leigh"]
    assert raw["scimExternalId"] == ["plee"]
    assert raw["employeeNumber"] == ["4711"]


def test_address_parts_merge_into_one_element(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
            {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "98052"},
        )
    )
    assert len(body["addresses"]) == 1
    assert body["addresses"][0]["type"] == "work"
    assert body["addresses"][0]["locality"] == "Redmond"
    assert body["addresses"][0]["postalCode"] == "98052"
    raw = raw_of(ldap, user["id"])
    assert raw["l"] == ["Redmond"]
    assert raw["postalCode"] == ["98052"]
    assert "street" not in raw


def test_unmapped_element_type_is_kept(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "add", "path": 'emails[type eq "home"].value', "value": "home@example.com"},
        )
    )
    assert {"type": "home", "value": "home@example.com"} in body["emails"]
    assert "home@example.com" not in raw_of(ldap, user["id"]).get("mail", [])


# ---- compliant dialect


def test_compliant_disable_with_boolean(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "replace", "path": "active", "value": False}))
    assert body["active"] is False
    assert raw_of(ldap, user["id"])["scimActive"] == ["FALSE"]


def test_compliant_path_less_replace_resolves_paths(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "pat@example.com"},
            {
                "op": "replace",
                "value": {
                    "displayName": "Pat Lee",
                    "name.givenName": "Pat",
                    "name.familyName": "Leigh",
                    EMPLOYEE_NUMBER: "4711",
                },
            },
        )
    )
    assert "name.givenName" not in body
    assert EMPLOYEE_NUMBER not in body
    assert body["name"] == {"givenName": "Pat", "familyName": "Leigh"}
    assert body["displayName"] == "Pat Lee"
    assert body[ENTERPRISE] == {"employeeNumber": "4711"}
    assert body["emails"][0]["value"] == "pat@example.com"
    raw = raw_of(ldap, user["id"])
    assert raw["givenName"] == ["Pat"]
    assert raw["sn"] == ["Leigh"]
    assert raw["displayName"] == ["Pat Lee"]
    assert raw["employeeNumber"] == ["4711"]
    assert raw["mail"] == ["pat@example.com"]
    assert client.get(f"{USERS}/{user['id']}").json() == body


def test_path_less_replace_of_complex_merges(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "replace", "value": {"name": {"givenName": "P"}}}))
    assert body["name"] == {"givenName": "P", "familyName": "Lee"}
    raw = raw_of(ldap, user["id"])
    assert raw["givenName"] == ["P"]
    assert raw["sn"] == ["Lee"]


def test_path_less_value_must_be_an_object(client: TestClient, user: dict[str, Any]) -> None:
    assert_error(patch(client, user["id"], {"op": "replace", "value": "x"}), 400, "invalidValue")


# ---- the enterprise manager


@pytest.mark.parametrize("dialect", ["bare", "object", "sub-attribute"])
def test_manager_set(
    client: TestClient,
    ldap: Connection,
    user: dict[str, Any],
    boss: dict[str, Any],
    dialect: str,
) -> None:
    operation: dict[str, Any] = {"op": "Add", "path": MANAGER, "value": boss["id"]}
    if dialect == "object":
        operation = {"op": "replace", "path": MANAGER, "value": {"value": boss["id"]}}
    elif dialect == "sub-attribute":
        operation = {"op": "replace", "path": f"{MANAGER}.value", "value": boss["id"]}
    body = ok(patch(client, user["id"], operation))
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert raw_of(ldap, user["id"])["manager"] == raw_of(ldap, boss["id"])["dn"]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Remove", "path": MANAGER},
        {"op": "Replace", "path": MANAGER, "value": ""},
        {"op": "Replace", "path": MANAGER, "value": {"value": ""}},
        {"op": "replace", "path": MANAGER, "value": None},
    ],
    ids=["remove", "empty-string", "empty-value", "null"],
)
def test_manager_removed(
    client: TestClient,
    ldap: Connection,
    user: dict[str, Any],
    boss: dict[str, Any],
    operation: dict[str, Any],
) -> None:
    ok(patch(client, user["id"], {"op": "add", "path": MANAGER, "value": {"value": boss["id"]}}))
    assert "manager" in raw_of(ldap, user["id"])
    body = ok(patch(client, user["id"], operation))
    assert "manager" not in body.get(ENTERPRISE, {})
    assert "manager" not in raw_of(ldap, user["id"])


def test_manager_change(client: TestClient, ldap: Connection, user: dict[str, Any]) -> None:
    first, second = new_user(client), new_user(client)
    try:
        ok(patch(client, user["id"], {"op": "add", "path": MANAGER, "value": first["id"]}))
        body = ok(patch(client, user["id"], {"op": "add", "path": MANAGER, "value": second["id"]}))
        assert body[ENTERPRISE]["manager"]["value"] == second["id"]
        assert raw_of(ldap, user["id"])["manager"] == raw_of(ldap, second["id"])["dn"]
    finally:
        delete_quietly(client, first["id"], second["id"])


def test_unknown_manager_is_ignored(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "add", "path": MANAGER, "value": "0f0f0f0f-0000-4000-8000-000000000000"},
        )
    )
    assert "manager" not in body.get(ENTERPRISE, {})
    assert "manager" not in raw_of(ldap, user["id"])


# ---- clearing, adding, removing


@pytest.mark.parametrize("value", ["", None], ids=["empty", "null"])
@pytest.mark.parametrize(
    ("path", "attribute"),
    [
        ("title", "title"),
        ("name.givenName", "givenName"),
        ("displayName", "displayName"),
        ('emails[type eq "work"].value', "mail"),
        (EMPLOYEE_NUMBER, "employeeNumber"),
    ],
)
def test_empty_and_null_clear(
    client: TestClient,
    ldap: Connection,
    user: dict[str, Any],
    path: str,
    attribute: str,
    value: object,
) -> None:
    ok(
        patch(
            client,
            user["id"],
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "p@example.com"},
            {"op": "replace", "path": EMPLOYEE_NUMBER, "value": "1"},
        )
    )
    assert attribute in raw_of(ldap, user["id"])
    ok(patch(client, user["id"], {"op": "replace", "path": path, "value": value}))
    assert attribute not in raw_of(ldap, user["id"])


def test_clearing_display_name_falls_back_to_user_name_for_cn(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "remove", "path": "displayName"}))
    assert "displayName" not in body
    raw = raw_of(ldap, user["id"])
    assert "displayName" not in raw
    assert raw["cn"] == [user["userName"]]


def test_add_on_single_valued_replaces(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "Add", "path": "title", "value": "Manager"}))
    assert body["title"] == "Manager"
    assert raw_of(ldap, user["id"])["title"] == ["Manager"]


def test_add_emails_list(client: TestClient, ldap: Connection, user: dict[str, Any]) -> None:
    body = ok(
        patch(
            client,
            user["id"],
            {
                "op": "Add",
                "path": "emails",
                "value": [{"type": "work", "value": "w@example.com", "primary": True}],
            },
        )
    )
    assert body["emails"][0]["value"] == "w@example.com"
    assert raw_of(ldap, user["id"])["mail"] == ["w@example.com"]


def test_remove_by_value_filter(client: TestClient, ldap: Connection, user: dict[str, Any]) -> None:
    ok(patch(client, user["id"], {"op": "add", "path": "emails", "value": [{"value": "x@e.com"}]}))
    ok(patch(client, user["id"], {"op": "remove", "path": 'emails[value eq "other@e.com"]'}))
    assert raw_of(ldap, user["id"])["mail"] == ["x@e.com"]
    body = ok(patch(client, user["id"], {"op": "remove", "path": 'emails[value eq "X@E.com"]'}))
    assert "emails" not in body
    assert "mail" not in raw_of(ldap, user["id"])


def test_remove_whole_extension(
    client: TestClient, ldap: Connection, user: dict[str, Any], boss: dict[str, Any]
) -> None:
    ok(
        patch(
            client,
            user["id"],
            {
                "op": "add",
                "path": ENTERPRISE,
                "value": {"employeeNumber": "1", "department": "D", "manager": boss["id"]},
            },
        )
    )
    raw = raw_of(ldap, user["id"])
    assert raw["employeeNumber"] == ["1"]
    assert raw["departmentNumber"] == ["D"]
    assert "manager" in raw
    body = ok(patch(client, user["id"], {"op": "remove", "path": ENTERPRISE}))
    assert ENTERPRISE not in body
    raw = raw_of(ldap, user["id"])
    assert not {"employeeNumber", "departmentNumber", "manager"} & set(raw)


def test_extension_object_with_schemas_member(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    value = {"schemas": [ENTERPRISE], "employeeNumber": "9"}
    body = ok(patch(client, user["id"], {"op": "add", "path": ENTERPRISE, "value": value}))
    assert body[ENTERPRISE] == {"employeeNumber": "9"}
    assert raw_of(ldap, user["id"])["employeeNumber"] == ["9"]


@pytest.mark.parametrize(("op", "remove"), [("REPLACE", "REMOVE"), ("rePlace", "Remove")])
def test_op_names_are_case_insensitive(
    client: TestClient, ldap: Connection, user: dict[str, Any], op: str, remove: str
) -> None:
    ok(patch(client, user["id"], {"op": op, "path": "title", "value": op}))
    assert raw_of(ldap, user["id"])["title"] == [op]
    ok(patch(client, user["id"], {"op": remove, "path": "title"}))
    assert "title" not in raw_of(ldap, user["id"])


def test_attribute_paths_are_case_insensitive(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    ok(patch(client, user["id"], {"op": "replace", "path": "NAME.GIVENNAME", "value": "Up"}))
    assert raw_of(ldap, user["id"])["givenName"] == ["Up"]


def test_posix_attributes(client: TestClient, ldap: Connection, user: dict[str, Any]) -> None:
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "replace", "path": f"{POSIX}:gidNumber", "value": "20000"},
            {"op": "replace", "path": f"{POSIX}:loginShell", "value": "/usr/sbin/nologin"},
        )
    )
    assert body[POSIX]["gidNumber"] == 20000
    raw = raw_of(ldap, user["id"])
    assert raw["gidNumber"] == ["20000"]
    assert raw["loginShell"] == ["/usr/sbin/nologin"]
    ok(patch(client, user["id"], {"op": "remove", "path": f"{POSIX}:loginShell"}))
    assert raw_of(ldap, user["id"])["loginShell"] == ["/bin/bash"]


def test_removing_uid_number_is_refused(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    response = patch(client, user["id"], {"op": "remove", "path": f"{POSIX}:uidNumber"})
    assert "uidNumber" in assert_error(response, 400, "mutability")["detail"]
    assert raw_of(ldap, user["id"])["uidNumber"] == before["uidNumber"]


# ---- refusals


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "id", "value": "x"},
        {"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"},
        {"op": "add", "path": "groups", "value": [{"value": "g"}]},
        {"op": "remove", "path": "groups"},
        {"op": "replace", "value": {"id": "x"}},
    ],
)
def test_read_only_attributes(
    client: TestClient, ldap: Connection, user: dict[str, Any], operation: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    assert_error(patch(client, user["id"], operation), 400, "mutability")
    assert raw_of(ldap, user["id"])["entryCSN"] == before["entryCSN"]


def test_user_name_cannot_be_removed_or_emptied(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    assert_error(patch(client, user["id"], {"op": "remove", "path": "userName"}), 400)
    assert_error(patch(client, user["id"], {"op": "remove", "path": CORE}), 400, "mutability")
    for value in ("", None):
        response = patch(client, user["id"], {"op": "replace", "path": "userName", "value": value})
        assert_error(response, 400, "invalidValue")
    assert raw_of(ldap, user["id"])["entryCSN"] == before["entryCSN"]


def test_failing_operation_applies_nothing(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    response = patch(
        client,
        user["id"],
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": f"{POSIX}:uidNumber", "value": "abc"},
    )
    assert "uidNumber" in assert_error(response, 400, "invalidValue")["detail"]
    after = raw_of(ldap, user["id"])
    assert after["title"] == ["Engineer"]
    assert after["entryCSN"] == before["entryCSN"]


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"Operations": [{"op": "add", "path": "title", "value": "x"}]}, "invalidSyntax"),
        ({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}, "invalidSyntax"),
        (
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "move", "path": "title", "value": "x"}],
            },
            "invalidSyntax",
        ),
        (
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "title"}],
            },
            "invalidValue",
        ),
        (
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "title[", "value": "x"}],
            },
            "invalidPath",
        ),
    ],
    ids=["no-schemas", "no-operations", "unknown-op", "no-value", "bad-path"],
)
def test_malformed_patch(
    client: TestClient, user: dict[str, Any], body: dict[str, Any], scim_type: str
) -> None:
    response = client.patch(f"{USERS}/{user['id']}", json=body)
    assert_error(response, 400, scim_type)


def test_unknown_id(client: TestClient) -> None:
    operation = {"op": "replace", "path": "title", "value": "x"}
    for user_id in ("6d8a3f5e-0000-4000-8000-000000000000", "not-a-uuid"):
        assert_error(patch(client, user_id, operation), 404)


# ---- no-ops and minimal writes


def test_no_op_patch_does_not_write(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "replace", "path": "title", "value": "Engineer"},
            {"op": "replace", "path": "userName", "value": user["userName"]},
            {"op": "replace", "path": "active", "value": "True"},
            {"op": "remove", "path": "externalId"},
        )
    )
    after = raw_of(ldap, user["id"])
    assert after["entryCSN"] == before["entryCSN"]
    assert after["modifyTimestamp"] == before["modifyTimestamp"]
    assert body["meta"]["version"] == user["meta"]["version"]


def test_patch_changes_only_what_was_sent(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    body = ok(patch(client, user["id"], {"op": "replace", "path": "title", "value": "Lead"}))
    after = raw_of(ldap, user["id"])
    assert after["entryCSN"] != before["entryCSN"]
    assert body["meta"]["version"] != user["meta"]["version"]
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= {"title", "entryCSN", "modifyTimestamp", "modifiersName"}
    assert "title" in changed


# ---- userName changes: renames


def test_user_name_change_renames(
    client: TestClient, ldap: Connection, sandbox: Sandbox, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    login = unique("renamed")
    new_name = f"{login}@Example.org"
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "replace", "path": "userName", "value": new_name},
            {"op": "replace", "path": "title", "value": "Renamed"},
        )
    )
    assert body["id"] == user["id"]
    assert body["userName"] == new_name
    assert "homeDirectory" not in body[POSIX], "a server default is not a SCIM value"
    after = raw_of(ldap, user["id"])
    assert after["homeDirectory"] == before["homeDirectory"], "a default home never moves"
    assert after["dn"] == [f"uid={login},{sandbox.directory.users_dn}"]
    assert after["entryUUID"] == before["entryUUID"]
    assert after["uid"] == [login]
    assert after["scimUserName"] == [new_name]
    assert after["title"] == ["Renamed"]
    assert entry(ldap, before["dn"][0]) is None
    fetched = client.get(f"{USERS}/{user['id']}").json()
    assert fetched["userName"] == new_name


def test_user_name_case_change_keeps_dn(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    new_name = user["userName"].upper()
    body = ok(patch(client, user["id"], {"op": "replace", "path": "userName", "value": new_name}))
    assert body["userName"] == new_name
    after = raw_of(ldap, user["id"])
    assert after["dn"] == before["dn"]
    assert after["scimUserName"] == [new_name]


def test_user_name_becoming_the_login_drops_the_kept_name(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    login = raw_of(ldap, user["id"])["uid"][0]
    body = ok(patch(client, user["id"], {"op": "replace", "path": "userName", "value": login}))
    assert body["userName"] == login
    raw = raw_of(ldap, user["id"])
    assert "scimUserName" not in raw
    assert raw["uid"] == [login]


def test_rename_onto_existing_login_changes_nothing_when_strict(
    client: TestClient,
    ldap: Connection,
    sandbox: Sandbox,
    user: dict[str, Any],
    boss: dict[str, Any],
) -> None:
    before = raw_of(ldap, user["id"])
    other_login = raw_of(ldap, boss["id"])["uid"][0]
    with configured_client(sandbox, posix=PosixSettings(login_policy="strict")) as strict:
        response = patch(
            strict,
            user["id"],
            {"op": "replace", "path": "title", "value": "Should not land"},
            {"op": "replace", "path": "userName", "value": f"{other_login}@elsewhere.com"},
            {"op": "replace", "path": "displayName", "value": "Nope"},
        )
    assert other_login in assert_error(response, 409, "uniqueness")["detail"]
    assert raw_of(ldap, user["id"]) == before
    assert client.get(f"{USERS}/{user['id']}").json() == user


def test_rename_is_undone_when_the_modify_fails(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    response = patch(
        client,
        user["id"],
        {"op": "replace", "path": "userName", "value": f"{unique('undo')}@example.com"},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "pät@exämple.com"},
    )
    assert_error(response, 400, "invalidValue")
    assert raw_of(ldap, user["id"])["dn"] == before["dn"]
    assert raw_of(ldap, user["id"]).get("mail") is None


def test_rename_with_current_if_match(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    login = unique("guarded")
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "replace", "path": "userName", "value": login},
            {"op": "replace", "path": "title", "value": "Guarded"},
            **{"If-Match": user["meta"]["version"]},
        )
    )
    assert body["userName"] == login
    raw = raw_of(ldap, user["id"])
    assert raw["uid"] == [login]
    assert raw["title"] == ["Guarded"]


# ---- entries the server did not create


@pytest.fixture
def legacy(client: TestClient, ldap: Connection, sandbox: Sandbox) -> Iterator[tuple[str, str]]:
    """An entry added straight into the directory, without the scimUser object class."""
    login = unique("legacy")
    dn = f"uid={login},{sandbox.directory.users_dn}"
    assert ldap.add(
        dn,
        ["inetOrgPerson", "posixAccount"],
        {
            "uid": login,
            "cn": "Legacy Name",
            "sn": "Legacy",
            "uidNumber": "4242",
            "gidNumber": "4242",
            "homeDirectory": f"/srv/{login}",
        },
    ), ldap.result
    raw = raw_of(ldap, dn)
    yield login, raw["entryUUID"][0]
    ldap.delete(dn)


def test_legacy_entry_is_served(client: TestClient, legacy: tuple[str, str]) -> None:
    login, user_id = legacy
    body = client.get(f"{USERS}/{user_id}").json()
    assert body["userName"] == login
    assert "active" not in body, "an entry without the active attribute leaves it unassigned"
    assert body[POSIX] == {"uidNumber": 4242, "gidNumber": 4242, "homeDirectory": f"/srv/{login}"}
    listed = client.get(USERS, params={"filter": f'userName eq "{login}"'}).json()
    assert [r["id"] for r in listed["Resources"]] == [user_id]


def test_legacy_entry_gains_the_object_classes_it_needs(
    client: TestClient, ldap: Connection, legacy: tuple[str, str]
) -> None:
    login, user_id = legacy
    body = ok(
        patch(
            client,
            user_id,
            {"op": "replace", "path": "externalId", "value": "L-1"},
            {"op": "replace", "path": "active", "value": False},
        )
    )
    assert body["externalId"] == "L-1"
    assert body["active"] is False
    raw = raw_of(ldap, user_id)
    assert {"scimUser", HIDDEN_CLASS} <= set(raw["objectClass"])
    assert not {"posixAccount", "shadowAccount"} & set(raw["objectClass"])
    assert raw["scimExternalId"] == ["L-1"]
    assert raw["scimActive"] == ["FALSE"]
    assert raw["cn"] == ["Legacy Name"]
    assert raw["homeDirectory"] == [f"/srv/{login}"]

    ok(patch(client, user_id, {"op": "replace", "path": "active", "value": True}))
    classes = set(raw_of(ldap, user_id)["objectClass"])
    assert {"scimUser", "posixAccount", "shadowAccount"} <= classes
    assert HIDDEN_CLASS not in classes
