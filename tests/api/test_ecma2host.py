"""Microsoft's Linux tutorial replayed through the ECMA2Host namespace (ENTRA.md §4).

An administrator moving off Microsoft's ECMA2Host + Generic LDAP connector
keeps the attribute mappings of Microsoft's tutorial: raw LDAP names under
``urn:ietf:params:scim:schemas:extension:ECMA2Host:2.0:User``. The entry
that lands must be the tutorial's: the ``uid`` sent is the login and the
RDN, ``cn`` and ``sn`` are stored as sent, ``userPassword`` is an initial
password the directory hashes, ``objectClass`` names the classes the entry
has, and the uidNumber Entra cannot allocate is allocated here.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection, Server

from app.ldap.sandbox import Sandbox
from tests.api.helpers import (
    CORE,
    ECMA2HOST,
    PATCH_OP,
    USERS,
    assert_error,
    delete_quietly,
    entry,
    unique,
)

TUTORIAL_CLASSES = ["inetOrgPerson", "posixAccount", "shadowAccount"]


def tutorial_body(local: str, display: str, surname: str, password: str) -> dict[str, Any]:
    """What Entra sends with the tutorial's mappings for the user ``local@contoso.com``.

    ``uid`` = lower-cased local part of the UPN, ``homeDirectory`` = /home/<uid>,
    ``gidNumber`` = 10000, ``cn`` = displayName, ``sn`` = surname, ``mail`` = UPN,
    ``objectClass`` = the three POSIX account classes, ``userPassword`` = a random string.
    """
    upn = f"{local}@contoso.com"
    return {
        "schemas": [CORE, ECMA2HOST],
        "externalId": local,
        "userName": upn,
        "active": True,
        "displayName": display,
        ECMA2HOST: {
            "uid": local.lower(),
            "homeDirectory": f"/home/{local.lower()}",
            "gidNumber": "10000",
            "cn": display,
            "sn": surname,
            "mail": upn,
            "objectClass": TUTORIAL_CLASSES,
            "userPassword": password,
        },
    }


def test_the_tutorial_entry_is_what_lands(
    client: TestClient, ldap: Connection, sandbox: Sandbox
) -> None:
    local = unique("bsimon")
    password = secrets.token_urlsafe(18)
    response = client.post(USERS, json=tutorial_body(local, "B Simon", "Simon", password))
    assert response.status_code == 201, response.text
    created = response.json()
    try:
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["dn"] == [f"uid={local},ou=people,{sandbox.directory.base_dn}"]
        assert set(TUTORIAL_CLASSES) <= set(raw["objectClass"])
        tutorial = {
            "uid": [local],
            "cn": ["B Simon"],
            "sn": ["Simon"],
            "mail": [f"{local}@contoso.com"],
            "gidNumber": ["10000"],
            "homeDirectory": [f"/home/{local}"],
            "loginShell": ["/bin/bash"],
        }
        assert {name: raw.get(name) for name in tutorial} == tutorial
        assert int(raw["uidNumber"][0]) >= 10000, "allocated: Entra cannot allocate one"
        stored = [str(v) for v in raw["userPassword"]]
        assert len(stored) == 1 and password not in stored[0]
        bound = Connection(Server(sandbox.directory.url), raw["dn"][0], password)
        assert bound.bind(), "the initial password is the account's password"
        bound.unbind()
        answered = created[ECMA2HOST]
        assert answered == {
            "uid": local,
            "homeDirectory": f"/home/{local}",
            "gidNumber": 10000,
            "cn": "B Simon",
            "sn": "Simon",
            "mail": f"{local}@contoso.com",
        }
        assert created["emails"] == [{"type": "work", "value": f"{local}@contoso.com"}]
        assert created["name"] == {"familyName": "Simon"}
        assert password not in response.text
    finally:
        delete_quietly(client, created["id"])


def test_tutorial_updates_by_patch(client: TestClient, ldap: Connection) -> None:
    local = unique("bsimon")
    created = client.post(USERS, json=tutorial_body(local, "B Simon", "Simon", "Pa55-word!")).json()
    try:
        operations = [
            {"op": "Replace", "path": f"{ECMA2HOST}:sn", "value": "Simons"},
            {"op": "Replace", "path": f"{ECMA2HOST}:cn", "value": "B Simons"},
            {"op": "Replace", "path": "displayName", "value": "B Simons"},
        ]
        response = client.patch(
            f"{USERS}/{created['id']}", json={"schemas": [PATCH_OP], "Operations": operations}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body[ECMA2HOST]["sn"] == "Simons" and body["name"]["familyName"] == "Simons"
        assert body[ECMA2HOST]["cn"] == "B Simons"
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["sn"] == ["Simons"] and raw["cn"] == ["B Simons"]
        rename = [{"op": "Replace", "path": f"{ECMA2HOST}:uid", "value": f"{local}x"}]
        response = client.patch(
            f"{USERS}/{created['id']}", json={"schemas": [PATCH_OP], "Operations": rename}
        )
        assert response.status_code == 200, response.text
        assert response.json()[ECMA2HOST]["uid"] == f"{local}x"
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["uid"] == [f"{local}x"], "a uid change renames the entry, keeping its id"
        found = client.get(USERS, params={"filter": f'userName eq "{local}@contoso.com"'})
        assert [r["id"] for r in found.json()["Resources"]] == [created["id"]]
    finally:
        delete_quietly(client, created["id"])


def test_a_taken_uid_is_a_conflict_not_a_variant(client: TestClient) -> None:
    local = unique("bsimon")
    first = client.post(USERS, json=tutorial_body(local, "B Simon", "Simon", "Pa55-word!")).json()
    try:
        again = tutorial_body(local, "B Simon", "Simon", "Pa55-word!")
        again["userName"] = f"{local}@fabrikam.com"
        assert_error(client.post(USERS, json=again), 409, "uniqueness")
    finally:
        delete_quietly(client, first["id"])


@pytest.mark.parametrize("uid", ["B Simon", "1bsimon", "bsimon\n", "x" * 300])
def test_a_uid_the_login_policy_refuses(client: TestClient, uid: str) -> None:
    body = tutorial_body(unique("bsimon"), "B Simon", "Simon", "Pa55-word!")
    body[ECMA2HOST]["uid"] = uid
    assert_error(client.post(USERS, json=body), 400, "invalidValue")
