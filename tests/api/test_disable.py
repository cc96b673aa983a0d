"""The disable profile through HTTP: what active false does in the directory, undone exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import MODIFY_REPLACE, Connection

from app.config import AccountSettings, DisableAction, UserSettings
from app.ldap.accounts import HIDDEN_CLASS, LOCKED
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    POSIX,
    USERS,
    assert_error,
    binds,
    configured_client,
    delete_quietly,
    ensure_entry,
    entry,
    new_user,
    patch,
    uid_number,
    unique,
)
from tests.keys import public_key

PASSWORD = "Disable-me-4-real"
KEYS = [f"{public_key('ed25519')} pat@laptop", public_key("ecdsa")]
NEW_KEY = public_key("ed25519", index=1)
SSH_KEYS = f"{POSIX}:sshPublicKeys"
LOGIN_SHELL = f"{POSIX}:loginShell"

CLASSES = UserSettings().object_classes
DEFAULT_STASH = {"pwdAccountLockedTime": [], "shadowExpire": [], "objectClass": CLASSES}

DISABLE_LEGACY = {"op": "Replace", "path": "active", "value": "False"}
ENABLE_COMPLIANT = {"op": "replace", "value": {"active": True}}


def raw(ldap: Connection, user_id: str) -> dict[str, list[str]]:
    found = entry(ldap, user_id)
    assert found is not None
    return found


def stash(values: dict[str, list[str]]) -> dict[str, list[str]]:
    [text] = values["scimStash"]
    parsed: dict[str, list[str]] = json.loads(text)
    return parsed


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def found_by(client: TestClient, condition: str) -> list[str]:
    response = client.get(USERS, params={"filter": condition})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["Resources"]]


def members(ldap: Connection, group_dn: str) -> list[str]:
    found = entry(ldap, group_dn)
    assert found is not None
    return found.get("memberUid", [])


@pytest.fixture
def user(client: TestClient) -> Iterator[dict[str, Any]]:
    created = new_user(client, active=True, password=PASSWORD, displayName="Pat")
    yield created
    delete_quietly(client, created["id"])


@pytest.fixture
def containers(sandbox: Sandbox, ldap: Connection) -> str:
    """ou=disabled and the login group exist; the DN of the login group."""
    base = sandbox.directory.base_dn
    ensure_entry(ldap, f"ou=disabled,{base}", ["top", "organizationalUnit"], ou="disabled")
    group = f"cn=linux-login,{sandbox.directory.groups_dn}"
    ensure_entry(ldap, group, ["top", "posixGroup"], cn="linux-login", gidNumber="4711")
    return group


def profile_client(sandbox: Sandbox, *actions: DisableAction) -> Any:
    return configured_client(sandbox, accounts=AccountSettings(disable=list(actions)))


CHANGING = frozenset({"entryCSN", "modifyTimestamp", "modifiersName"})


def comparable(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """An entry's attributes without those every write changes, values sorted."""
    return {k: sorted(v) for k, v in values.items() if k not in CHANGING}


def scim_view(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("active", "meta")}


PROFILES: list[list[DisableAction]] = [
    ["lock", "expire"],
    ["hide"],
    ["nologin"],
    ["strip-keys"],
    ["move"],
    ["remove-group"],
    ["lock", "expire", "hide", "nologin", "strip-keys", "move", "remove-group"],
]


def nss_sees(ldap: Connection, sandbox: Sandbox, login: str) -> bool:
    """Whether the search every stock NSS client makes, from the base DN, finds the login."""
    ldap.search(
        sandbox.directory.base_dn, f"(&(objectClass=posixAccount)(uid={login}))", attributes=["1.1"]
    )
    return bool(ldap.response)


