"""Moving off Microsoft's ECMA2Host + Generic LDAP connector: Entra's requests replayed.

The directory is populated as Microsoft's connector populates it (ENTRA.md §4):
raw LDAP adds of inetOrgPerson + posixAccount + shadowAccount entries, ``uid``
the local part of the UPN, ``mail`` the UPN, gidNumber 10000, a ``{SSHA}``
password, and none of this server's markers. The same Entra app is then
pointed at this server. Entra still holds the target ids the connector
returned; for OpenLDAP Microsoft's wizard has the DN (``-dn-``) as anchor, so
those ids are DNs. Entra asks for them, gets 404, and finds each person again
with its matching filter (``userName eq``, or the tutorial's ``mail`` under the
ECMA2Host namespace), then PATCHes, in either dialect.

What must hold: every person is matched and managed, none duplicated (no
second entry, the same uidNumber, gidNumber, home and password), none lost;
an old id reaches nothing (GET, PATCH, PUT and DELETE by it are 404 and
change nothing); disable, enable and delete work on the adopted accounts.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from ldap3 import MODIFY_REPLACE, SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from app.config import UserSettings
from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    CORE,
    ECMA2HOST,
    PATCH_OP,
    USERS,
    assert_error,
    binds,
    by_login,
    configured_client,
    delete_quietly,
    entry,
    uid_number,
    unique,
)

KEPT = ("uidNumber", "gidNumber", "homeDirectory", "loginShell", "userPassword")
CLASSES = ["inetOrgPerson", "posixAccount", "shadowAccount"]
GID = "10000"
DISABLE = [{"op": "replace", "path": "active", "value": False}]


def ssha(password: str) -> str:
    """The ``{SSHA}`` form Microsoft's tutorial shows: SHA-1 of password + salt, then the salt."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


@dataclass(frozen=True)
class Person:
    """An account the connector made, and what Entra knows of it."""

    login: str
    upn: str
    display: str
    surname: str
    dn: str
    password: str

    @property
    def old_id(self) -> str:
        """The target id Entra stored: the connector's anchor, the entry's DN."""
        return self.dn


def connector_entry(ldap: Connection, sandbox: Sandbox, local: str, surname: str) -> Person:
    """One entry exactly as the Generic LDAP connector writes it with the tutorial's mappings."""
    login = local.lower()
    upn = f"{local}@contoso.com"
    dn = f"uid={login},{sandbox.directory.users_dn}"
    password = f"Initial-{unique('pw')}"
    display = f"{local[:1].upper()} {surname}"
    attributes = {
        "uid": login,
        "cn": display,
        "sn": surname,
        "mail": upn,
        "uidNumber": str(uid_number()),
        "gidNumber": GID,
        "homeDirectory": f"/home/{login}",
        "loginShell": "/bin/bash",
        "userPassword": ssha(password),
    }
    assert ldap.add(dn, CLASSES, attributes), ldap.result
    return Person(login, upn, display, surname, dn, password)


@pytest.fixture
def people(ldap: Connection, sandbox: Sandbox) -> Iterator[list[Person]]:
    """Three accounts made by the connector; removed afterwards wherever they went."""
    made = [
        connector_entry(ldap, sandbox, unique("bsimon"), "Simon"),
        connector_entry(ldap, sandbox, unique("alee"), "Lee"),
        connector_entry(ldap, sandbox, unique("cmoreau"), "Moreau"),
    ]
    yield made
    for person in made:
        found = by_login(ldap, person.login)
        if found is not None:
            ldap.delete(found["dn"][0])


def kept(ldap: Connection, dn: str) -> dict[str, list[str]]:
    raw = entry(ldap, dn)
    assert raw is not None, f"{dn} is gone"
    return {name: raw.get(name, []) for name in KEPT}


def holders(ldap: Connection, sandbox: Sandbox, person: Person) -> list[str]:
    """Every entry below the base that is this person: by uid (or a variant of it) or by mail."""
    base = sandbox.directory.base_dn
    login, mail = escape_filter_chars(person.login), escape_filter_chars(person.upn)
    ldap.search(base, f"(|(uid={login}*)(mail={mail}))", SUBTREE, attributes=["1.1"])
    return [str(e["dn"]) for e in ldap.response or [] if e.get("type") == "searchResEntry"]


def listed(client: TestClient, scim_filter: str) -> list[dict[str, Any]]:
    response = client.get(USERS, params={"filter": scim_filter})
    assert response.status_code == 200, response.text
    resources: list[dict[str, Any]] = response.json().get("Resources", [])
    return resources


def send_patch(client: TestClient, user_id: str, operations: list[dict[str, Any]]) -> Any:
    response = client.patch(
        f"{USERS}/{quote(user_id, safe='')}",
        json={"schemas": [PATCH_OP], "Operations": operations},
    )
    return response


