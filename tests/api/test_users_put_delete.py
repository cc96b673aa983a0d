"""PUT /Users/{id}, DELETE /Users/{id} and If-Match (RFC 7644 §3.5.1, §3.6, §3.14)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.ldap.sandbox import Sandbox
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
    unique,
    user_body,
)


@pytest.fixture
def user(client: TestClient) -> Iterator[dict[str, Any]]:
    boss = new_user(client)
    created = new_user(
        client,
        f"{unique('full')}@Example.com",
        displayName="Full User",
        title="Engineer",
        externalId="ext-1",
        name={"givenName": "Full", "familyName": "User"},
        emails=[{"type": "work", "value": "full@example.com"}],
        phoneNumbers=[{"type": "mobile", "value": "+1 555"}],
        **{ENTERPRISE: {"department": "R&D", "manager": boss["id"]}},
    )
    yield created
    delete_quietly(client, created["id"], boss["id"])


def raw_of(ldap: Connection, user_id: str) -> dict[str, list[str]]:
    raw = entry(ldap, user_id)
    assert raw is not None
    return raw


def put_body(user: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return user_body(user["userName"], **{POSIX: user[POSIX], **overrides})


# ---- PUT


def test_put_clears_what_is_not_sent(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    before = raw_of(ldap, user["id"])
    assert {"title", "mail", "mobile", "givenName", "manager", "departmentNumber"} <= set(before)
    response = client.put(f"{USERS}/{user['id']}", json=put_body(user, displayName="Renamed"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == user["id"]
    assert response.headers["etag"] == body["meta"]["version"]
    assert body["displayName"] == "Renamed"
    for gone in ("title", "emails", "phoneNumbers", "externalId", ENTERPRISE):
        assert gone not in body
    after = raw_of(ldap, user["id"])
    assert after["entryUUID"] == before["entryUUID"]
    assert after["dn"] == before["dn"]
    for gone in (
        "title",
        "mail",
        "mobile",
        "givenName",
        "manager",
        "departmentNumber",
        "scimExternalId",
    ):
        assert gone not in after, gone
    assert after["displayName"] == ["Renamed"]
    assert after["cn"] == ["Renamed"]
    assert after["sn"] == [before["uid"][0]]
    assert after["uidNumber"] == before["uidNumber"]
    assert after["gidNumber"] == ["10000"]
    assert after["homeDirectory"] == before["homeDirectory"]
    assert after["loginShell"] == ["/bin/bash"]
    assert after["scimUserName"] == [user["userName"]]
    assert client.get(f"{USERS}/{user['id']}").json() == body


def test_put_restores_posix_defaults(client: TestClient, ldap: Connection) -> None:
    created = new_user(client)
    try:
        custom = {**created[POSIX], "gidNumber": 5000, "loginShell": "/bin/zsh"}
        response = client.put(f"{USERS}/{created['id']}", json=put_body(created, **{POSIX: custom}))
        assert response.status_code == 200, response.text
        raw = raw_of(ldap, created["id"])
        assert raw["gidNumber"] == ["5000"]
        assert raw["loginShell"] == ["/bin/zsh"]
        plain = {"uidNumber": created[POSIX]["uidNumber"]}
        response = client.put(f"{USERS}/{created['id']}", json=put_body(created, **{POSIX: plain}))
        assert response.status_code == 200, response.text
        raw = raw_of(ldap, created["id"])
        assert raw["gidNumber"] == ["10000"]
        assert raw["loginShell"] == ["/bin/bash"]
    finally:
        delete_quietly(client, created["id"])


def test_put_without_uid_number_keeps_it(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    """The uidNumber is the server's to keep, like a default: a replacement omitting it keeps it."""
    before = raw_of(ldap, user["id"])
    body = put_body(user)
    del body[POSIX]
    response = client.put(f"{USERS}/{user['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()[POSIX]["uidNumber"] == user[POSIX]["uidNumber"]
    assert raw_of(ldap, user["id"])["uidNumber"] == before["uidNumber"]


def test_put_renames(
    client: TestClient, ldap: Connection, sandbox: Sandbox, user: dict[str, Any]
) -> None:
    login = unique("put")
    body = put_body(user, userName=f"{login}@Example.com")
    response = client.put(f"{USERS}/{user['id']}", json=body)
    assert response.status_code == 200, response.text
    raw = raw_of(ldap, user["id"])
    assert raw["dn"] == [f"uid={login},{sandbox.directory.users_dn}"]
    assert raw["scimUserName"] == [f"{login}@Example.com"]


def test_put_ignores_id_and_meta_in_the_body(client: TestClient, user: dict[str, Any]) -> None:
    body = put_body(user, id="00000000-0000-4000-8000-000000000000", meta={"version": "x"})
    response = client.put(f"{USERS}/{user['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user["id"]


def test_put_unknown_id(client: TestClient) -> None:
    response = client.put(f"{USERS}/1b4e28ba-2fa1-11d2-883f-0016d3cca427", json=user_body())
    assert_error(response, 404)


# ---- If-Match


def _write(client: TestClient, method: str, user: dict[str, Any], if_match: str) -> Any:
    url = f"{USERS}/{user['id']}"
    headers = {"If-Match": if_match}
    if method == "put":
        return client.put(url, json=put_body(user, title="Guarded"), headers=headers)
    if method == "patch":
        operation = {"op": "replace", "path": "title", "value": "Guarded"}
        return patch(client, user["id"], operation, **headers)
    return client.delete(url, headers=headers)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_match_current_version(
    client: TestClient, ldap: Connection, user: dict[str, Any], method: str
) -> None:
    response = _write(client, method, user, user["meta"]["version"])
    assert response.status_code == (204 if method == "delete" else 200), response.text
    if method == "delete":
        assert entry(ldap, user["id"]) is None
    else:
        assert raw_of(ldap, user["id"])["title"] == ["Guarded"]
        assert response.json()["meta"]["version"] != user["meta"]["version"]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_match_star(
    client: TestClient, ldap: Connection, user: dict[str, Any], method: str
) -> None:
    response = _write(client, method, user, "*")
    assert response.status_code == (204 if method == "delete" else 200), response.text
    if method == "delete":
        assert entry(ldap, user["id"]) is None
    else:
        assert raw_of(ldap, user["id"])["title"] == ["Guarded"]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_match_stale_version(
    client: TestClient, ldap: Connection, user: dict[str, Any], method: str
) -> None:
    stale = user["meta"]["version"]
    changed = patch(client, user["id"], {"op": "replace", "path": "title", "value": "Newer"})
    assert changed.status_code == 200
    before = raw_of(ldap, user["id"])
    assert_error(_write(client, method, user, stale), 412)
    assert raw_of(ldap, user["id"]) == before


@pytest.mark.parametrize("tag", ['W/"garbage"', '"20200101000000.000000Z#000000#000#000000"'])
def test_if_match_unknown_version(
    client: TestClient, ldap: Connection, user: dict[str, Any], tag: str
) -> None:
    before = raw_of(ldap, user["id"])
    for method in ("patch", "put", "delete"):
        assert_error(_write(client, method, user, tag), 412)
    assert raw_of(ldap, user["id"]) == before


@pytest.mark.parametrize("tag", ['W/"a)(entryCSN=*"', 'W/"\\"', 'W/"*"'])
def test_if_match_hostile_version(
    client: TestClient, ldap: Connection, user: dict[str, Any], tag: str
) -> None:
    before = raw_of(ldap, user["id"])
    for method in ("patch", "delete"):
        assert_error(_write(client, method, user, tag), 412)
    assert raw_of(ldap, user["id"]) == before


def test_rename_with_stale_if_match_changes_nothing(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    stale = user["meta"]["version"]
    patch(client, user["id"], {"op": "replace", "path": "title", "value": "Newer"})
    before = raw_of(ldap, user["id"])
    response = patch(
        client,
        user["id"],
        {"op": "replace", "path": "userName", "value": f"{unique()}@example.com"},
        **{"If-Match": stale},
    )
    assert_error(response, 412)
    assert raw_of(ldap, user["id"]) == before


# ---- DELETE


def test_delete(client: TestClient, ldap: Connection) -> None:
    created = new_user(client)
    dn = raw_of(ldap, created["id"])["dn"][0]
    response = client.delete(f"{USERS}/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert entry(ldap, dn) is None
    body = assert_error(client.get(f"{USERS}/{created['id']}"), 404)
    assert created["id"] in body["detail"]
    assert_error(client.delete(f"{USERS}/{created['id']}"), 404)
    listed = client.get(USERS, params={"filter": f'userName eq "{created["userName"]}"'})
    assert listed.json()["totalResults"] == 0


def test_deleted_login_can_be_created_again(client: TestClient, ldap: Connection) -> None:
    created = new_user(client)
    dn = raw_of(ldap, created["id"])["dn"]
    delete_quietly(client, created["id"])
    again = new_user(client, created["userName"])
    try:
        assert again["id"] != created["id"]
        assert raw_of(ldap, again["id"])["dn"] == dn
    finally:
        delete_quietly(client, again["id"])


def claim_of(ldap: Connection, sandbox: Sandbox, number: int) -> list[str] | None:
    ldap.search(
        f"cn={number},cn=scim-ldap-uids,{sandbox.directory.base_dn}",
        "(objectClass=*)",
        search_scope="BASE",
        attributes=["description"],
    )
    return [str(v) for v in ldap.entries[0].description.values] if ldap.entries else None


def test_a_renamed_users_delete_gives_its_uid_number_back(
    client: TestClient, ldap: Connection, sandbox: Sandbox
) -> None:
    """The claim names the userName of the create; the delete after a rename still frees it."""
    created = new_user(client)
    number = created[POSIX]["uidNumber"]
    assert claim_of(ldap, sandbox, number) == [created["userName"].lower()]
    renamed = f"{unique('renamed')}@example.com"
    patched = patch(client, created["id"], {"op": "replace", "path": "userName", "value": renamed})
    assert patched.status_code == 200, patched.text
    assert client.delete(f"{USERS}/{created['id']}").status_code == 204
    assert claim_of(ldap, sandbox, number) is None


def test_a_claim_whose_number_another_entry_holds_stays(
    client: TestClient, ldap: Connection, sandbox: Sandbox
) -> None:
    """A claim that names another userName is kept while any entry has the number."""
    created = new_user(client)
    number = created[POSIX]["uidNumber"]
    dn = raw_of(ldap, created["id"])["dn"][0]
    base = sandbox.directory.base_dn
    twin = f"uid={unique('twin')},ou=people,{base}"
    # Not a posixAccount, which the sandbox's unique overlay would refuse: a directory
    # without that overlay can hold such a twin in any class.
    assert ldap.add(twin, ["top", "account", "extensibleObject"], {"uidNumber": number}), (
        ldap.result
    )
    try:
        ldap.modify(
            f"cn={number},cn=scim-ldap-uids,{base}",
            {"description": [("MODIFY_REPLACE", ["someone-else@example.com"])]},
        )
        assert client.delete(f"{USERS}/{created['id']}").status_code == 204
        assert entry(ldap, dn) is None
        assert claim_of(ldap, sandbox, number) == ["someone-else@example.com"]
    finally:
        ldap.delete(twin)
        ldap.delete(f"cn={number},cn=scim-ldap-uids,{base}")


@pytest.mark.parametrize("user_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "*"])
def test_delete_unknown(client: TestClient, user_id: str) -> None:
    assert_error(client.delete(f"{USERS}/{user_id}"), 404)


def test_get_unknown(client: TestClient) -> None:
    body = assert_error(client.get(f"{USERS}/3f2504e0-4f89-41d3-9a0c-0305e82c3301"), 404)
    assert body["status"] == "404"


@pytest.mark.parametrize(
    ("attribute", "value"), [("uidNumber", 0), ("uidNumber", 999), ("gidNumber", 0)]
)
def test_system_ids_are_refused(client: TestClient, attribute: str, value: int) -> None:
    body = user_body(None)
    body[POSIX] = {**body[POSIX], attribute: value}
    response = client.post(USERS, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue"
    assert attribute in response.json()["detail"]


def test_a_taken_uid_number_is_refused(client: TestClient, ldap: Connection) -> None:
    first = new_user(client)
    try:
        body = user_body(None)
        body[POSIX] = {"uidNumber": first[POSIX]["uidNumber"]}
        response = client.post(USERS, json=body)
        assert response.status_code == 409, response.text
        assert response.json()["scimType"] == "uniqueness"
        second = new_user(client)
        try:
            clash = {"uidNumber": first[POSIX]["uidNumber"]}
            response = client.put(
                f"{USERS}/{second['id']}", json=put_body(second, **{POSIX: clash})
            )
            assert response.status_code == 409, response.text
            assert raw_of(ldap, second["id"])["uidNumber"] == [str(second[POSIX]["uidNumber"])]
        finally:
            delete_quietly(client, second["id"])
    finally:
        delete_quietly(client, first["id"])


def test_put_without_active_keeps_a_disabled_user_disabled(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    disable = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    assert client.patch(f"{USERS}/{user['id']}", json=disable).status_code == 200
    body = put_body(user)
    body.pop("active", None)
    response = client.put(f"{USERS}/{user['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
