"""SSH public keys through HTTP: sshPublicKeys <-> sshPublicKey values, checked in the directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import MODIFY_DELETE, Connection

from tests.api.helpers import (
    POSIX,
    USERS,
    assert_error,
    delete_quietly,
    entry,
    new_user,
    patch,
    uid_number,
    unique,
    user_body,
)
from tests.keys import blob, fields, public_key, rsa_key, sk_key

KEYS = f"{POSIX}:sshPublicKeys"
ED25519 = public_key("ed25519")
OTHER = public_key("ed25519", index=1)
ECDSA = public_key("ecdsa")
RSA = public_key("rsa", 2048)
P384_POINT = fields(public_key("ecdsa", 384))[2]


def raw(ldap: Connection, user_id: str) -> dict[str, list[str]]:
    found = entry(ldap, user_id)
    assert found is not None
    return found


def keys_of(body: dict[str, Any]) -> list[str] | None:
    value: list[str] | None = body.get(POSIX, {}).get("sshPublicKeys")
    return value


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def user(client: TestClient) -> Iterator[dict[str, Any]]:
    created = new_user(
        client, **{POSIX: {"uidNumber": uid_number(), "sshPublicKeys": [f"{ED25519} a"]}}
    )
    yield created
    delete_quietly(client, created["id"])


def test_fido_keys_are_stored(client: TestClient, ldap: Connection) -> None:
    sent = [f"{sk_key('ed25519')} pat@yubikey", sk_key("ecdsa")]
    created = new_user(client, **{POSIX: {"uidNumber": uid_number(), "sshPublicKeys": sent}})
    try:
        assert keys_of(created) == sent
        assert sorted(raw(ldap, created["id"])["sshPublicKey"]) == sorted(sent)
    finally:
        delete_quietly(client, created["id"])


def test_create_with_a_list_of_keys(client: TestClient, ldap: Connection) -> None:
    sent = [f"{ED25519} pat@laptop", RSA, f"{ECDSA} pat@phone"]
    created = new_user(client, **{POSIX: {"uidNumber": uid_number(), "sshPublicKeys": sent}})
    try:
        assert keys_of(created) == sent
        stored = raw(ldap, created["id"])
        assert sorted(stored["sshPublicKey"]) == sorted(sent)
        assert "ldapPublicKey" in stored["objectClass"]
        assert keys_of(client.get(f"{USERS}/{created['id']}").json()) == sent
    finally:
        delete_quietly(client, created["id"])


def test_create_with_one_string_of_several_lines(client: TestClient, ldap: Connection) -> None:
    text = f"{ED25519} one\r\n\n{RSA} two\n"
    created = new_user(client, **{POSIX: {"uidNumber": uid_number(), "sshPublicKeys": text}})
    try:
        assert keys_of(created) == [f"{ED25519} one", f"{RSA} two"]
        assert sorted(raw(ldap, created["id"])["sshPublicKey"]) == sorted(keys_of(created) or [])
    finally:
        delete_quietly(client, created["id"])


def test_a_user_without_keys_has_no_attribute(client: TestClient, ldap: Connection) -> None:
    created = new_user(client, **{POSIX: {"uidNumber": uid_number(), "sshPublicKeys": []}})
    try:
        assert keys_of(created) is None
        assert "sshPublicKey" not in raw(ldap, created["id"])
    finally:
        delete_quietly(client, created["id"])


BAD_KEYS = [
    pytest.param(f"ssh-dss {ED25519.split()[1]}", "unknown key type", id="unknown-type"),
    pytest.param(f'command="x" {ED25519}', "option prefix", id="option-prefix"),
    pytest.param("ssh-ed25519 AAAA$$$$ pat", "not valid base64", id="bad-base64"),
    pytest.param(f"ssh-rsa {ED25519.split()[1]}", "not a ssh-rsa key", id="type-mismatch"),
    pytest.param(f"ssh-ed25519 {blob(b'ssh-ed25519', b'12345')}", "32 bytes", id="5-byte-ed25519"),
    pytest.param(
        f"ecdsa-sha2-nistp256 {blob(b'ecdsa-sha2-nistp256', b'nistp256', P384_POINT)}",
        "not a well-formed ecdsa-sha2-nistp256 key",
        id="p384-point-as-p256",
    ),
    pytest.param(f"{ED25519}AAAA", "unparsed data", id="trailing-data"),
    pytest.param(public_key("rsa", 1024), "1024-bit RSA key", id="short-rsa"),
    pytest.param(rsa_key(2047), "2047-bit RSA key", id="2047-bit-rsa"),
    pytest.param(f"{ED25519} pat\x1b[2J", "control characters", id="control-characters"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_KEYS)
def test_create_with_a_bad_key_is_refused(
    client: TestClient, ldap: Connection, bad: str, reason: str
) -> None:
    login = unique()
    body = user_body(login, **{POSIX: {"uidNumber": uid_number(), "sshPublicKeys": [RSA, bad]}})
    error = assert_error(client.post(USERS, json=body), 400, "invalidValue")
    assert reason in error["detail"]
    assert "SSH key 2 (" in error["detail"]
    assert entry(ldap, f"uid={login},ou=people,dc=example,dc=org") is None


@pytest.mark.parametrize(("bad", "reason"), BAD_KEYS)
def test_patch_with_a_bad_key_changes_nothing(
    client: TestClient, ldap: Connection, user: dict[str, Any], bad: str, reason: str
) -> None:
    before = raw(ldap, user["id"])
    response = patch(client, user["id"], {"op": "add", "path": KEYS, "value": [OTHER, bad]})
    error = assert_error(response, 400, "invalidValue")
    assert reason in error["detail"]
    assert "SSH key 2 (" in error["detail"]
    after = raw(ldap, user["id"])
    assert after["sshPublicKey"] == before["sshPublicKey"] == [f"{ED25519} a"]
    assert after["entryCSN"] == before["entryCSN"]


def test_patch_add_appends_without_duplicates(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(
        patch(
            client,
            user["id"],
            {"op": "add", "path": KEYS, "value": [f"{ED25519} again", RSA, RSA]},
        )
    )
    assert keys_of(body) == [f"{ED25519} a", RSA]
    body = ok(patch(client, user["id"], {"op": "add", "path": KEYS, "value": f"{OTHER} b"}))
    assert keys_of(body) == [f"{ED25519} a", RSA, f"{OTHER} b"]
    assert sorted(raw(ldap, user["id"])["sshPublicKey"]) == sorted(keys_of(body) or [])


def test_path_less_add_appends_too(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "add", "value": {KEYS: [OTHER]}}))
    assert keys_of(body) == [f"{ED25519} a", OTHER]
    assert sorted(raw(ldap, user["id"])["sshPublicKey"]) == sorted([f"{ED25519} a", OTHER])


def test_patch_remove_by_value_ignores_the_comment(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    ok(patch(client, user["id"], {"op": "add", "path": KEYS, "value": [RSA, ECDSA]}))
    body = ok(
        patch(client, user["id"], {"op": "remove", "path": KEYS, "value": [f"{ED25519} other"]})
    )
    assert keys_of(body) == [RSA, ECDSA]
    assert sorted(raw(ldap, user["id"])["sshPublicKey"]) == sorted([RSA, ECDSA])
    body = ok(patch(client, user["id"], {"op": "remove", "path": KEYS, "value": [OTHER]}))
    assert keys_of(body) == [RSA, ECDSA]


def test_patch_remove_by_filter(client: TestClient, ldap: Connection, user: dict[str, Any]) -> None:
    ok(patch(client, user["id"], {"op": "add", "path": KEYS, "value": [RSA, ECDSA]}))
    body = ok(patch(client, user["id"], {"op": "remove", "path": f'{KEYS}[value sw "ssh-rsa"]'}))
    assert keys_of(body) == [f"{ED25519} a", ECDSA]
    assert sorted(raw(ldap, user["id"])["sshPublicKey"]) == sorted([f"{ED25519} a", ECDSA])


def test_patch_replace_and_remove_all(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    body = ok(patch(client, user["id"], {"op": "replace", "path": KEYS, "value": [RSA, OTHER]}))
    assert keys_of(body) == [RSA, OTHER]
    assert sorted(raw(ldap, user["id"])["sshPublicKey"]) == sorted([RSA, OTHER])
    body = ok(patch(client, user["id"], {"op": "remove", "path": KEYS}))
    assert keys_of(body) is None
    assert "sshPublicKey" not in raw(ldap, user["id"])


def test_keys_added_to_an_entry_without_the_object_class(
    client: TestClient, ldap: Connection, user: dict[str, Any]
) -> None:
    dn = raw(ldap, user["id"])["dn"][0]
    assert ldap.modify(
        dn,
        {
            "sshPublicKey": [(MODIFY_DELETE, [])],
            "objectClass": [(MODIFY_DELETE, ["ldapPublicKey"])],
        },
    ), ldap.result
    assert "ldapPublicKey" not in raw(ldap, user["id"])["objectClass"]
    body = ok(patch(client, user["id"], {"op": "add", "path": KEYS, "value": [RSA]}))
    assert keys_of(body) == [RSA]
    stored = raw(ldap, user["id"])
    assert stored["sshPublicKey"] == [RSA]
    assert "ldapPublicKey" in stored["objectClass"]


def test_a_lone_surrogate_in_a_comment_is_refused(client: TestClient, ldap: Connection) -> None:
    login = unique()
    text = (
        f'{{"userName": "{login}", "{POSIX}": {{"uidNumber": {uid_number()}, '
        f'"sshPublicKeys": ["{ED25519} pat\\ud800"]}}}}'
    )
    response = client.post(USERS, content=text, headers={"Content-Type": "application/scim+json"})
    assert "control characters" in assert_error(response, 400, "invalidValue")["detail"]
    assert entry(ldap, f"uid={login},ou=people,dc=example,dc=org") is None
