"""Adopting accounts made by hand (users.adopt): Entra's matching, the first write, the rest.

The hand-made entries are raw LDAP adds shaped like ENTRA.md §4's ``uid=bsimon``
(inetOrgPerson, posixAccount, shadowAccount, a mail, the POSIX numbers, a
home and a password), without this server's class or attributes. They carry
no externalId: Entra's ``externalId eq`` matching finds them only when
``users.mapping`` maps externalId onto an attribute they hold (it is
``scimExternalId`` by default, which nothing but this server writes), so it
is tested with a mapping onto ``employeeNumber``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.cli import main
from app.config import PosixSettings, UserSettings
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    CORE,
    ENTERPRISE,
    USERS,
    assert_error,
    binds,
    configured_client,
    entry,
    patch,
    uid_number,
    unique,
)

PASSWORD = "Hand-Made-Secret-1"
KEPT = ("uidNumber", "gidNumber", "homeDirectory", "userPassword", "loginShell")


def hand_made(
    ldap: Connection, sandbox: Sandbox, login: str, mail: str | None = None, **extra: Any
) -> str:
    """An account made without this server, as ENTRA.md §4 shows one; its DN."""
    dn = f"uid={login},{sandbox.directory.users_dn}"
    attributes: dict[str, Any] = {
        "uid": login,
        "cn": f"Hand {login}",
        "sn": "Made",
        "uidNumber": str(uid_number()),
        "gidNumber": "4242",
        "homeDirectory": f"/srv/home/{login}",
        "loginShell": "/bin/zsh",
        "userPassword": PASSWORD,
        **extra,
    }
    if mail:
        attributes["mail"] = mail
    assert ldap.add(dn, ["inetOrgPerson", "posixAccount", "shadowAccount"], attributes), ldap.result
    return dn


def found(client: TestClient, scim_filter: str) -> list[dict[str, Any]]:
    response = client.get(USERS, params={"filter": scim_filter})
    assert response.status_code == 200, response.text
    resources: list[dict[str, Any]] = response.json().get("Resources", [])
    return resources


def kept(ldap: Connection, dn: str) -> dict[str, list[str]]:
    raw = entry(ldap, dn)
    assert raw is not None
    return {name: raw.get(name, []) for name in KEPT}


@pytest.fixture
def gina(ldap: Connection, sandbox: Sandbox) -> Iterator[tuple[str, str, str]]:
    """A hand-made account: its login, mail and DN; removed afterwards if still there."""
    login = unique("gina")
    mail = f"{login}@example.com"
    dn = hand_made(ldap, sandbox, login, mail)
    yield login, mail, dn
    ldap.delete(dn)


def test_user_name_eq_finds_a_hand_made_account_by_its_login(
    client: TestClient, gina: tuple[str, str, str], ldap: Connection
) -> None:
    login, mail, _dn = gina
    [user] = found(client, f'userName eq "{mail}"')
    raw = entry(ldap, user["id"])
    assert raw is not None and raw["uid"] == [login]
    assert user["userName"] == login
    assert found(client, f'userName eq "{login}@other.example"')[0]["id"] == user["id"]
    assert all(u["id"] != user["id"] for u in found(client, f'userName ne "{login}"'))


def test_work_email_and_emails_value_find_it(
    client: TestClient, gina: tuple[str, str, str]
) -> None:
    _login, mail, _dn = gina
    [by_work] = found(client, f'emails[type eq "work"].value eq "{mail}"')
    [by_value] = found(client, f'emails.value eq "{mail}"')
    [by_name] = found(client, f'userName eq "{mail}"')
    assert by_work["id"] == by_value["id"] == by_name["id"]


def test_external_id_eq_finds_it_through_a_mapped_attribute(
    sandbox: Sandbox, ldap: Connection
) -> None:
    login = unique("emp")
    dn = hand_made(ldap, sandbox, login, employeeNumber="E-77")
    try:
        users = UserSettings(
            mapping={"externalId": "employeeNumber", f"{ENTERPRISE}:employeeNumber": None}
        )
        with configured_client(sandbox, users=users) as client:
            [user] = found(client, 'externalId eq "E-77"')
            assert user["userName"] == login
            assert user["externalId"] == "E-77"
    finally:
        ldap.delete(dn)


def test_adoption_off_matches_by_stored_values_only(
    sandbox: Sandbox, gina: tuple[str, str, str]
) -> None:
    login, mail, _dn = gina
    with configured_client(sandbox, users=UserSettings(adopt="off")) as client:
        assert found(client, f'userName eq "{mail}"') == []
        assert len(found(client, f'emails.value eq "{mail}"')) == 1
        assert len(found(client, f'userName eq "{login}"')) == 1


def test_adopt_filter_limits_what_is_matched(sandbox: Sandbox, gina: tuple[str, str, str]) -> None:
    _login, mail, _dn = gina
    users = UserSettings(adopt_filter="(&(objectClass=posixAccount)(gidNumber=1))")
    with configured_client(sandbox, users=users) as client:
        assert found(client, f'userName eq "{mail}"') == []


def test_a_marked_account_is_never_matched_by_a_derived_login(client: TestClient) -> None:
    login = unique("m")
    response = client.post(
        USERS, json={"schemas": [CORE], "userName": login, POSIX_EXT: {"uidNumber": uid_number()}}
    )
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    try:
        assert found(client, f'userName eq "{login}@example.com"') == []
        assert len(found(client, f'userName eq "{login}"')) == 1
    finally:
        client.delete(f"{USERS}/{user_id}")


POSIX_EXT = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"


def test_first_patch_adopts_and_keeps_the_numbers_home_and_password(
    client: TestClient, sandbox: Sandbox, ldap: Connection, gina: tuple[str, str, str]
) -> None:
    _login, mail, dn = gina
    before = kept(ldap, dn)
    [user] = found(client, f'userName eq "{mail}"')
    response = patch(
        client,
        user["id"],
        {"op": "replace", "path": "userName", "value": mail},
        {"op": "replace", "path": "displayName", "value": "Gina Adopted"},
        {"op": "replace", "path": "active", "value": True},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["userName"] == mail
    assert body["id"] == user["id"]
    raw = entry(ldap, dn)
    assert raw is not None, "the entry was renamed"
    assert "scimUser" in raw["objectClass"]
    assert raw["scimUserName"] == [mail]
    assert kept(ldap, dn) == before
    assert binds(sandbox, dn, PASSWORD)
    [again] = found(client, f'userName eq "{mail}"')
    assert again["id"] == user["id"]
    assert client.get(f"{USERS}/{user['id']}").json()["userName"] == mail


def test_an_adopted_account_disables_enables_and_deletes(
    client: TestClient, sandbox: Sandbox, ldap: Connection, gina: tuple[str, str, str]
) -> None:
    _login, mail, dn = gina
    [user] = found(client, f'userName eq "{mail}"')
    user_id = user["id"]
    adopted = patch(client, user_id, {"op": "replace", "path": "userName", "value": mail})
    assert adopted.status_code == 200, adopted.text
    before = kept(ldap, dn)

    off = patch(client, user_id, {"op": "replace", "path": "active", "value": False})
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert not binds(sandbox, dn, PASSWORD)
    assert found(client, f'userName eq "{mail}"')[0]["active"] is False

    on = patch(client, user_id, {"op": "replace", "path": "active", "value": True})
    assert on.status_code == 200, on.text
    assert on.json()["active"] is True
    assert kept(ldap, dn) == before
    assert binds(sandbox, dn, PASSWORD)

    gone = client.delete(f"{USERS}/{user_id}")
    assert gone.status_code == 204, gone.text
    assert entry(ldap, dn) is None
    assert client.get(f"{USERS}/{user_id}").status_code == 404


def test_put_adopts_too(client: TestClient, ldap: Connection, gina: tuple[str, str, str]) -> None:
    _login, mail, dn = gina
    before = kept(ldap, dn)
    [user] = found(client, f'userName eq "{mail}"')
    body = {
        "schemas": [CORE],
        "userName": mail,
        "displayName": "Gina Put",
        "emails": [{"type": "work", "value": mail, "primary": True}],
    }
    response = client.put(f"{USERS}/{user['id']}", json=body)
    assert response.status_code == 200, response.text
    raw = entry(ldap, dn)
    assert raw is not None and raw["scimUserName"] == [mail]
    assert kept(ldap, dn) == before


def test_post_of_the_user_name_is_409_naming_the_account(
    client: TestClient, ldap: Connection, gina: tuple[str, str, str]
) -> None:
    login, mail, dn = gina
    response = client.post(
        USERS, json={"schemas": [CORE], "userName": mail, POSIX_EXT: {"uidNumber": uid_number()}}
    )
    detail = assert_error(response, 409, "uniqueness")["detail"]
    assert dn in detail and "adopted by matching" in detail
    ldap.search(dn.split(",", 1)[1], f"(uid={login}-*)", attributes=["1.1"])
    assert not ldap.response, "a second account was made beside the hand-made one"


def test_post_with_adoption_off_takes_another_login(
    sandbox: Sandbox, ldap: Connection, gina: tuple[str, str, str]
) -> None:
    login, mail, _dn = gina
    with configured_client(sandbox, users=UserSettings(adopt="off")) as client:
        response = client.post(
            USERS,
            json={"schemas": [CORE], "userName": mail, POSIX_EXT: {"uidNumber": uid_number()}},
        )
        assert response.status_code == 201, response.text
        try:
            raw = entry(ldap, response.json()["id"])
            assert raw is not None and raw["uid"][0].startswith(f"{login}-")
        finally:
            client.delete(f"{USERS}/{response.json()['id']}")


def test_adoption_report(sandbox: Sandbox, ldap: Connection, tmp_path: Path) -> None:
    people = sandbox.directory.users_dn
    tag = uuid.uuid4().hex[:8]
    alone = f"rep{tag}a"
    twin_one, twin_two = f"rep{tag}b", f"rep{tag}c"
    by_login = f"rep{tag}d"
    shared = f"shared{tag}@example.com"
    claimed = f"{by_login}@example.com"
    dns = [
        hand_made(ldap, sandbox, alone, f"{alone}@example.com"),
        hand_made(ldap, sandbox, twin_one, shared),
        hand_made(ldap, sandbox, twin_two, shared),
        hand_made(ldap, sandbox, by_login),
        hand_made(ldap, sandbox, f"rep{tag}e", claimed),
    ]
    plain = f"uid=rep{tag}f,{people}"
    assert ldap.add(plain, ["inetOrgPerson"], {"uid": f"rep{tag}f", "cn": "x", "sn": "y"})
    dns.append(plain)
    ahead = 400_000 + int(tag, 16) % 100_000
    high = f"rep{tag}g"
    dns.append(hand_made(ldap, sandbox, high, uidNumber=str(ahead)))
    config = tmp_path / "scim-ldap.toml"
    settings = sandbox.directory.ldap_settings()
    config.write_text(
        "[ldap]\n"
        f'urls = ["{settings.urls[0]}"]\n'
        f'bind_dn = "{settings.bind_dn}"\n'
        f'bind_password = "{settings.bind_password.get_secret_value()}"\n'
        f'base_dn = "{settings.base_dn}"\n'
        "[posix]\n"
        "uid_range = [100000, 520000]\n",
        encoding="utf-8",
    )
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["adoption-report", "--config", str(config)]) == 0
        lines = out.getvalue().splitlines()
        mine = [line for line in lines if tag in line]
        assert (
            f'adoptable: uid={alone},{people} matched by login "{alone}" '
            f'(userName eq "{alone}@..."), mail "{alone}@example.com" (emails.value eq)'
        ) in mine
        assert (
            f'conflict: mail "{shared}" is held by 2 entries: '
            f"uid={twin_one},{people}, uid={twin_two},{people}"
        ) in mine
        assert (
            f'conflict: userName "{claimed}" would claim uid={by_login},{people} by login '
            f'"{by_login}" and uid=rep{tag}e,{people} by mail'
        ) in mine
        assert f"missing uidNumber, gidNumber, homeDirectory: {plain} cannot be adopted" in mine
        assert any(
            line.startswith(f"uidNumber {ahead} of uid={high},{people}: inside posix.uid_range")
            for line in mine
        )
    finally:
        for dn in dns:
            ldap.delete(dn)


def test_post_under_strict_names_the_account_to_adopt(
    sandbox: Sandbox, gina: tuple[str, str, str]
) -> None:
    _login, mail, dn = gina
    with configured_client(sandbox, posix=PosixSettings(login_policy="strict")) as client:
        response = client.post(
            USERS,
            json={"schemas": [CORE], "userName": mail, POSIX_EXT: {"uidNumber": uid_number()}},
        )
        detail = assert_error(response, 409, "uniqueness")["detail"]
        assert dn in detail and "adopted by matching" in detail
