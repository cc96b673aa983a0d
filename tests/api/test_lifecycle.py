"""Account lifecycle through HTTP: numbers, private groups, renames, memberships, archive."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import AccountSettings, PosixSettings
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    CORE,
    POSIX,
    USERS,
    assert_error,
    by_login,
    configured_client,
    delete_quietly,
    ensure_entry,
    entry,
    new_user,
    patch,
    unique,
    user_body,
)


def raw(ldap: Connection, dn_or_id: str) -> dict[str, list[str]]:
    found = entry(ldap, dn_or_id)
    assert found is not None, dn_or_id
    return found


def unnumbered(user_name: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A POST body without a uidNumber."""
    body = user_body(user_name, **overrides)
    body[POSIX] = {k: v for k, v in body[POSIX].items() if k != "uidNumber"}
    body["schemas"] = [CORE, POSIX]
    return body


def create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(USERS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def uid_of(body: dict[str, Any]) -> int:
    number: int = body[POSIX]["uidNumber"]
    return number


def pool(sandbox: Sandbox, name: str) -> str:
    return f"cn={name}-{unique('p')},{sandbox.directory.counters_dn}"


def group(ldap: Connection, sandbox: Sandbox, *member_uids: str) -> str:
    name = unique("g")
    dn = f"cn={name},{sandbox.directory.groups_dn}"
    attributes: dict[str, Any] = {"cn": name, "gidNumber": "7001"}
    if member_uids:
        attributes["memberUid"] = list(member_uids)
    assert ldap.add(dn, ["top", "posixGroup"], attributes), ldap.result
    return dn


def member_uids(ldap: Connection, dn: str) -> list[str]:
    return sorted(raw(ldap, dn).get("memberUid", []))


# ---- uidNumber allocation


def test_allocation_hands_out_increasing_numbers_never_reused(
    sandbox: Sandbox, ldap: Connection
) -> None:
    posix = PosixSettings(uid_range=(31000, 31999), id_pool_dn=pool(sandbox, "alloc"))
    with configured_client(sandbox, posix=posix) as client:
        made = [create(client, unnumbered()) for _ in range(3)]
        try:
            numbers = [uid_of(u) for u in made]
            assert numbers == [31000, 31001, 31002]
            for user, number in zip(made, numbers, strict=True):
                assert raw(ldap, user["id"])["uidNumber"] == [str(number)]
            assert raw(ldap, posix.id_pool_dn)["uidNumber"] == ["31003"]

            assert client.delete(f"{USERS}/{made[2]['id']}").status_code == 204
            later = create(client, unnumbered())
            made.append(later)
            assert uid_of(later) == 31003

            taken = f"uid={unique('hand')},{sandbox.directory.users_dn}"
            assert ldap.add(
                taken,
                ["inetOrgPerson", "posixAccount"],
                {
                    "cn": "hand",
                    "sn": "hand",
                    "uidNumber": "31004",
                    "gidNumber": "10000",
                    "homeDirectory": "/home/hand",
                },
            ), ldap.result
            try:
                skipped = create(client, unnumbered())
                made.append(skipped)
                assert uid_of(skipped) == 31005
            finally:
                ldap.delete(taken)
        finally:
            delete_quietly(client, *(u["id"] for u in made))
            ldap.delete(posix.id_pool_dn)


def test_a_sent_uid_number_wins_and_a_taken_one_is_refused(
    sandbox: Sandbox, ldap: Connection
) -> None:
    posix = PosixSettings(uid_range=(32000, 32999), id_pool_dn=pool(sandbox, "sent"))
    with configured_client(sandbox, posix=posix) as client:
        first = create(client, user_body(**{POSIX: {"uidNumber": 32500}}))
        try:
            assert uid_of(first) == 32500
            assert raw(ldap, first["id"])["uidNumber"] == ["32500"]
            response = client.post(USERS, json=user_body(**{POSIX: {"uidNumber": 32500}}))
            assert_error(response, 409, "uniqueness")
            response = client.post(USERS, json=user_body(**{POSIX: {"uidNumber": 999}}))
            assert_error(response, 400, "invalidValue")
            assert entry(ldap, posix.id_pool_dn) is None
        finally:
            delete_quietly(client, first["id"])
            ldap.delete(posix.id_pool_dn)


def test_hash_strategy_is_deterministic_from_external_id(
    sandbox: Sandbox, ldap: Connection
) -> None:
    low, high = 40000, 49999
    posix = PosixSettings(uid_strategy="hash", uid_range=(low, high))
    external = f"ext-{unique()}"
    digest = hashlib.sha256(f"externalId:{external}".encode()).digest()
    expected = low + int.from_bytes(digest[:8], "big") % (high - low + 1)
    with configured_client(sandbox, posix=posix) as client:
        first = create(client, unnumbered(externalId=external))
        assert uid_of(first) == expected
        assert raw(ldap, first["id"])["uidNumber"] == [str(expected)]
        assert client.delete(f"{USERS}/{first['id']}").status_code == 204

        again = create(client, unnumbered(f"{unique()}@example.com", externalId=external))
        try:
            assert uid_of(again) == expected
            collided = create(client, unnumbered(externalId=external))
            try:
                assert uid_of(collided) == (expected + 1 if expected < high else low)
            finally:
                delete_quietly(client, collided["id"])
        finally:
            delete_quietly(client, again["id"])


# ---- private groups


def test_private_group_follows_the_account(sandbox: Sandbox, ldap: Connection) -> None:
    posix = PosixSettings(
        gid_strategy="private-group", uid_range=(33000, 33999), id_pool_dn=pool(sandbox, "pg")
    )
    groups = sandbox.directory.groups_dn
    with configured_client(sandbox, posix=posix) as client:
        login = unique("pg")
        created = create(client, unnumbered(login))
        try:
            number = uid_of(created)
            stored = raw(ldap, created["id"])
            assert stored["gidNumber"] == [str(number)]
            private = raw(ldap, f"cn={login},{groups}")
            assert private["gidNumber"] == [str(number)]
            assert "posixGroup" in private["objectClass"]

            renamed = unique("pg")
            body = ok(
                patch(
                    client, created["id"], {"op": "replace", "path": "userName", "value": renamed}
                )
            )
            assert body["userName"] == renamed
            assert entry(ldap, f"cn={login},{groups}") is None
            assert raw(ldap, f"cn={renamed},{groups}")["gidNumber"] == [str(number)]
            assert raw(ldap, created["id"])["gidNumber"] == [str(number)]

            assert client.delete(f"{USERS}/{created['id']}").status_code == 204
            assert entry(ldap, f"cn={renamed},{groups}") is None
            assert by_login(ldap, renamed) is None
        finally:
            delete_quietly(client, created["id"])
            ldap.delete(posix.id_pool_dn)


def test_a_taken_group_name_refuses_the_account(sandbox: Sandbox, ldap: Connection) -> None:
    posix = PosixSettings(
        gid_strategy="private-group", uid_range=(34000, 34999), id_pool_dn=pool(sandbox, "pgt")
    )
    login = unique("pg")
    taken = f"cn={login},{sandbox.directory.groups_dn}"
    assert ldap.add(taken, ["top", "posixGroup"], {"cn": login, "gidNumber": "7002"})
    try:
        with configured_client(sandbox, posix=posix) as client:
            assert_error(client.post(USERS, json=unnumbered(login)), 409, "uniqueness")
            assert by_login(ldap, login) is None
            assert raw(ldap, taken)["gidNumber"] == ["7002"]
    finally:
        ldap.delete(taken)
        ldap.delete(posix.id_pool_dn)


# ---- renames


def test_rename_login_false_keeps_the_login(sandbox: Sandbox, ldap: Connection) -> None:
    posix = PosixSettings(rename_login=False)
    with configured_client(sandbox, posix=posix) as client:
        login = unique("keep")
        created = new_user(client, f"{login}@example.com")
        try:
            before = raw(ldap, created["id"])
            assert before["uid"] == [login]
            new_name = f"{unique('other')}@example.com"
            body = ok(
                patch(
                    client, created["id"], {"op": "replace", "path": "userName", "value": new_name}
                )
            )
            assert body["userName"] == new_name
            after = raw(ldap, created["id"])
            assert after["dn"] == before["dn"]
            assert after["uid"] == [login]
            assert after["scimUserName"] == [new_name]
            assert after["homeDirectory"] == before["homeDirectory"]
            found = client.get(USERS, params={"filter": f'userName eq "{new_name}"'}).json()
            assert [r["id"] for r in found["Resources"]] == [created["id"]]
        finally:
            delete_quietly(client, created["id"])


def test_a_rename_renames_memberships_and_keeps_the_home(
    client: TestClient, sandbox: Sandbox, ldap: Connection
) -> None:
    login = unique("ren")
    created = new_user(client, f"{login}@example.com")
    devs = group(ldap, sandbox, login, "someone")
    ops = group(ldap, sandbox, login)
    other = group(ldap, sandbox, "someone")
    try:
        home = raw(ldap, created["id"])["homeDirectory"]
        renamed = unique("ren")
        body = ok(
            patch(
                client,
                created["id"],
                {"op": "replace", "path": "userName", "value": f"{renamed}@example.com"},
            )
        )
        assert body["userName"] == f"{renamed}@example.com"
        after = raw(ldap, created["id"])
        assert after["dn"] == [f"uid={renamed},{sandbox.directory.users_dn}"]
        assert after["homeDirectory"] == home
        assert member_uids(ldap, devs) == sorted([renamed, "someone"])
        assert member_uids(ldap, ops) == [renamed]
        assert member_uids(ldap, other) == ["someone"]
    finally:
        delete_quietly(client, created["id"])
        for dn in (devs, ops, other):
            ldap.delete(dn)


def test_a_rename_onto_a_taken_login_changes_nothing(
    client: TestClient, sandbox: Sandbox, ldap: Connection
) -> None:
    first = new_user(client, unique("a"))
    second = new_user(client, unique("b"))
    devs = group(ldap, sandbox, first["userName"])
    try:
        before = raw(ldap, first["id"])
        response = patch(
            client,
            first["id"],
            {"op": "replace", "path": "userName", "value": second["userName"]},
            {"op": "replace", "path": "displayName", "value": "Changed"},
        )
        assert_error(response, 409, "uniqueness")
        after = raw(ldap, first["id"])
        assert after["dn"] == before["dn"]
        assert after.get("displayName") == before.get("displayName")
        assert member_uids(ldap, devs) == [first["userName"]]
    finally:
        delete_quietly(client, first["id"], second["id"])
        ldap.delete(devs)


def test_delete_removes_the_login_from_every_group(
    client: TestClient, sandbox: Sandbox, ldap: Connection
) -> None:
    login = unique("del")
    created = new_user(client, login)
    groups = [group(ldap, sandbox, login, "someone"), group(ldap, sandbox, login)]
    try:
        assert client.delete(f"{USERS}/{created['id']}").status_code == 204
        assert member_uids(ldap, groups[0]) == ["someone"]
        assert member_uids(ldap, groups[1]) == []
        assert by_login(ldap, login) is None
        again = new_user(client, login)
        delete_quietly(client, again["id"])
    finally:
        for dn in groups:
            ldap.delete(dn)


# ---- archive


def test_archive_moves_the_entry_out_and_frees_the_login(
    sandbox: Sandbox, ldap: Connection
) -> None:
    archive = f"ou=archive,{sandbox.directory.base_dn}"
    ensure_entry(ldap, archive, ["top", "organizationalUnit"], ou="archive")
    login = unique("arc")
    strict = PosixSettings(login_policy="strict")
    accounts = AccountSettings(delete="archive")
    with configured_client(sandbox, accounts=accounts, posix=strict) as client:
        archived: list[str] = []
        try:
            for _round in range(2):
                created = new_user(client, login)
                devs = group(ldap, sandbox, login)
                assert client.delete(f"{USERS}/{created['id']}").status_code == 204
                stored = raw(ldap, created["id"])
                archived.append(stored["dn"][0])
                number = uid_of(created)
                assert stored["dn"] == [f"uid={login}+uidNumber={number},{archive}"]
                assert stored["uid"] == [login]
                assert member_uids(ldap, devs) == []
                ldap.delete(devs)
                assert_error(client.get(f"{USERS}/{created['id']}"), 404)
                listed = client.get(USERS, params={"filter": f'userName eq "{login}"'}).json()
                assert listed["totalResults"] == 0
                assert_error(client.delete(f"{USERS}/{created['id']}"), 404)
            assert len(set(archived)) == 2
        finally:
            for dn in archived:
                ldap.delete(dn)


def test_archive_without_the_container_is_a_clear_error(
    client: TestClient, sandbox: Sandbox, ldap: Connection
) -> None:
    nowhere = f"ou=nowhere,{sandbox.directory.base_dn}"
    accounts = AccountSettings(delete="archive")
    login = unique("arc")
    created = new_user(client, login)
    devs = group(ldap, sandbox, login)
    try:
        with configured_client(sandbox, accounts=accounts, archive_dn=nowhere) as archiving:
            error = assert_error(archiving.delete(f"{USERS}/{created['id']}"), 500)
            assert nowhere in error["detail"]
            assert archiving.get(f"{USERS}/{created['id']}").status_code == 200
        assert member_uids(ldap, devs) == [login]
    finally:
        delete_quietly(client, created["id"])
        ldap.delete(devs)


# ---- templates and logins


def test_templates_fill_defaults_tracked_as_such(sandbox: Sandbox, ldap: Connection) -> None:
    posix = PosixSettings(gecos="{displayName}", home_directory="/srv/{uid}")
    with configured_client(sandbox, posix=posix) as client:
        login = unique("tpl")
        created = new_user(client, login, displayName="Pat Lee")
        try:
            stored = raw(ldap, created["id"])
            assert stored["gecos"] == ["Pat Lee"]
            assert stored["homeDirectory"] == [f"/srv/{login}"]
            assert stored["loginShell"] == ["/bin/bash"]
            assert stored["cn"] == ["Pat Lee"]
            defaulted = {v.lower() for v in stored["scimDefaulted"]}
            assert {"gecos", "homedirectory", "loginshell", "gidnumber"} <= defaulted
            for name in ("gecos", "homeDirectory", "loginShell", "gidNumber"):
                assert name not in created[POSIX]

            renamed = unique("tpl")
            body = ok(
                patch(
                    client,
                    created["id"],
                    {"op": "replace", "path": "userName", "value": renamed},
                    {"op": "replace", "path": "displayName", "value": "Pat L."},
                )
            )
            assert "homeDirectory" not in body[POSIX]
            stored = raw(ldap, created["id"])
            assert stored["homeDirectory"] == [f"/srv/{login}"]
            assert stored["gecos"] == ["Pat Lee"]
            assert stored["cn"] == ["Pat L."]

            body = ok(
                patch(
                    client,
                    created["id"],
                    {"op": "replace", "path": f"{POSIX}:homeDirectory", "value": "/data/pat"},
                )
            )
            assert body[POSIX]["homeDirectory"] == "/data/pat"
            stored = raw(ldap, created["id"])
            assert stored["homeDirectory"] == ["/data/pat"]
            assert "homedirectory" not in {v.lower() for v in stored["scimDefaulted"]}
        finally:
            delete_quietly(client, created["id"])


@pytest.mark.parametrize(
    "user_name", ["!!!", "@example.com", "Ünïcode@example.com", "x" * 40, "9lives", "a b"]
)
def test_a_user_name_without_a_valid_login_is_refused(
    sandbox: Sandbox, ldap: Connection, user_name: str
) -> None:
    with configured_client(sandbox, posix=PosixSettings(login_policy="strict")) as client:
        error = assert_error(client.post(USERS, json=user_body(user_name)), 400, "invalidValue")
    assert "valid Linux login name" in error["detail"]


def test_a_rename_to_a_user_name_without_a_valid_login_is_refused(
    sandbox: Sandbox, ldap: Connection
) -> None:
    with configured_client(sandbox, posix=PosixSettings(login_policy="strict")) as client:
        created = new_user(client)
        try:
            before = raw(ldap, created["id"])
            response = patch(
                client, created["id"], {"op": "replace", "path": "userName", "value": "!!"}
            )
            assert_error(response, 400, "invalidValue")
            assert raw(ldap, created["id"])["entryCSN"] == before["entryCSN"]
        finally:
            delete_quietly(client, created["id"])


def test_a_login_with_a_trailing_newline_is_refused(sandbox: Sandbox, ldap: Connection) -> None:
    login = unique("nl")
    with configured_client(sandbox, posix=PosixSettings(login_policy="strict")) as client:
        response = client.post(USERS, json=user_body(f"{login}\n"))
        if response.status_code == 201:
            delete_quietly(client, response.json()["id"])
    assert_error(response, 400, "invalidValue")
    assert by_login(ldap, f"{login}\n") is None
