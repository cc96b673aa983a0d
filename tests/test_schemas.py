"""The schemas as data: RFC 7643's from scim2-models, ours, and those the mapping declares."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.schemas import (
    CORE,
    CORE_USER,
    ECMA2HOST_USER,
    ENTERPRISE,
    GROUP,
    POSIX,
    UserSchemas,
    split_urn,
)


@dataclass(frozen=True)
class Info:
    name: str
    scim_type: str
    single_value: bool
    case_exact: bool = False


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("name.givenName", (None, "name.givenName")),
        (f"{CORE_USER}:name.givenName", (CORE_USER, "name.givenName")),
        (f"{ENTERPRISE.urn}:manager.value", (ENTERPRISE.urn, "manager.value")),
        (ENTERPRISE.urn, (ENTERPRISE.urn, "")),
        (f"{ECMA2HOST_USER}:-dn-", (ECMA2HOST_USER, "-dn-")),
        (
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge",
            ("urn:ietf:params:scim:schemas:extension:acme:2.0:User", "badge"),
        ),
    ],
)
def test_split_urn(path: str, expected: tuple[str | None, str]) -> None:
    assert split_urn(path) == expected


def test_rfc_schemas_are_complete() -> None:
    names = {a.name for a in CORE.attributes}
    assert {"userName", "name", "emails", "x509Certificates", "externalId", "password"} <= names
    assert {a.name for a in ENTERPRISE.attributes} >= {"costCenter", "manager", "division"}
    password = CORE.attribute("PASSWORD")
    assert password is not None and password.returned == "never"
    assert {a.name for a in GROUP.attributes} == {"displayName", "members", "externalId"}
    keys = POSIX.attribute("sshPublicKeys")
    assert keys is not None and keys.multi_valued


def test_custom_extensions_take_the_directory_types() -> None:
    acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
    built = UserSchemas.build(
        {f"{acme}:floor": "shadowWarning", f"{acme}:tags": "businessCategory"},
        {
            "shadowwarning": Info("shadowWarning", "integer", True),
            "businesscategory": Info("businessCategory", "string", False),
        },
        ["mail", "cn"],
    )
    schema = built.named(acme.upper())
    assert schema is not None and schema.name == "acme"
    floor, tags = schema.attribute("floor"), schema.attribute("TAGS")
    assert floor is not None and (floor.type, floor.multi_valued) == ("integer", False)
    assert tags is not None and (tags.type, tags.multi_valued) == ("string", True)
    ecma = built.named(ECMA2HOST_USER)
    assert ecma is not None and [a.name for a in ecma.attributes] == ["mail", "cn"]
    assert built.resolve(None, "USERNAME") is not None
    assert built.resolve(acme, "nope") is None
