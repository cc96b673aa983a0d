"""The write-only password through HTTP: how it is stored, that it binds, that it never leaks."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from ldap3 import BASE, Connection
from passlib.hash import ldap_salted_sha512

from app.config import AccountSettings, PosixSettings
from app.ldap.connection import Session
from app.ldap.errors import raise_for_result
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    USERS,
    assert_error,
    binds,
    by_login,
    configured_client,
    delete_quietly,
    entry,
    patch,
    unique,
    user_body,
)

PASSWORD = "Correct-Horse-7-battery"
OTHER_PASSWORD = "Tr0ub4dor&3-staple"


def loads_module(ldap: Connection, name: str) -> bool:
    """Whether the sandbox's slapd loads a module (the admin may read cn=config)."""
    ldap.search("cn=module{0},cn=config", "(objectClass=*)", BASE, attributes=["olcModuleLoad"])
    loaded = [str(v) for e in ldap.response or [] for v in e["attributes"]["olcModuleLoad"]]
    return any(name in module for module in loaded)


def stored(ldap: Connection, user_id: str) -> dict[str, list[str]]:
    found = entry(ldap, user_id)
    assert found is not None
    return found


def created(response: Response, *secrets: str) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    for secret in secrets:
        assert secret not in response.text
    body: dict[str, Any] = response.json()
    assert "password" not in body
    return body


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test, checked afterwards to hold no password."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for secret in (PASSWORD, OTHER_PASSWORD):
        assert secret not in caplog.text
        assert all(secret not in str(record.args) for record in caplog.records)