@pytest.mark.parametrize("actions", PROFILES, ids=["+".join(p) for p in PROFILES])
def test_enable_restores_the_entry_exactly(
    sandbox: Sandbox, ldap: Connection, containers: str, actions: list[DisableAction]
) -> None:
    with profile_client(sandbox, *actions) as client:
        created = new_user(
            client,
            active=True,
            password=PASSWORD,
            displayName="Pat",
            **{POSIX: {"uidNumber": uid_number(), "loginShell": "/bin/zsh", "sshPublicKeys": KEYS}},
        )
        try:
            dn = raw(ldap, created["id"])["dn"][0]
            assert ldap.modify(dn, {"shadowExpire": [(MODIFY_REPLACE, ["20500"])]}), ldap.result
            before = raw(ldap, created["id"])
            login = before["uid"][0]
            shown = client.get(f"{USERS}/{created['id']}").json()
            joins = "remove-group" in actions
            assert (login in members(ldap, containers)) == joins

            disabled = ok(patch(client, created["id"], DISABLE_LEGACY))
            assert disabled["active"] is False
            assert scim_view(disabled) == scim_view(shown)
            fetched = client.get(f"{USERS}/{created['id']}").json()
            assert scim_view(fetched) == scim_view(shown)
            assert comparable(raw(ldap, created["id"])) != comparable(before)
            assert login not in members(ldap, containers)
            assert binds(sandbox, raw(ldap, created["id"])["dn"][0], PASSWORD) == (
                "lock" not in actions
            )

            enabled = ok(patch(client, created["id"], ENABLE_COMPLIANT))
            assert enabled["active"] is True
            assert scim_view(enabled) == scim_view(shown)
            assert comparable(raw(ldap, created["id"])) == comparable(before)
            assert members(ldap, containers).count(login) == joins
            assert binds(sandbox, dn, PASSWORD)
        finally:
            delete_quietly(client, created["id"])


# ---- the default profile: lock + expire + hide


