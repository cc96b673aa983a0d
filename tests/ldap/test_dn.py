"""DNs built with escaped RDN values (RFC 4514), and their round trip through slapd."""

from __future__ import annotations

import pytest
from ldap3 import LEVEL, Connection
from ldap3.utils.conv import escape_filter_chars

from app.ldap.dn import child_dn, is_under, parent_of, rdn_of, rdn_values, same_dn
from app.ldap.sandbox import Sandbox

PARENT = "ou=people,dc=example,dc=org"

HOSTILE = [
    'a,b+c=d"#x ',
    "#lead",
    " lead",
    "trail ",
    "back\\slash",
    "a<b>c;d",
    "*",
    "a)(uid=*",
    "uid=admin,dc=example,dc=org",
    "caf\u00e9",
]


@pytest.mark.parametrize(
    ("value", "rdn"),
    [
        ('a,b+c=d"#x ', 'uid=a\\,b\\+c\\=d\\"#x\\ '),
        ("#lead", "uid=\\#lead"),
        (" lead", "uid=\\ lead"),
        ("trail ", "uid=trail\\ "),
        ("  ", "uid=\\ \\ "),
        ("back\\slash", "uid=back\\\\slash"),
        ("a<b>c;d", "uid=a\\<b\\>c\\;d"),
        ("alice.smith", "uid=alice.smith"),
        ("host$", "uid=host$"),
    ],
)
def test_escaping(value: str, rdn: str) -> None:
    assert rdn_of("uid", value) == rdn
    assert child_dn("uid", value, PARENT) == f"{rdn},{PARENT}"


def test_nul_is_hex_escaped() -> None:
    assert child_dn("uid", "a\x00b", PARENT) == f"uid=a\\00b,{PARENT}"


@pytest.mark.parametrize("value", HOSTILE)
def test_round_trip_through_the_directory(ldap: Connection, sandbox: Sandbox, value: str) -> None:
    parent = sandbox.directory.users_dn
    dn = child_dn("uid", value, parent)
    assert ldap.add(dn, ["inetOrgPerson"], {"cn": "x", "sn": "y", "uid": value}), ldap.result
    try:
        ldap.search(parent, f"(uid={escape_filter_chars(value)})", LEVEL, attributes=["uid"])
        assert len(ldap.response) == 1
        assert ldap.response[0]["attributes"]["uid"] == [value]
        ldap.search(dn, "(objectClass=*)", "BASE", attributes=["uid"])
        assert ldap.response[0]["attributes"]["uid"] == [value]
        assert ldap.modify_dn(dn, rdn_of("uid", value + "2")), ldap.result
        dn = child_dn("uid", value + "2", parent)
        ldap.search(dn, "(objectClass=*)", "BASE", attributes=["uid"])
        assert ldap.response[0]["attributes"]["uid"] == [value + "2"]
    finally:
        assert ldap.delete(dn), ldap.result


def test_a_nul_in_a_value_is_a_valid_dn(ldap: Connection, sandbox: Sandbox) -> None:
    dn = child_dn("uid", "a\x00b", sandbox.directory.users_dn)
    assert ldap.add(dn, ["inetOrgPerson"], {"cn": "x", "sn": "y", "uid": "a\x00b"}), ldap.result
    assert ldap.delete(dn), ldap.result


def test_parent_of() -> None:
    assert parent_of(child_dn("uid", "a,b", PARENT)) == PARENT
    assert parent_of(f"uid=x,ou=a\\,b,{PARENT}") == f"ou=a\\,b,{PARENT}"
    assert parent_of("dc=org") == ""


def test_same_dn_and_is_under() -> None:
    assert same_dn(f"UID=Alice,{PARENT}", "uid=alice, ou=People,dc=example,dc=org")
    assert not same_dn(f"uid=alice,{PARENT}", f"uid=alice2,{PARENT}")
    assert is_under(f"uid=a,{PARENT}", "dc=example,dc=org")
    assert is_under(PARENT, PARENT)
    assert not is_under("dc=example,dc=org", PARENT)
    assert not is_under("uid=a,ou=people,dc=example,dc=com", "dc=example,dc=org")


def test_parent_of_a_value_with_an_inner_hash() -> None:
    assert parent_of(child_dn("uid", "a#b", PARENT)) == PARENT


def test_same_dn_of_hex_and_character_escapes() -> None:
    assert same_dn(f"uid=a\\2Cb,{PARENT}", child_dn("uid", "a,b", PARENT))


@pytest.mark.parametrize("value", HOSTILE)
def test_rdn_values_undo_the_escaping(value: str) -> None:
    assert rdn_values(child_dn("cn", value, PARENT)) == [("cn", value)]


def test_rdn_values_of_a_multi_valued_rdn() -> None:
    assert rdn_values("cn=a\\+b+uid=c,ou=x") == [("cn", "a+b"), ("uid", "c")]
