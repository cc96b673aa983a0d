"""Never refused for an attribute name: unknown attributes are accepted, not stored, named once.

400 stays for what is really wrong: a value of the wrong type for a stored
attribute, a write to a read-only attribute, a PATCH path that does not parse.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import (
    CORE,
    ENTERPRISE,
    PATCH_OP,
    POSIX,
    USERS,
    assert_error,
    delete_quietly,
    new_user,
    unique,
)

SECRET_LOOKING = "value-never-logged-7f3a"


def rich_unknowns(manager_id: str) -> dict[str, Any]:
    return {
        "department": None,
        "manager": None,
        "adreses": [{"streetAddress": SECRET_LOOKING}],
        "nickName": "Babs",
        "NoSuchThing": {"Deep": {"Deeper": SECRET_LOOKING}},
        "roles": [{"value": "admin", "primary": "True"}],
        "urn:ietf:params:scim:schemas:extension:Acme:2.0:User": {"badge": SECRET_LOOKING},
        "urn:example:other:vendor": {"x": 1},
        ENTERPRISE: {
            "costCenter": "CC-1",
            "Manager": {"Value": manager_id},
            "department": "Dev",
            "notInTheSchema": SECRET_LOOKING,
        },
        POSIX: {"loginShell": "/bin/zsh", "nope": SECRET_LOOKING},
    }


@pytest.fixture
def manager(client: TestClient) -> Any:
    made = new_user(client)
    yield made
    delete_quietly(client, made["id"])


def test_post_and_put_accept_what_they_do_not_store(
    client: TestClient, manager: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.scim.unstored")
    body = {
        "schemas": [CORE, ENTERPRISE],
        "userName": f"{unique()}@example.com",
        **rich_unknowns(manager["id"]),
    }
    created = client.post(USERS, json=body)
    assert created.status_code == 201, created.text
    user = created.json()
    try:
        assert user[ENTERPRISE]["department"] == "Dev"
        assert user[ENTERPRISE]["manager"]["value"] == manager["id"]
        assert set(user[ENTERPRISE]) == {"department", "manager", "costCenter"}
        assert user[POSIX]["loginShell"] == "/bin/zsh"
        for name in ("adreses", "NoSuchThing"):
            assert name not in user
        assert user["nickName"] == body["nickName"]
        again = {**body, "title": "Lead"}
        again[POSIX] = {**body[POSIX], "uidNumber": user[POSIX]["uidNumber"]}
        replaced = client.put(f"{USERS}/{user['id']}", json=again)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["title"] == "Lead"
    finally:
        delete_quietly(client, user["id"])
    logged = [r.getMessage() for r in caplog.records if r.name == "app.scim.unstored"]
    assert all(SECRET_LOOKING not in message for message in logged)
    assert all(message.count("(named once)") == 1 for message in logged)
    names = " ".join(logged)
    assert "adreses" in names


def test_patch_accepts_what_it_does_not_store(client: TestClient, manager: dict[str, Any]) -> None:
    user = new_user(client)
    try:
        for operations in (
            [{"op": "Add", "path": "nickName", "value": "Babs"}],
            [{"op": "replace", "path": "adreses", "value": [{"x": 1}]}],
            [{"op": "remove", "path": "noSuchAttribute"}],
            [{"op": "add", "path": f"{ENTERPRISE}:costCenter", "value": "CC-9"}],
            [{"op": "add", "path": f"{POSIX}:nope", "value": "1"}],
            [
                {
                    "op": "add",
                    "path": "urn:ietf:params:scim:schemas:extension:Acme:2.0:User:badge",
                    "value": "7",
                }
            ],
            [{"op": "add", "path": 'roles[primary eq "True"].value', "value": "admin"}],
            [{"op": "replace", "value": rich_unknowns(manager["id"])}],
            [{"op": "replace", "value": {"name.middleName": "Q", "title": "Boss"}}],
        ):
            response = client.patch(
                f"{USERS}/{user['id']}", json={"schemas": [PATCH_OP], "Operations": operations}
            )
            assert response.status_code == 200, (operations, response.text)
        final = client.get(f"{USERS}/{user['id']}").json()
        assert final["title"] == "Boss"
        assert final[ENTERPRISE]["manager"]["value"] == manager["id"]
    finally:
        delete_quietly(client, user["id"])


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "replace", "path": f"{POSIX}:uidNumber", "value": "not a number"}, "invalidValue"),
        ({"op": "replace", "path": "active", "value": "perhaps"}, "invalidValue"),
        ({"op": "replace", "path": "id", "value": "x"}, "mutability"),
        ({"op": "replace", "path": "title[", "value": "x"}, "invalidPath"),
    ],
)
def test_what_is_really_wrong_is_still_400(
    client: TestClient, operation: dict[str, Any], scim_type: str
) -> None:
    user = new_user(client)
    try:
        response = client.patch(
            f"{USERS}/{user['id']}", json={"schemas": [PATCH_OP], "Operations": [operation]}
        )
        assert_error(response, 400, scim_type)
    finally:
        delete_quietly(client, user["id"])


def test_a_filter_on_an_unknown_attribute_is_still_invalid(client: TestClient) -> None:
    response = client.get(USERS, params={"filter": 'adreses eq "x"'})
    assert_error(response, 400, "invalidFilter")