def core_operations(person: Person, dialect: str) -> list[dict[str, Any]]:
    """Entra's update of a matched user with the default (core) mappings, in one dialect."""
    work = 'emails[type eq "work"].value'
    if dialect == "legacy":
        return [
            {"op": "Replace", "path": "userName", "value": person.upn},
            {"op": "Replace", "path": "displayName", "value": person.display},
            {"op": "Replace", "path": work, "value": person.upn},
            {"op": "Replace", "path": "name.familyName", "value": person.surname},
            {"op": "Replace", "path": "externalId", "value": person.login},
            {"op": "Replace", "path": "active", "value": "True"},
        ]
    return [
        {"op": "replace", "path": work, "value": person.upn},
        {
            "op": "replace",
            "value": {
                "userName": person.upn,
                "displayName": person.display,
                "name.familyName": person.surname,
                "externalId": person.login,
                "active": True,
            },
        },
    ]


def ecma2host_operations(person: Person, dialect: str, uid_number_now: str) -> list[dict[str, Any]]:
    """Entra's update when the admin kept the tutorial's ECMA2Host mappings (and added userName).

    ``-dn-``, ``objectClass`` and ``userPassword`` are mapped "only during object
    creation" in Microsoft's tutorial, so an update does not carry them.
    """
    values = {
        "uid": person.login,
        "cn": person.display,
        "sn": person.surname,
        "mail": person.upn,
        "homeDirectory": f"/home/{person.login}",
        "gidNumber": GID,
        "uidNumber": uid_number_now,
    }
    if dialect == "legacy":
        return [
            {"op": "Replace", "path": "userName", "value": person.upn},
            *({"op": "Replace", "path": f"{ECMA2HOST}:{k}", "value": v} for k, v in values.items()),
        ]
    return [
        {
            "op": "replace",
            "value": {"userName": person.upn, **{f"{ECMA2HOST}:{k}": v for k, v in values.items()}},
        }
    ]


def old_id_is_gone(client: TestClient, person: Person) -> None:
    """What Entra sees first when it uses the id it stored: 404, a SCIM error."""
    for form in (person.old_id, person.old_id.upper()):
        assert_error(client.get(f"{USERS}/{quote(form, safe='')}"), 404)
    assert_error(client.get(f"{USERS}/{person.old_id}"), 404)


def rematch(client: TestClient, scim_filter: str, person: Person) -> dict[str, Any]:
    """Entra's matching query after the 404 or a reset: exactly one user, the connector's entry."""
    found = listed(client, scim_filter)
    assert len(found) == 1, f"{scim_filter} matched {len(found)} users"
    user = found[0]
    response = client.get(f"{USERS}/{user['id']}")
    assert response.status_code == 200, response.text
    return user


def test_test_connection_still_answers_an_empty_list(client: TestClient) -> None:
    assert listed(client, 'userName eq "7b0d5c1e-5f7e-4a53-9c43-0b1c4f0e7d11"') == []
    assert listed(client, f'{ECMA2HOST}:mail eq "7b0d5c1e-5f7e-4a53-9c43-0b1c4f0e7d11"') == []


def test_an_old_id_reaches_nothing(
    client: TestClient, ldap: Connection, sandbox: Sandbox, people: list[Person]
) -> None:
    """GET, PATCH, PUT and DELETE by the connector's id are 404; the entry stays as it was.

    Should Entra create the user again after the 404, the POST is 409 naming the entry.
    """
    for person in people:
        before = entry(ldap, person.dn)
        old_id_is_gone(client, person)
        off = send_patch(client, person.old_id, DISABLE)
        assert_error(off, 404)
        put = {"schemas": [CORE], "userName": person.upn, "active": False}
        assert_error(client.put(f"{USERS}/{quote(person.old_id, safe='')}", json=put), 404)
        assert_error(client.delete(f"{USERS}/{quote(person.old_id, safe='')}"), 404)
        again = {"schemas": [CORE], "userName": person.upn, "displayName": person.display}
        detail = assert_error(client.post(USERS, json=again), 409, "uniqueness")["detail"]
        assert person.dn in detail, "a create after the 404 names the entry to match"
        assert entry(ldap, person.dn) == before
        assert holders(ldap, sandbox, person) == [person.dn]
        assert binds(sandbox, person.dn, person.password)
    admin = sandbox.directory.bind_dn
    assert_error(client.get(f"{USERS}/{quote(admin, safe='')}"), 404)


