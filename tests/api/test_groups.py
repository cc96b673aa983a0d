"""/Groups as Entra's group provisioning calls it (ENTRA.md §3), with the directory checked.

Groups are posixGroup + scimGroup entries under ``ldap.groups_dn``; members are
kept both as ``memberUid`` (login names, what stock sssd and nslcd read) and as
``member`` (DNs, for rfc2307bis clients and nesting).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import BASE, Connection

from tests.api.helpers import (
    PATCH_OP,
    USERS,
    assert_error,
    delete_quietly,
    new_user,
    unique,
)

GROUPS = "/scim/v2/Groups"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
POSIX_GROUP = "urn:ietf:params:scim:schemas:extension:posix:2.0:Group"
MICROSOFT = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def group_entry(ldap: Connection, dn: str) -> dict[str, list[str]]:
    ldap.search(dn, "(objectClass=*)", BASE, attributes=["*", "entryUUID"])
    assert ldap.entries, dn
    found: dict[str, list[str]] = {
        k: [str(v) for v in vs] for k, vs in ldap.entries[0].entry_attributes_as_dict.items()
    }
    return found


def dn_of(ldap: Connection, entry_id: str) -> str:
    ldap.search("dc=example,dc=org", f"(entryUUID={entry_id})", attributes=["1.1"])
    assert ldap.entries, entry_id
    return str(ldap.entries[0].entry_dn)


def patch_group(client: TestClient, group_id: str, *operations: dict[str, Any]) -> None:
    response = client.patch(
        f"{GROUPS}/{group_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
    )
    assert response.status_code == 204, response.text


def member_ids(client: TestClient, group_id: str) -> set[str]:
    body = client.get(f"{GROUPS}/{group_id}").json()
    return {m["value"] for m in body.get("members", [])}


@pytest.fixture
def group(client: TestClient) -> Iterator[dict[str, Any]]:
    body = {
        "schemas": [CORE_GROUP, MICROSOFT],
        "displayName": f"Sales {unique()}",
        "externalId": unique("entra-"),
    }
    response = client.post(GROUPS, json=body)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    yield made
    client.delete(f"{GROUPS}/{made['id']}")


@pytest.fixture
def people(client: TestClient) -> Iterator[list[dict[str, Any]]]:
    made = [new_user(client) for _ in range(3)]
    yield made
    delete_quietly(client, *(m["id"] for m in made))


def test_create_as_entra_does(client: TestClient, ldap: Connection, group: dict[str, Any]) -> None:
    assert group["schemas"][0] == CORE_GROUP
    assert group["meta"]["resourceType"] == "Group"
    assert group["meta"]["location"].endswith(f"/Groups/{group['id']}")
    assert group.get("members", []) == []
    gid = group[POSIX_GROUP]["gidNumber"]
    assert 70000 <= gid <= 99999
    raw = group_entry(ldap, dn_of(ldap, group["id"]))
    assert "posixGroup" in raw["objectClass"] and "scimGroup" in raw["objectClass"]
    assert raw["displayName"] == [group["displayName"]]
    assert raw["scimExternalId"] == [group["externalId"]]
    assert "memberUid" not in raw and "member" not in raw
    again = client.get(f"{GROUPS}/{group['id']}", params={"excludedAttributes": "members"})
    assert again.status_code == 200 and "members" not in again.json()


def test_display_name_is_unique_in_any_case(client: TestClient, group: dict[str, Any]) -> None:
    body = {"schemas": [CORE_GROUP], "displayName": group["displayName"].upper()}
    assert_error(client.post(GROUPS, json=body), 409, "uniqueness")


def test_filters_entra_sends(client: TestClient, group: dict[str, Any]) -> None:
    for expression in (
        f'displayName eq "{group["displayName"]}"',
        f'displayName eq "{group["displayName"].lower()}"',
        f'externalId eq "{group["externalId"]}"',
        f'id eq "{group["id"]}"',
    ):
        response = client.get(
            GROUPS, params={"filter": expression, "excludedAttributes": "members"}
        )
        assert response.status_code == 200, response.text
        found = response.json()
        assert [r["id"] for r in found["Resources"]] == [group["id"]], expression
        assert "members" not in found["Resources"][0]


def test_members_in_both_dialects(
    client: TestClient, ldap: Connection, group: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    a, b, c = (p["id"] for p in people)
    patch_group(
        client,
        group["id"],
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": a}, {"value": b}]},
    )
    assert member_ids(client, group["id"]) == {a, b}
    raw = group_entry(ldap, dn_of(ldap, group["id"]))
    assert sorted(raw["member"]) == sorted([dn_of(ldap, a), dn_of(ldap, b)])
    logins = {dn_of(ldap, x).split(",")[0].split("=", 1)[1] for x in (a, b)}
    assert set(raw["memberUid"]) == logins
    patch_group(client, group["id"], {"op": "Add", "path": "members", "value": [{"value": a}]})
    patch_group(client, group["id"], {"op": "Remove", "path": "members", "value": [{"value": a}]})
    assert member_ids(client, group["id"]) == {b}, "the legacy Remove removes only those listed"
    patch_group(client, group["id"], {"op": "remove", "path": f'members[value eq "{b}"]'})
    assert member_ids(client, group["id"]) == set()
    patch_group(client, group["id"], {"op": "remove", "path": f'members[value eq "{b}"]'})
    patch_group(
        client,
        group["id"],
        {"op": "replace", "path": "members", "value": [{"value": a}, {"value": c}]},
    )
    assert member_ids(client, group["id"]) == {a, c}
    patch_group(
        client,
        group["id"],
        {"op": "add", "path": "members", "value": [{"value": b}]},
        {"op": "remove", "path": "members", "value": [{"value": b}]},
    )
    assert member_ids(client, group["id"]) == {a, c}
    patch_group(client, group["id"], {"op": "remove", "path": "members"})
    assert member_ids(client, group["id"]) == set()
    raw = group_entry(ldap, dn_of(ldap, group["id"]))
    assert "memberUid" not in raw and "member" not in raw


def test_rename_keeps_id_gid_and_members(
    client: TestClient, ldap: Connection, group: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    patch_group(
        client, group["id"], {"op": "add", "path": "members", "value": [{"value": people[0]["id"]}]}
    )
    new_name = f"Renamed {unique()}"
    patch_group(client, group["id"], {"op": "Replace", "path": "displayName", "value": new_name})
    after = client.get(f"{GROUPS}/{group['id']}").json()
    assert after["displayName"] == new_name
    assert after[POSIX_GROUP]["gidNumber"] == group[POSIX_GROUP]["gidNumber"]
    assert member_ids(client, group["id"]) == {people[0]["id"]}
    patch_group(
        client,
        group["id"],
        {"op": "replace", "value": {"displayName": f"{new_name}2", "externalId": "x-1"}},
    )
    after = client.get(f"{GROUPS}/{group['id']}").json()
    assert (after["displayName"], after["externalId"]) == (f"{new_name}2", "x-1")


def test_user_shows_its_groups(
    client: TestClient, group: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    user = people[0]
    patch_group(
        client, group["id"], {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
    )
    body = client.get(f"{USERS}/{user['id']}").json()
    assert [g["value"] for g in body["groups"]] == [group["id"]]
    assert body["groups"][0]["display"] == group["displayName"]


def test_user_rename_and_delete_keep_memberships_right(
    client: TestClient, ldap: Connection, group: dict[str, Any]
) -> None:
    user = new_user(client)
    try:
        patch_group(
            client, group["id"], {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
        )
        renamed = f"{unique()}@example.com"
        response = client.patch(
            f"{USERS}/{user['id']}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "userName", "value": renamed}],
            },
        )
        assert response.status_code == 200, response.text
        raw = group_entry(ldap, dn_of(ldap, group["id"]))
        assert raw["member"] == [dn_of(ldap, user["id"])]
        assert raw["memberUid"] == [renamed.split("@", maxsplit=1)[0]]
        assert member_ids(client, group["id"]) == {user["id"]}
    finally:
        delete_quietly(client, user["id"])
    raw = group_entry(ldap, dn_of(ldap, group["id"]))
    assert "member" not in raw and "memberUid" not in raw


def nested_in(client: TestClient, group_id: str) -> str:
    """The id of a new group made a member of the group ``group_id``."""
    inner = client.post(GROUPS, json={"schemas": [CORE_GROUP], "displayName": unique("inner")})
    assert inner.status_code == 201, inner.text
    inner_id: str = inner.json()["id"]
    patch_group(client, group_id, {"op": "add", "path": "members", "value": [{"value": inner_id}]})
    return inner_id


def test_nested_group(client: TestClient, ldap: Connection, group: dict[str, Any]) -> None:
    inner_id = nested_in(client, group["id"])
    try:
        members = client.get(f"{GROUPS}/{group['id']}").json()["members"]
        assert [(m["value"], m["type"]) for m in members] == [(inner_id, "Group")]
        raw = group_entry(ldap, dn_of(ldap, group["id"]))
        assert raw["member"] == [dn_of(ldap, inner_id)] and "memberUid" not in raw
    finally:
        assert client.delete(f"{GROUPS}/{inner_id}").status_code == 204
    raw = group_entry(ldap, dn_of(ldap, group["id"]))
    assert "member" not in raw, "a deleted group leaves no dangling member"


def test_a_refused_delete_leaves_the_nesting(
    client: TestClient, ldap: Connection, group: dict[str, Any]
) -> None:
    """The nesting goes before the entry; a delete slapd refuses (the group has an entry
    below it: notAllowedOnNonLeaf, a 409 naming why) puts it back (all or nothing)."""
    inner_id = nested_in(client, group["id"])
    try:
        child = f"cn=child,{dn_of(ldap, inner_id)}"
        assert ldap.add(child, ["top", "organizationalRole"], {"cn": "child"}), ldap.result
        try:
            refused = client.delete(f"{GROUPS}/{inner_id}")
        finally:
            ldap.delete(child)
        body = assert_error(refused, 409)
        assert "entries below it" in body["detail"]
        assert client.get(f"{GROUPS}/{inner_id}").status_code == 200
        raw = group_entry(ldap, dn_of(ldap, group["id"]))
        assert raw["member"] == [dn_of(ldap, inner_id)]
    finally:
        assert client.delete(f"{GROUPS}/{inner_id}").status_code == 204
    assert "member" not in group_entry(ldap, dn_of(ldap, group["id"]))


def test_bad_requests(client: TestClient, group: dict[str, Any]) -> None:
    assert_error(client.post(GROUPS, json={"schemas": [CORE_GROUP]}), 400, "invalidValue")
    unknown = "00000000-0000-4000-8000-000000000000"
    response = client.patch(
        f"{GROUPS}/{group['id']}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": unknown}]}],
        },
    )
    assert unknown in assert_error(response, 400, "invalidValue")["detail"]
    assert_error(client.get(f"{GROUPS}/{unknown}"), 404)
    assert_error(client.delete(f"{GROUPS}/{unknown}"), 404)
    assert_error(client.get(GROUPS, params={"filter": "members pr"}), 400, "invalidFilter")


def test_put_replaces_members(
    client: TestClient, group: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    body = {
        "schemas": [CORE_GROUP],
        "displayName": group["displayName"],
        "members": [{"value": people[1]["id"]}, {"value": people[2]["id"]}],
    }
    response = client.put(f"{GROUPS}/{group['id']}", json=body)
    assert response.status_code == 200, response.text
    assert {m["value"] for m in response.json()["members"]} == {people[1]["id"], people[2]["id"]}
    assert "externalId" not in response.json()


def test_discovery_lists_groups(client: TestClient) -> None:
    types = client.get("/scim/v2/ResourceTypes").json()["Resources"]
    assert {t["id"] for t in types} == {"User", "Group"}
    schema = client.get(f"/scim/v2/Schemas/{POSIX_GROUP}").json()
    assert schema["attributes"][0]["name"] == "gidNumber"
