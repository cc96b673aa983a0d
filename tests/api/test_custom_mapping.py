"""Mapping any SCIM path onto any attribute of the directory's schema.

A custom extension (the URN form Entra's attribute editor accepts) is
declared by mapping its attributes; each takes the type and multiplicity of
the LDAP attribute that holds it, is announced in /Schemas with them, written,
read back and filtered in the directory. A mapping the schema cannot hold
stops the start with an error that names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ldap3 import Connection

from app.config import UserSettings
from app.ldap.mapping import MappingError
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import (
    CORE,
    ENTERPRISE,
    POSIX,
    USERS,
    assert_error,
    configured_client,
    delete_quietly,
    entry,
    uid_number,
    unique,
)
from tests.conftest import make_settings

ACME = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
MAPPING: dict[str, str | None] = {
    f"{ENTERPRISE}:employeeNumber": None,
    f"{ACME}:badge": "employeeNumber",
    f"{ACME}:tags": "businessCategory",
    f"{ACME}:floor": "shadowWarning",
    "nickName": "carLicense",
    f"{ENTERPRISE}:costCenter": "departmentNumber",
    f"{ENTERPRISE}:department": "ou",
}


@pytest.fixture(scope="module")
def custom(sandbox: Sandbox) -> Iterator[TestClient]:
    with configured_client(sandbox, users=UserSettings(mapping=MAPPING)) as client:
        yield client


def _create(client: TestClient, **acme: Any) -> dict[str, Any]:
    body = {
        "schemas": [CORE, POSIX, ACME],
        "userName": f"{unique()}@example.com",
        "nickName": "Babs",
        POSIX: {"uidNumber": uid_number()},
        ACME: acme,
    }
    response = client.post(USERS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_schemas_announce_the_custom_extension_typed_by_the_directory(
    custom: TestClient,
) -> None:
    schema = custom.get(f"/scim/v2/Schemas/{ACME}").json()
    by_name = {a["name"]: a for a in schema["attributes"]}
    assert by_name["badge"]["type"] == "string"
    assert by_name["badge"]["multiValued"] is False, "employeeNumber is SINGLE-VALUE"
    assert by_name["tags"]["type"] == "string"
    assert by_name["tags"]["multiValued"] is True
    assert by_name["floor"]["type"] == "integer"
    types = custom.get("/scim/v2/ResourceTypes/User").json()
    assert ACME in [e["schema"] for e in types["schemaExtensions"]]
    enterprise = custom.get(f"/scim/v2/Schemas/{ENTERPRISE}").json()
    assert "employeeNumber" in [a["name"] for a in enterprise["attributes"]], (
        "unmapped, it is still kept in the unmapped attribute, so still announced"
    )


def test_custom_values_are_written_read_and_filtered(custom: TestClient, ldap: Connection) -> None:
    badge = unique("B-")
    created = _create(custom, badge=badge, tags=["red", "Blue"], floor="4")
    other = _create(custom, badge=unique("B-"), tags=["green"], floor=12)
    try:
        assert created[ACME] == {"badge": badge, "tags": ["red", "Blue"], "floor": 4}
        assert created["nickName"] == "Babs"
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["employeeNumber"] == [badge]
        assert sorted(raw["businessCategory"]) == ["Blue", "red"]
        assert raw["shadowWarning"] == ["4"]
        assert raw["carLicense"] == ["Babs"]
        assert custom.get(f"{USERS}/{created['id']}").json()[ACME] == created[ACME]

        def ids(expression: str) -> set[str]:
            response = custom.get(USERS, params={"filter": expression})
            assert response.status_code == 200, response.text
            return {r["id"] for r in response.json()["Resources"]}

        assert ids(f'{ACME}:badge eq "{badge}"') == {created["id"]}
        assert ids(f'{ACME}:tags eq "blue" and {ACME}:badge sw "B-"') == {created["id"]}
        assert ids(f"{ACME}:floor eq 12") == {other["id"]}
        refused = custom.get(USERS, params={"filter": f"{ACME}:floor lt 10"})
        assert "no ORDERING rule" in assert_error(refused, 400, "invalidFilter")["detail"]
    finally:
        delete_quietly(custom, created["id"], other["id"])


def test_custom_values_by_patch_in_both_dialects(custom: TestClient, ldap: Connection) -> None:
    created = _create(custom, badge="B-1")
    try:
        operations = [
            {"op": "Replace", "value": {f"{ACME}:badge": "B-2", f"{ACME}:floor": "7"}},
            {"op": "add", "path": f"{ACME}:tags", "value": ["x", "y"]},
            {"op": "remove", "path": f'{ACME}:tags[value eq "x"]'},
        ]
        response = custom.patch(
            f"{USERS}/{created['id']}",
            json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": operations,
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()[ACME] == {"badge": "B-2", "floor": 7, "tags": ["y"]}
        raw = entry(ldap, created["id"])
        assert raw is not None
        assert raw["employeeNumber"] == ["B-2"] and raw["businessCategory"] == ["y"]
    finally:
        delete_quietly(custom, created["id"])


@pytest.mark.parametrize(
    ("value", "field"),
    [("four", "floor"), (["a", "b"], "badge"), ({"x": 1}, "tags")],
)
def test_a_value_of_the_wrong_type_is_refused(custom: TestClient, value: Any, field: str) -> None:
    body = {"userName": f"{unique()}@example.com", ACME: {field: value}}
    assert field in assert_error(custom.post(USERS, json=body), 400, "invalidValue")["detail"]


@pytest.mark.parametrize(
    ("mapping", "named"),
    [
        ({f"{ACME}:badge": "noSuchAttribute"}, "noSuchAttribute"),
        (
            {
                f"{ACME}:n": "uidNumber",
                f"{POSIX}:uidNumber": None,
                "title": "gidNumber",
                f"{POSIX}:gidNumber": None,
            },
            "'title'",
        ),
        ({f"{POSIX}:sshPublicKeys": "displayName", "displayName": None}, "SINGLE-VALUE"),
    ],
)
def test_a_mapping_the_schema_cannot_hold_stops_the_start(
    sandbox: Sandbox, mapping: dict[str, str | None], named: str
) -> None:
    settings = make_settings(sandbox.directory)
    settings.users = UserSettings(mapping=mapping)
    with pytest.raises(MappingError) as caught:
        create_app(settings)
    assert named in str(caught.value)


def test_custom_values_sort(custom: TestClient) -> None:
    prefix = unique("S-")
    made = [_create(custom, badge=f"{prefix}{letter}") for letter in "cab"]
    try:
        for order, expected in (("ascending", "abc"), ("descending", "cba")):
            response = custom.get(
                USERS,
                params={
                    "filter": f'{ACME}:badge sw "{prefix}"',
                    "sortBy": f"{ACME}:badge",
                    "sortOrder": order,
                },
            )
            assert response.status_code == 200, response.text
            badges = [r[ACME]["badge"][-1] for r in response.json()["Resources"]]
            assert "".join(badges) == expected
    finally:
        delete_quietly(custom, *(m["id"] for m in made))