@pytest.mark.parametrize("dialect", ["legacy", "compliant"])
def test_every_person_is_matched_by_user_name_and_adopted(
    client: TestClient, ldap: Connection, sandbox: Sandbox, people: list[Person], dialect: str
) -> None:
    """One Entra cycle over everybody: old id 404, ``userName eq`` match, PATCH."""
    before = {p.login: kept(ldap, p.dn) for p in people}
    ids = {}
    for person in people:
        old_id_is_gone(client, person)
        user = rematch(client, f'userName eq "{person.upn}"', person)
        assert user["userName"] == person.login, "unmarked: its userName is its login"
        response = send_patch(client, user["id"], core_operations(person, dialect))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == user["id"]
        assert body["userName"] == person.upn and body["active"] is True
        ids[person.login] = user["id"]
    for person in people:
        raw = entry(ldap, person.dn)
        assert raw is not None, "the entry was renamed or moved"
        assert "scimUser" in raw["objectClass"] and raw["scimUserName"] == [person.upn]
        assert kept(ldap, person.dn) == before[person.login]
        assert binds(sandbox, person.dn, person.password)
        assert holders(ldap, sandbox, person) == [person.dn], "a second entry was made"
        again = listed(client, f'userName eq "{person.upn}"')
        assert [u["id"] for u in again] == [ids[person.login]]
        old_id_is_gone(client, person)


@pytest.mark.parametrize("dialect", ["legacy", "compliant"])
def test_the_tutorials_ecma2host_mappings_keep_working(
    client: TestClient, ldap: Connection, sandbox: Sandbox, people: list[Person], dialect: str
) -> None:
    """Matching on the tutorial's correlation attribute (ECMA2Host ``mail``), updates by name."""
    for person in people:
        before = kept(ldap, person.dn)
        user = rematch(client, f'{ECMA2HOST}:mail eq "{person.upn}"', person)
        operations = ecma2host_operations(person, dialect, before["uidNumber"][0])
        response = send_patch(client, user["id"], operations)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body[ECMA2HOST]["uid"] == person.login
        assert body[ECMA2HOST]["mail"] == person.upn
        assert body[ECMA2HOST]["gidNumber"] == int(GID)
        assert body["userName"] == person.upn
        assert kept(ldap, person.dn) == before
        assert binds(sandbox, person.dn, person.password)
        assert holders(ldap, sandbox, person) == [person.dn]
        assert [u["id"] for u in listed(client, f'userName eq "{person.upn}"')] == [user["id"]]


def test_disable_enable_and_delete_after_the_switch(
    client: TestClient, ldap: Connection, sandbox: Sandbox, people: list[Person]
) -> None:
    person = people[0]
    user = rematch(client, f'userName eq "{person.upn}"', person)
    user_id = user["id"]
    adopted = send_patch(client, user_id, core_operations(person, "legacy"))
    assert adopted.status_code == 200, adopted.text
    before = kept(ldap, person.dn)

    off = send_patch(client, user_id, [{"op": "Replace", "path": "active", "value": "False"}])
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    [still] = listed(client, f'userName eq "{person.upn}"')
    assert still["id"] == user_id and still["active"] is False
    found = by_login(ldap, person.login)
    assert found is not None
    assert not binds(sandbox, found["dn"][0], person.password)

    on = send_patch(client, user_id, [{"op": "replace", "path": "active", "value": True}])
    assert on.status_code == 200, on.text
    assert on.json()["active"] is True
    assert kept(ldap, person.dn) == before
    assert binds(sandbox, person.dn, person.password)

    gone = client.delete(f"{USERS}/{user_id}")
    assert gone.status_code == 204, gone.text
    assert by_login(ldap, person.login) is None
    assert_error(client.get(f"{USERS}/{user_id}"), 404)
    assert listed(client, f'userName eq "{person.upn}"') == []
    for other in people[1:]:
        assert entry(ldap, other.dn) is not None, "another account went with it"