def test_legacy_disable_then_compliant_enable_restores_exactly(
    client: TestClient, ldap: Connection, sandbox: Sandbox, user: dict[str, Any]
) -> None:
    dn = raw(ldap, user["id"])["dn"][0]
    assert ldap.modify(dn, {"shadowExpire": [(MODIFY_REPLACE, ["20500"])]}), ldap.result
    assert binds(sandbox, dn, PASSWORD)
    before = raw(ldap, user["id"])

    body = ok(patch(client, user["id"], DISABLE_LEGACY))
    assert body["active"] is False
    disabled = raw(ldap, user["id"])
    assert disabled["scimActive"] == ["FALSE"]
    assert disabled["pwdAccountLockedTime"] == [LOCKED]
    assert disabled["shadowExpire"] == ["1"]
    assert stash(disabled) == {**DEFAULT_STASH, "shadowExpire": ["20500"]}
    assert not binds(sandbox, dn, PASSWORD)
    login = before["uid"][0]
    assert not nss_sees(ldap, sandbox, login)
    assert set(disabled["objectClass"]) == {*CLASSES, HIDDEN_CLASS} - {
        "posixAccount",
        "shadowAccount",
    }
    for name in ("uidNumber", "gidNumber", "homeDirectory", "loginShell"):
        assert disabled[name] == before[name], name
    number = before["uidNumber"][0]
    assert found_by(client, f"{POSIX}:uidNumber eq {number}") == [user["id"]]

    fetched = client.get(f"{USERS}/{user['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["active"] is False
    assert fetched.json()["displayName"] == "Pat"
    name = user["userName"]
    assert found_by(client, f'active eq false and userName eq "{name}"') == [user["id"]]
    assert found_by(client, f'active eq true and userName eq "{name}"') == []

    body = ok(patch(client, user["id"], ENABLE_COMPLIANT))
    assert body["active"] is True
    enabled = raw(ldap, user["id"])
    assert enabled["scimActive"] == ["TRUE"]
    for name in ("pwdAccountLockedTime", "scimStash"):
        assert name not in enabled
    assert enabled["shadowExpire"] == ["20500"]
    for name in ("dn", "uid", "cn", "displayName", "userPassword", "loginShell", "objectClass"):
        assert enabled[name] == before[name], name
    assert binds(sandbox, dn, PASSWORD)
    assert nss_sees(ldap, sandbox, login)
    assert found_by(client, f'active eq true and userName eq "{user["userName"]}"') == [user["id"]]


def test_enable_removes_what_disable_added(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    ok(patch(client, user["id"], {"op": "replace", "path": "active", "value": False}))
    assert stash(raw(ldap, user["id"])) == DEFAULT_STASH
    ok(patch(client, user["id"], {"op": "Replace", "path": "active", "value": "True"}))
    enabled = raw(ldap, user["id"])
    for name in ("pwdAccountLockedTime", "shadowExpire", "scimStash"):
        assert name not in enabled


def test_disabling_twice_keeps_the_first_stash(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    dn = raw(ldap, user["id"])["dn"][0]
    assert ldap.modify(dn, {"shadowExpire": [(MODIFY_REPLACE, ["20500"])]}), ldap.result
    ok(patch(client, user["id"], DISABLE_LEGACY))
    first = raw(ldap, user["id"])
    ok(patch(client, user["id"], DISABLE_LEGACY))
    ok(patch(client, user["id"], {"op": "replace", "path": "displayName", "value": "Pat L"}))
    again = raw(ldap, user["id"])
    assert again["scimStash"] == first["scimStash"]
    assert again["shadowExpire"] == ["1"]
    assert again["pwdAccountLockedTime"] == [LOCKED]
    ok(patch(client, user["id"], ENABLE_COMPLIANT))
    assert raw(ldap, user["id"])["shadowExpire"] == ["20500"]


def test_a_user_created_inactive_is_disabled(
    client: TestClient, ldap: Connection, sandbox: Sandbox
) -> None:
    created = new_user(client, active=False, password=PASSWORD)
    try:
        assert created["active"] is False
        stored = raw(ldap, created["id"])
        assert stored["pwdAccountLockedTime"] == [LOCKED]
        assert stored["shadowExpire"] == ["1"]
        assert stash(stored) == DEFAULT_STASH
        assert not binds(sandbox, stored["dn"][0], PASSWORD)
        assert not nss_sees(ldap, sandbox, stored["uid"][0])
        ok(patch(client, created["id"], ENABLE_COMPLIANT))
        enabled = raw(ldap, created["id"])
        for name in ("pwdAccountLockedTime", "shadowExpire", "scimStash"):
            assert name not in enabled
        assert binds(sandbox, stored["dn"][0], PASSWORD)
    finally:
        delete_quietly(client, created["id"])


@pytest.mark.parametrize("storage", ["exop", "crypt-sha512"])
def test_a_password_set_while_disabled_keeps_the_lock(
    sandbox: Sandbox, ldap: Connection, storage: str
) -> None:
    """ppolicy removes pwdAccountLockedTime when a password changes."""
    accounts = AccountSettings(password_storage=storage)
    with configured_client(sandbox, accounts=accounts) as client:
        created = new_user(client, active=False, password=PASSWORD)
        try:
            dn = raw(ldap, created["id"])["dn"][0]
            assert raw(ldap, created["id"])["pwdAccountLockedTime"] == [LOCKED]
            assert not binds(sandbox, dn, PASSWORD)
            for value in ("Second-pass-22", "Third-pass-333"):
                ok(
                    patch(
                        client, created["id"], {"op": "replace", "path": "password", "value": value}
                    )
                )
                disabled = raw(ldap, created["id"])
                assert disabled["pwdAccountLockedTime"] == [LOCKED]
                assert stash(disabled) == DEFAULT_STASH
                assert not binds(sandbox, dn, value)
            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            assert "pwdAccountLockedTime" not in raw(ldap, created["id"])
            assert binds(sandbox, dn, "Third-pass-333")

            ok(
                patch(
                    client,
                    created["id"],
                    {"op": "replace", "path": "password", "value": PASSWORD},
                    DISABLE_LEGACY,
                )
            )
            assert raw(ldap, created["id"])["pwdAccountLockedTime"] == [LOCKED]
            assert not binds(sandbox, dn, PASSWORD)
        finally:
            delete_quietly(client, created["id"])


# ---- the other actions, one at a time


def test_nologin(sandbox: Sandbox, ldap: Connection) -> None:
    with profile_client(sandbox, "nologin") as client:
        created = new_user(client, **{POSIX: {"uidNumber": uid_number(), "loginShell": "/bin/zsh"}})
        try:
            body = ok(patch(client, created["id"], DISABLE_LEGACY))
            assert body[POSIX]["loginShell"] == "/bin/zsh"
            disabled = raw(ldap, created["id"])
            assert disabled["loginShell"] == ["/usr/sbin/nologin"]
            assert stash(disabled) == {"loginShell": ["/bin/zsh"]}
            for name in ("pwdAccountLockedTime", "shadowExpire"):
                assert name not in disabled
            assert client.get(f"{USERS}/{created['id']}").json()[POSIX]["loginShell"] == "/bin/zsh"

            body = ok(
                patch(
                    client,
                    created["id"],
                    {"op": "replace", "path": LOGIN_SHELL, "value": "/bin/fish"},
                )
            )
            assert body[POSIX]["loginShell"] == "/bin/fish"
            disabled = raw(ldap, created["id"])
            assert disabled["loginShell"] == ["/usr/sbin/nologin"]
            assert stash(disabled) == {"loginShell": ["/bin/fish"]}

            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            enabled = raw(ldap, created["id"])
            assert enabled["loginShell"] == ["/bin/fish"]
            assert "scimStash" not in enabled
        finally:
            delete_quietly(client, created["id"])


def test_nologin_with_the_default_shell(sandbox: Sandbox, ldap: Connection) -> None:
    with profile_client(sandbox, "nologin") as client:
        created = new_user(client)
        try:
            assert "loginShell" not in created.get(POSIX, {})
            before = raw(ldap, created["id"])
            body = ok(patch(client, created["id"], DISABLE_LEGACY))
            assert "loginShell" not in body[POSIX]
            assert raw(ldap, created["id"])["loginShell"] == ["/usr/sbin/nologin"]
            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            enabled = raw(ldap, created["id"])
            assert enabled["loginShell"] == before["loginShell"] == ["/bin/bash"]
            assert enabled["scimDefaulted"] == before["scimDefaulted"]
        finally:
            delete_quietly(client, created["id"])


def test_strip_keys(sandbox: Sandbox, ldap: Connection) -> None:
    with profile_client(sandbox, "strip-keys") as client:
        created = new_user(client, **{POSIX: {"uidNumber": uid_number(), "sshPublicKeys": KEYS}})
        try:
            body = ok(patch(client, created["id"], DISABLE_LEGACY))
            assert body[POSIX]["sshPublicKeys"] == KEYS
            disabled = raw(ldap, created["id"])
            assert "sshPublicKey" not in disabled
            assert stash(disabled) == {"sshPublicKey": KEYS}
            assert client.get(f"{USERS}/{created['id']}").json()[POSIX]["sshPublicKeys"] == KEYS

            body = ok(
                patch(client, created["id"], {"op": "add", "path": SSH_KEYS, "value": [NEW_KEY]})
            )
            assert body[POSIX]["sshPublicKeys"] == [*KEYS, NEW_KEY]
            disabled = raw(ldap, created["id"])
            assert "sshPublicKey" not in disabled
            assert stash(disabled) == {"sshPublicKey": [*KEYS, NEW_KEY]}

            body = ok(
                patch(
                    client,
                    created["id"],
                    {"op": "remove", "path": f'{SSH_KEYS}[value sw "ecdsa"]'},
                )
            )
            assert body[POSIX]["sshPublicKeys"] == [KEYS[0], NEW_KEY]

            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            enabled = raw(ldap, created["id"])
            assert sorted(enabled["sshPublicKey"]) == sorted([KEYS[0], NEW_KEY])
            assert "scimStash" not in enabled
        finally:
            delete_quietly(client, created["id"])


def test_strip_keys_of_a_user_without_keys(sandbox: Sandbox, ldap: Connection) -> None:
    with profile_client(sandbox, "strip-keys") as client:
        created = new_user(client)
        try:
            ok(patch(client, created["id"], DISABLE_LEGACY))
            assert stash(raw(ldap, created["id"])) == {"sshPublicKey": []}
            body = ok(
                patch(client, created["id"], {"op": "add", "path": SSH_KEYS, "value": NEW_KEY})
            )
            assert body[POSIX]["sshPublicKeys"] == [NEW_KEY]
            assert "sshPublicKey" not in raw(ldap, created["id"])
            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            assert raw(ldap, created["id"])["sshPublicKey"] == [NEW_KEY]
        finally:
            delete_quietly(client, created["id"])


def test_move(sandbox: Sandbox, ldap: Connection, containers: str) -> None:
    people = sandbox.directory.users_dn
    disabled_ou = f"ou=disabled,{sandbox.directory.base_dn}"
    with profile_client(sandbox, "move") as client:
        created = new_user(client, displayName="Mover")
        login = raw(ldap, created["id"])["uid"][0]
        try:
            body = ok(patch(client, created["id"], DISABLE_LEGACY))
            assert body["active"] is False
            disabled = raw(ldap, created["id"])
            assert disabled["dn"] == [f"uid={login},{disabled_ou}"]
            assert entry(ldap, f"uid={login},{people}") is None
            for name in ("pwdAccountLockedTime", "shadowExpire", "scimStash"):
                assert name not in disabled

            fetched = client.get(f"{USERS}/{created['id']}")
            assert fetched.status_code == 200
            assert fetched.json()["active"] is False
            name = created["userName"]
            assert found_by(client, f'userName eq "{name}"') == [created["id"]]
            assert found_by(client, f'active eq false and userName eq "{name}"') == [created["id"]]

            body = ok(
                patch(
                    client,
                    created["id"],
                    {"op": "replace", "path": "displayName", "value": "Moved"},
                )
            )
            assert body["displayName"] == "Moved"
            assert raw(ldap, created["id"])["dn"] == [f"uid={login},{disabled_ou}"]

            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            enabled = raw(ldap, created["id"])
            assert enabled["dn"] == [f"uid={login},{people}"]
            assert enabled["displayName"] == ["Moved"]
            assert entry(ldap, f"uid={login},{disabled_ou}") is None
        finally:
            delete_quietly(client, created["id"])


def test_move_with_a_rename_while_disabled(
    sandbox: Sandbox, ldap: Connection, containers: str
) -> None:
    disabled_ou = f"ou=disabled,{sandbox.directory.base_dn}"
    with profile_client(sandbox, "move") as client:
        created = new_user(client)
        try:
            ok(patch(client, created["id"], DISABLE_LEGACY))
            login = unique("mv")
            body = ok(
                patch(client, created["id"], {"op": "replace", "path": "userName", "value": login})
            )
            assert body["userName"] == login
            assert raw(ldap, created["id"])["dn"] == [f"uid={login},{disabled_ou}"]
            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            assert raw(ldap, created["id"])["dn"] == [f"uid={login},{sandbox.directory.users_dn}"]
        finally:
            delete_quietly(client, created["id"])


def test_move_leaves_an_account_where_it_is_until_disabled(
    sandbox: Sandbox, ldap: Connection, containers: str
) -> None:
    """An account an administrator placed in a sub-container stays there on other changes."""
    staff = f"ou=staff,{sandbox.directory.users_dn}"
    ensure_entry(ldap, staff, ["top", "organizationalUnit"], ou="staff")
    with profile_client(sandbox, "move") as client:
        created = new_user(client)
        try:
            login = raw(ldap, created["id"])["uid"][0]
            assert ldap.modify_dn(
                f"uid={login},{sandbox.directory.users_dn}", f"uid={login}", new_superior=staff
            ), ldap.result
            ok(patch(client, created["id"], {"op": "replace", "path": "displayName", "value": "X"}))
            assert raw(ldap, created["id"])["dn"] == [f"uid={login},{staff}"]
            renamed = unique("st")
            ok(
                patch(
                    client, created["id"], {"op": "replace", "path": "userName", "value": renamed}
                )
            )
            assert raw(ldap, created["id"])["dn"] == [f"uid={renamed},{staff}"]
            ok(patch(client, created["id"], DISABLE_LEGACY))
            disabled_ou = f"ou=disabled,{sandbox.directory.base_dn}"
            assert raw(ldap, created["id"])["dn"] == [f"uid={renamed},{disabled_ou}"]
        finally:
            delete_quietly(client, created["id"])


def test_move_of_a_user_created_inactive(
    sandbox: Sandbox, ldap: Connection, containers: str
) -> None:
    with profile_client(sandbox, "move") as client:
        created = new_user(client, active=False)
        try:
            login = raw(ldap, created["id"])["uid"][0]
            disabled_ou = f"ou=disabled,{sandbox.directory.base_dn}"
            assert raw(ldap, created["id"])["dn"] == [f"uid={login},{disabled_ou}"]
            assert client.get(f"{USERS}/{created['id']}").status_code == 200
            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            assert raw(ldap, created["id"])["dn"] == [f"uid={login},{sandbox.directory.users_dn}"]
        finally:
            delete_quietly(client, created["id"])
        assert entry(ldap, created["id"]) is None


def test_move_without_the_container_is_a_clear_error(sandbox: Sandbox, ldap: Connection) -> None:
    nowhere = f"ou=nowhere,{sandbox.directory.base_dn}"
    accounts = AccountSettings(disable=["move"])
    with configured_client(sandbox, accounts=accounts, disabled_dn=nowhere) as client:
        created = new_user(client)
        try:
            before = raw(ldap, created["id"])
            error = assert_error(patch(client, created["id"], DISABLE_LEGACY), 500)
            assert nowhere in error["detail"]
            assert "does not exist" in error["detail"]
            after = raw(ldap, created["id"])
            assert after["dn"] == before["dn"]
            assert after["entryCSN"] == before["entryCSN"]

            login = unique()
            response = client.post(
                USERS, json={"userName": login, "active": False, POSIX: {"uidNumber": uid_number()}}
            )
            error = assert_error(response, 500)
            assert nowhere in error["detail"]
        finally:
            delete_quietly(client, created["id"])


def test_remove_group(sandbox: Sandbox, ldap: Connection, containers: str) -> None:
    with profile_client(sandbox, "remove-group") as client:
        created = new_user(client)
        login = raw(ldap, created["id"])["uid"][0]
        try:
            assert login in members(ldap, containers)
            body = ok(patch(client, created["id"], DISABLE_LEGACY))
            assert body["active"] is False
            assert login not in members(ldap, containers)
            disabled = raw(ldap, created["id"])
            for name in ("pwdAccountLockedTime", "shadowExpire", "scimStash"):
                assert name not in disabled
            ok(patch(client, created["id"], DISABLE_LEGACY))
            assert login not in members(ldap, containers)

            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            assert members(ldap, containers).count(login) == 1
        finally:
            delete_quietly(client, created["id"])
        assert login not in members(ldap, containers)


def test_remove_group_of_a_user_created_inactive(
    sandbox: Sandbox, ldap: Connection, containers: str
) -> None:
    with profile_client(sandbox, "remove-group") as client:
        created = new_user(client, active=False)
        login = raw(ldap, created["id"])["uid"][0]
        try:
            assert login not in members(ldap, containers)
            ok(patch(client, created["id"], ENABLE_COMPLIANT))
            assert login in members(ldap, containers)
        finally:
            delete_quietly(client, created["id"])


def test_remove_group_without_the_group_is_a_clear_error(
    sandbox: Sandbox, ldap: Connection
) -> None:
    accounts = AccountSettings(disable=["remove-group"], login_group=unique("nogroup"))
    with configured_client(sandbox, accounts=accounts) as client:
        login = unique()
        response = client.post(USERS, json={"userName": login, POSIX: {"uidNumber": uid_number()}})
        error = assert_error(response, 500)
        assert accounts.login_group in error["detail"]
        assert "does not exist" in error["detail"]
        assert entry(ldap, f"uid={login},{sandbox.directory.users_dn}") is None