@pytest.fixture
def hashed_client(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    accounts = AccountSettings(password_storage=request.param)
    with configured_client(sandbox, accounts=accounts) as client:
        yield client


def test_exop_hashes_and_binds(
    client: TestClient, ldap: Connection, sandbox: Sandbox, quiet: pytest.LogCaptureFixture
) -> None:
    body = created(client.post(USERS, json=user_body(password=PASSWORD)), PASSWORD)
    try:
        raw = stored(ldap, body["id"])
        dn = raw["dn"][0]
        [value] = raw["userPassword"]
        assert value.startswith("{")
        assert PASSWORD not in value
        assert binds(sandbox, dn, PASSWORD)
        assert not binds(sandbox, dn, OTHER_PASSWORD)

        got = client.get(f"{USERS}/{body['id']}", params={"attributes": "password"})
        assert got.status_code == 200
        assert "password" not in got.json()
        listed = client.get(USERS, params={"filter": f'userName eq "{body["userName"]}"'})
        assert PASSWORD not in listed.text
        assert "password" not in listed.json()["Resources"][0]
    finally:
        delete_quietly(client, body["id"])


def test_exop_password_changed_by_patch(
    client: TestClient, ldap: Connection, sandbox: Sandbox, quiet: pytest.LogCaptureFixture
) -> None:
    body = created(client.post(USERS, json=user_body(password=PASSWORD)), PASSWORD)
    try:
        dn = stored(ldap, body["id"])["dn"][0]
        response = patch(
            client,
            body["id"],
            {"op": "replace", "path": "password", "value": OTHER_PASSWORD},
            {"op": "replace", "path": "displayName", "value": "Pat"},
        )
        assert response.status_code == 200, response.text
        assert OTHER_PASSWORD not in response.text
        assert "password" not in response.json()
        assert response.json()["displayName"] == "Pat"
        assert response.headers["etag"] == response.json()["meta"]["version"]
        raw = stored(ldap, body["id"])
        assert raw["userPassword"][0].startswith("{")
        assert raw["entryCSN"][0] in response.headers["etag"]
        assert binds(sandbox, dn, OTHER_PASSWORD)
        assert not binds(sandbox, dn, PASSWORD)

        response = patch(client, body["id"], {"op": "replace", "value": {"password": PASSWORD}})
        assert response.status_code == 200, response.text
        assert binds(sandbox, dn, PASSWORD)
    finally:
        delete_quietly(client, body["id"])


def test_a_user_created_without_a_password_has_none(client: TestClient, ldap: Connection) -> None:
    body = created(client.post(USERS, json=user_body()))
    try:
        assert "userPassword" not in stored(ldap, body["id"])
    finally:
        delete_quietly(client, body["id"])


@pytest.mark.parametrize("hashed_client", ["ssha512"], indirect=True)
def test_ssha512_is_hashed_by_the_server(
    hashed_client: TestClient,
    ldap: Connection,
    sandbox: Sandbox,
    quiet: pytest.LogCaptureFixture,
) -> None:
    """slapd verifies {SSHA512} with its pw-sha2 module, which the sandbox loads."""
    body = created(hashed_client.post(USERS, json=user_body(password=PASSWORD)), PASSWORD)
    try:
        raw = stored(ldap, body["id"])
        [value] = raw["userPassword"]
        assert value.startswith("{SSHA512}")
        assert PASSWORD not in value
        assert ldap_salted_sha512.verify(PASSWORD, value)
        assert loads_module(ldap, "pw-sha2")
        assert binds(sandbox, raw["dn"][0], PASSWORD)
        response = patch(
            hashed_client, body["id"], {"op": "replace", "path": "password", "value": PASSWORD}
        )
        assert response.status_code == 200, response.text
        [again] = stored(ldap, body["id"])["userPassword"]
        assert again.startswith("{SSHA512}")
        assert again != value
    finally:
        delete_quietly(hashed_client, body["id"])


@pytest.mark.parametrize("hashed_client", ["crypt-sha512"], indirect=True)
def test_crypt_sha512_is_hashed_by_the_server_and_binds(
    hashed_client: TestClient,
    ldap: Connection,
    sandbox: Sandbox,
    quiet: pytest.LogCaptureFixture,
) -> None:
    body = created(hashed_client.post(USERS, json=user_body(password=PASSWORD)), PASSWORD)
    try:
        raw = stored(ldap, body["id"])
        dn = raw["dn"][0]
        assert raw["userPassword"][0].startswith("{CRYPT}$6$")
        assert binds(sandbox, dn, PASSWORD)
        assert not binds(sandbox, dn, OTHER_PASSWORD)
        response = patch(
            hashed_client,
            body["id"],
            {"op": "replace", "path": "password", "value": OTHER_PASSWORD},
        )
        assert response.status_code == 200, response.text
        assert OTHER_PASSWORD not in response.text
        assert stored(ldap, body["id"])["userPassword"][0].startswith("{CRYPT}$6$")
        assert binds(sandbox, dn, OTHER_PASSWORD)
        assert not binds(sandbox, dn, PASSWORD)
    finally:
        delete_quietly(hashed_client, body["id"])


def test_random_policy_sets_an_unknown_password(
    sandbox: Sandbox, ldap: Connection, quiet: pytest.LogCaptureFixture
) -> None:
    with configured_client(sandbox, accounts=AccountSettings(password="random")) as client:
        body = created(client.post(USERS, json=user_body(password=PASSWORD)), PASSWORD)
        try:
            raw = stored(ldap, body["id"])
            dn = raw["dn"][0]
            [value] = raw["userPassword"]
            assert value.startswith("{")
            assert not binds(sandbox, dn, PASSWORD)
            response = patch(
                client, body["id"], {"op": "replace", "path": "password", "value": PASSWORD}
            )
            assert response.status_code == 200, response.text
            assert stored(ldap, body["id"])["userPassword"] == [value]
            assert not binds(sandbox, dn, PASSWORD)
        finally:
            delete_quietly(client, body["id"])


def test_none_policy_never_sets_one(
    sandbox: Sandbox, ldap: Connection, quiet: pytest.LogCaptureFixture
) -> None:
    with configured_client(sandbox, accounts=AccountSettings(password="none")) as client:
        body = created(client.post(USERS, json=user_body(password=PASSWORD)), PASSWORD)
        try:
            assert "userPassword" not in stored(ldap, body["id"])
            response = patch(
                client, body["id"], {"op": "replace", "path": "password", "value": PASSWORD}
            )
            assert response.status_code == 200, response.text
            assert "userPassword" not in stored(ldap, body["id"])
        finally:
            delete_quietly(client, body["id"])


@pytest.mark.parametrize("value", [42, ["x"], {"value": "x"}, "a\x00b", "x" * 5000])
def test_a_bad_password_is_refused_without_echo(client: TestClient, value: object) -> None:
    response = client.post(USERS, json=user_body(password=value))
    error = assert_error(response, 400, "invalidValue")
    assert "password" in error["detail"]
    if isinstance(value, str):
        assert value not in response.text


def test_a_lone_surrogate_in_a_password_is_refused(client: TestClient, ldap: Connection) -> None:
    login = unique()
    text = json.dumps(user_body(login, password="ab\ud800cd"))
    assert "\\ud800" in text
    response = client.post(USERS, content=text, headers={"Content-Type": "application/scim+json"})
    assert_error(response, 400, "invalidValue")
    assert by_login(ldap, login) is None


@pytest.fixture
def failing_exop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory refuses the Password Modify operation (a wrong old password: 53)."""

    def refused(self: Session, dn: str, plaintext: str, *, action: str) -> None:
        self.conn.extend.standard.modify_password(
            user=dn, old_password="not-the-old-one", new_password=plaintext
        )
        raise_for_result(self.conn.result, action)

    monkeypatch.setattr(Session, "set_password", refused)


def test_a_refused_password_change_undoes_the_rest(
    sandbox: Sandbox,
    ldap: Connection,
    failing_exop: None,
    quiet: pytest.LogCaptureFixture,
) -> None:
    posix = PosixSettings(gid_strategy="private-group")
    with configured_client(sandbox, posix=posix) as client:
        body = created(client.post(USERS, json=user_body(displayName="Before")))
        try:
            before = stored(ldap, body["id"])
            group = f"cn={before['uid'][0]},{sandbox.directory.groups_dn}"
            assert entry(ldap, group) is not None
            new_name = f"{unique()}@example.com"
            response = patch(
                client,
                body["id"],
                {"op": "replace", "path": "userName", "value": new_name},
                {"op": "replace", "path": "displayName", "value": "After"},
                {"op": "replace", "path": "password", "value": PASSWORD},
            )
            assert_error(response, 500)
            assert PASSWORD not in response.text
            after = stored(ldap, body["id"])
            for name in ("dn", "uid", "displayName", "cn", "scimUserName", "homeDirectory"):
                assert after.get(name) == before.get(name), name
            assert "userPassword" not in after
            assert entry(ldap, group) is not None
            assert client.get(f"{USERS}/{body['id']}").json()["displayName"] == "Before"
        finally:
            delete_quietly(client, body["id"])


def test_a_refused_password_at_creation_leaves_no_account(
    sandbox: Sandbox,
    ldap: Connection,
    failing_exop: None,
    quiet: pytest.LogCaptureFixture,
) -> None:
    posix = PosixSettings(gid_strategy="private-group")
    with configured_client(sandbox, posix=posix) as client:
        login = unique()
        response = client.post(USERS, json=user_body(login, password=PASSWORD))
        assert_error(response, 500)
        assert PASSWORD not in response.text
        assert by_login(ldap, login) is None
        assert entry(ldap, f"cn={login},{sandbox.directory.groups_dn}") is None
        assert created(client.post(USERS, json=user_body(login)))["userName"] == login
        delete_quietly(client, by_login_id(ldap, login))


def by_login_id(ldap: Connection, login: str) -> str:
    found = by_login(ldap, login)
    assert found is not None
    return found["entryUUID"][0]