def test_a_create_through_the_old_mappings_lands_beside_them(
    client: TestClient, ldap: Connection, sandbox: Sandbox, people: list[Person]
) -> None:
    """A new hire after the switch, created with the tutorial's mappings (``-dn-`` included)."""
    local = unique("dnew")
    upn = f"{local}@contoso.com"
    dn = f"uid={local},{sandbox.directory.users_dn}"
    body = {
        "schemas": [CORE, ECMA2HOST],
        "userName": upn,
        "active": True,
        ECMA2HOST: {
            "-dn-": dn,
            "uid": local,
            "cn": "D New",
            "sn": "New",
            "mail": upn,
            "homeDirectory": f"/home/{local}",
            "gidNumber": GID,
            "objectClass": CLASSES,
            "userPassword": "Initial-Pa55-word",
        },
    }
    assert listed(client, f'userName eq "{upn}"') == []
    response = client.post(USERS, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    try:
        raw = entry(ldap, created["id"])
        assert raw is not None and raw["dn"] == [dn]
        numbers = {int(kept(ldap, p.dn)["uidNumber"][0]) for p in people}
        assert int(raw["uidNumber"][0]) not in numbers
        assert binds(sandbox, dn, "Initial-Pa55-word")
    finally:
        delete_quietly(client, created["id"])


def test_a_create_naming_a_connector_entry_is_a_conflict(
    client: TestClient, ldap: Connection, sandbox: Sandbox, people: list[Person]
) -> None:
    """When matching misses (a changed UPN), a POST naming the old entry is 409, not a copy."""
    person = people[0]
    before = entry(ldap, person.dn)
    body = {
        "schemas": [CORE, ECMA2HOST],
        "userName": f"{person.login}@fabrikam.com",
        ECMA2HOST: {"-dn-": person.dn, "uid": person.login, "gidNumber": GID, "cn": "X", "sn": "Y"},
    }
    assert_error(client.post(USERS, json=body), 409, "uniqueness")
    assert holders(ldap, sandbox, person) == [person.dn]
    assert entry(ldap, person.dn) == before


def test_adoption_off_leaves_them_to_the_matching_attributes(
    sandbox: Sandbox, ldap: Connection, people: list[Person]
) -> None:
    """With ``users.adopt = "off"`` only a stored value (the mail) finds a connector entry."""
    person = people[0]
    with configured_client(sandbox, users=UserSettings(adopt="off")) as client:
        old_id_is_gone(client, person)
        assert listed(client, f'userName eq "{person.upn}"') == []
        rematch(client, f'emails[type eq "work"].value eq "{person.upn}"', person)


def entry_uuid(ldap: Connection, dn: str) -> str:
    raw = entry(ldap, dn)
    assert raw is not None
    return raw["entryUUID"][0]


def test_an_entry_uuid_anchor_is_this_servers_id(
    client: TestClient, ldap: Connection, sandbox: Sandbox, people: list[Person]
) -> None:
    """A connector set up with entryUUID as its anchor returned ids this server answers."""
    person = people[0]
    before = kept(ldap, person.dn)
    old_id = entry_uuid(ldap, person.dn)
    response = client.get(f"{USERS}/{old_id}")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == old_id
    adopted = send_patch(client, old_id, core_operations(person, "compliant"))
    assert adopted.status_code == 200, adopted.text
    assert kept(ldap, person.dn) == before
    assert holders(ldap, sandbox, person) == [person.dn]


def test_an_entry_the_adopt_filter_excludes_is_out_of_reach(
    sandbox: Sandbox, ldap: Connection, people: list[Person]
) -> None:
    """Not matched by any filter, not by its id: a service account stays the directory's."""
    service = connector_entry(ldap, sandbox, unique("svc"), "Service")
    assert ldap.modify(service.dn, {"gidNumber": [(MODIFY_REPLACE, ["20000"])]}), ldap.result
    try:
        before = entry(ldap, service.dn)
        service_id = entry_uuid(ldap, service.dn)
        users = UserSettings(adopt_filter=f"(&(objectClass=posixAccount)(gidNumber={GID}))")
        with configured_client(sandbox, users=users) as client:
            for scim_filter in (
                f'userName eq "{service.upn}"',
                f'{ECMA2HOST}:mail eq "{service.upn}"',
                f'emails[type eq "work"].value eq "{service.upn}"',
                f'{ECMA2HOST}:uid eq "{service.login}"',
            ):
                assert listed(client, scim_filter) == [], scim_filter
            assert_error(client.get(f"{USERS}/{service_id}"), 404)
            off = send_patch(client, service_id, DISABLE)
            assert_error(off, 404)
            assert_error(client.delete(f"{USERS}/{service_id}"), 404)
            assert entry(ldap, service.dn) == before
            person = people[0]
            rematch(client, f'{ECMA2HOST}:mail eq "{person.upn}"', person)
    finally:
        ldap.delete(service.dn)


def test_the_tutorials_cn_dn_expression_is_refused(client: TestClient, sandbox: Sandbox) -> None:
    """``Join("", "CN=", Word([userPrincipalName], 1, "@"), ",DC=Contoso,DC=lab")``: 400."""
    local = unique("enew")
    body = {
        "schemas": [CORE, ECMA2HOST],
        "userName": f"{local}@contoso.com",
        ECMA2HOST: {"-dn-": f"CN={local},{sandbox.directory.base_dn}", "uid": local},
    }
    detail = assert_error(client.post(USERS, json=body), 400, "invalidValue")["detail"]
    assert "-dn-" in detail
    assert listed(client, f'userName eq "{local}@contoso.com"') == []
