"""Start-up warnings about the schema and indexes the mapping needs, against the sandbox."""

from app.config import LdapSettings, UserSettings
from app.ldap.connection import Directory
from app.ldap.mapping import UserMapping
from app.ldap.preflight import (
    missing,
    parse_indexes,
    schema_names,
)
from app.ldap.sandbox import Sandbox
from app.ldap.users import UserDirectory
from tests.conftest import make_settings


def test_parse_indexes() -> None:
    indexed = parse_indexes(["uid,cn eq,sub", "objectClass eq", "entryUUID", "mail pres"])
    assert indexed["uid"] == {"eq", "sub"}
    assert indexed["entryuuid"] == {"eq"}
    assert missing(indexed, {"uid": "eq", "mail": "eq", "sn": "eq"}) == ["mail eq", "sn eq"]


def _users(sandbox: Sandbox, users: UserSettings, bind_as_admin: bool = True) -> UserDirectory:
    ldap: LdapSettings = make_settings(sandbox.directory).ldap
    if not bind_as_admin:
        ldap = ldap.model_copy(update={"bind_dn": "", "bind_password": ldap.bind_password})
    return UserDirectory(Directory(ldap), UserMapping(users, ldap))


def test_sandbox_indexes_everything_the_server_searches(sandbox: Sandbox) -> None:
    assert _users(sandbox, UserSettings()).preflight_warnings() == []


def test_an_unindexed_mapped_attribute_is_named(sandbox: Sandbox) -> None:
    users = UserSettings(mapping={"externalId": "description"})
    warnings = _users(sandbox, users).preflight_warnings()
    assert warnings == [
        "the directory does not index description eq: add olcDbIndex: description eq"
    ]


def test_unreadable_configuration_lists_what_to_check(sandbox: Sandbox) -> None:
    warnings = _users(sandbox, UserSettings(), bind_as_admin=False).preflight_warnings()
    assert len(warnings) == 1
    assert warnings[0].startswith("cannot read cn=config")
    assert "entryUUID eq" in warnings[0]
    assert "scimUserName eq" in warnings[0]


def test_schema_names() -> None:
    names = schema_names(
        [
            "( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )",
            "( 0.9.2342.19200300.100.1.1 NAME 'uid' EQUALITY caseIgnoreMatch )",
        ]
    )
    assert names == {"cn", "commonname", "uid"}


def test_unknown_schema_elements_are_named(sandbox: Sandbox) -> None:
    users = UserSettings(
        mapping={"title": "jobTitleX"}, object_classes=["inetOrgPerson", "posixAccount", "nope"]
    )
    warnings = _users(sandbox, users).preflight_warnings()
    assert any("no attribute jobTitleX (used for title)" in w for w in warnings), warnings
    assert any("no object class nope" in w for w in warnings), warnings
