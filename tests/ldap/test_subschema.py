"""The directory's schema read from the sandbox's subschema subentry, and sorting by it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from ldap3 import Connection
from scim2_models import InvalidValueException

from app.ldap.connection import Directory, Session
from app.ldap.controls import SortKey, read_sort_response, sort_control
from app.ldap.dn import child_dn
from app.ldap.errors import DirectoryFailure
from app.ldap.sandbox import Sandbox
from app.ldap.subschema import AttributeType, Subschema
from tests.ldap.scratch import Scratch


@pytest.fixture(scope="module")
def directory_pool(sandbox: Sandbox) -> Iterator[Directory]:
    pool = Directory(sandbox.directory.admin_settings())
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def schema(directory_pool: Directory) -> Subschema:
    with directory_pool.session() as session:
        return Subschema.read(session)


def known(schema: Subschema, name: str) -> AttributeType:
    attribute = schema.attribute(name)
    assert attribute is not None, name
    return attribute


def test_reads_the_sandbox_schema(schema: Subschema) -> None:
    assert known(schema, "scimUserName").single_value
    scim_user = schema.object_class("scimUser")
    assert scim_user is not None
    assert scim_user.kind == "AUXILIARY"
    assert scim_user.superiors == ("top",)
    assert "scimActive" in scim_user.may
    assert schema.object_class("top") is not None
    assert schema.object_class("noSuchClass") is None
    assert schema.attribute("noSuchAttribute") is None


def test_mail_is_a_multi_valued_case_insensitive_string(schema: Subschema) -> None:
    mail = known(schema, "mail")
    assert mail.name == "mail"
    assert mail.names == ("mail", "rfc822Mailbox")
    assert mail.scim_type == "string"
    assert not mail.single_value
    assert not mail.case_exact
    assert mail.equality == "caseIgnoreIA5Match"
    assert mail.substring == "caseIgnoreIA5SubstringsMatch"
    assert mail.user_modifiable


def test_uid_number_is_a_single_valued_integer(schema: Subschema) -> None:
    uid_number = known(schema, "uidNumber")
    assert uid_number.scim_type == "integer"
    assert uid_number.single_value
    assert uid_number.case_exact
    assert uid_number.ordering == "integerOrderingMatch"


def test_cn_inherits_syntax_and_rules_from_name(schema: Subschema) -> None:
    cn = known(schema, "cn")
    name = known(schema, "name")
    assert cn.syntax == name.syntax == "1.3.6.1.4.1.1466.115.121.1.15"
    assert cn.equality == "caseIgnoreMatch"
    assert cn.substring == "caseIgnoreSubstringsMatch"
    assert cn.scim_type == "string"
    assert not cn.case_exact


def test_scim_active_is_boolean(schema: Subschema) -> None:
    active = known(schema, "scimActive")
    assert active.scim_type == "boolean"
    assert active.single_value


def test_jpeg_photo_and_passwords_are_binary(schema: Subschema) -> None:
    assert known(schema, "jpegPhoto").scim_type == "binary"
    assert known(schema, "userPassword").scim_type == "binary"


def test_create_timestamp_is_an_operational_date_time(schema: Subschema) -> None:
    created = known(schema, "createTimestamp")
    assert created.scim_type == "dateTime"
    assert created.single_value
    assert not created.user_modifiable
    assert not known(schema, "entryUUID").user_modifiable


def test_case_exact_follows_the_equality_rule(schema: Subschema) -> None:
    assert known(schema, "scimExternalId").case_exact
    assert known(schema, "homeDirectory").case_exact
    assert not known(schema, "uid").case_exact
    assert not known(schema, "telephoneNumber").case_exact


def test_attributes_of_classes_and_their_superiors(schema: Subschema) -> None:
    names = [a.name for a in schema.attributes_of(["inetOrgPerson", "posixAccount", "nope"])]
    assert len(names) == len(set(names))
    for name in ("sn", "cn", "uid", "uidNumber", "homeDirectory", "objectClass", "mail"):
        assert name in names
    required = ["sn", "cn", "objectClass", "uid", "uidNumber", "gidNumber", "homeDirectory"]
    assert names[: len(required)] == required
    assert names.index("gecos") > names.index("mail")


def test_required_by_includes_inherited_musts(schema: Subschema) -> None:
    assert schema.required_by(["posixAccount"]) == {
        "cn",
        "uid",
        "uidnumber",
        "gidnumber",
        "homedirectory",
        "objectclass",
    }
    assert schema.required_by(["inetOrgPerson"]) == {"sn", "cn", "objectclass"}
    assert schema.required_by(["nope"]) == set()


def test_lookup_by_alias_oid_any_case_and_option(schema: Subschema) -> None:
    sn = known(schema, "sn")
    assert schema.attribute("surname") is sn
    assert schema.attribute("SURNAME") is sn
    assert schema.attribute("2.5.4.4") is sn
    assert schema.attribute("sn;lang-en") is sn
    assert schema.object_class("2.16.840.1.113730.3.2.2") is schema.object_class("INETORGPERSON")


def test_parse_ignores_keywords_inside_descriptions() -> None:
    schema = Subschema.parse(
        [
            "( 1.1.1 NAME 'base' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
            "( 1.1.2 NAME ( 'sub' 'alias' ) DESC 'does not SUP x and is not SINGLE-VALUE' "
            "SUP base )",
        ],
        ["( 1.1.3 NAME 'thing' DESC 'MUST say MAY' MAY sub )"],
    )
    sub = schema.attribute("alias")
    assert sub is not None
    assert not sub.single_value
    assert sub.equality == "caseIgnoreMatch"
    assert sub.syntax == "1.3.6.1.4.1.1466.115.121.1.15"
    thing = schema.object_class("thing")
    assert thing is not None
    assert thing.kind == "STRUCTURAL"
    assert thing.must == ()
    assert thing.may == ("sub",)


def test_parse_survives_malformed_definitions_and_sup_cycles() -> None:
    schema = Subschema.parse(
        [
            "garbage",
            "",
            "( 1.2.1 NAME 'a' SUP b )",
            "( 1.2.2 NAME 'b' SUP a EQUALITY 2.5.13.5 SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
            "( 1.2.3 NAME 'orphan' SUP missing )",
        ],
        [],
    )
    a = schema.attribute("a")
    assert a is not None
    assert a.equality == "2.5.13.5"
    assert a.case_exact
    assert a.sort_rule == "caseExactOrderingMatch"
    orphan = schema.attribute("orphan")
    assert orphan is not None
    assert orphan.syntax is None
    assert orphan.scim_type == "string"
    assert orphan.sort_rule is None


class _FakeSession(Session):
    """Answers searches from a table of base DNs; raises ``failure`` for the others."""

    def __init__(self, answers: dict[str, list[dict[str, Any]]], failure: Exception) -> None:
        self.answers = answers
        self.failure = failure
        self.bases: list[str] = []

    def search(
        self, base: str, ldap_filter: str, attributes: Sequence[str], **_: Any
    ) -> list[dict[str, Any]]:
        self.bases.append(base)
        if base in self.answers:
            return self.answers[base]
        raise self.failure


def test_read_falls_back_to_cn_subschema() -> None:
    entry = {"attributes": {"attributeTypes": ["( 1.3.1 NAME 'x' )"], "objectClasses": []}}
    session = _FakeSession({"cn=Subschema": [entry]}, DirectoryFailure(detail="refused"))
    assert Subschema.read(session).attribute("x") is not None
    assert session.bases == ["", "cn=Subschema"]


def test_read_follows_the_root_dse() -> None:
    root = {"attributes": {"subschemaSubentry": ["cn=schema,o=elsewhere"]}}
    entry = {"attributes": {"attributeTypes": ["( 1.3.1 NAME 'x' )"]}}
    session = _FakeSession(
        {"": [root], "cn=schema,o=elsewhere": [entry]}, DirectoryFailure(detail="refused")
    )
    assert Subschema.read(session).attribute("x") is not None
    assert session.bases == ["", "cn=schema,o=elsewhere"]


def test_unreadable_schema_is_a_directory_failure() -> None:
    with pytest.raises(DirectoryFailure, match=r"cn=Subschema"):
        Subschema.read(_FakeSession({"": []}, DirectoryFailure(detail="no access")))
    with pytest.raises(DirectoryFailure, match=r"no attributeTypes"):
        Subschema.read(_FakeSession({"": [], "cn=Subschema": []}, RuntimeError()))


def test_anonymous_read_of_the_sandbox_schema(sandbox: Sandbox) -> None:
    conn = Connection(sandbox.directory.url, auto_bind=True)
    try:
        schema = Subschema.read(Session(conn))
    finally:
        conn.unbind()
    assert known(schema, "scimActive").scim_type == "boolean"


# Values in their expected order: by case-insensitive, case-exact, numeric or
# telephone-number order. Each list is out of order both as added (second,
# third, first) and by length, which is how slapd orders by an equality rule.
TOKEN = uuid.uuid4().hex[:6]
WORDS = [f"alice.{TOKEN}", f"Bob.{TOKEN}", f"carol.{TOKEN}"]
SORTED: dict[str, list[str]] = {
    "mail": [
        f"alice.{TOKEN}@example.org",
        f"Bob.{TOKEN}@example.org",
        f"carol.{TOKEN}@example.org",
    ],
    "uid": WORDS,
    "cn": WORDS,
    "displayName": WORDS,
    "sn": WORDS,
    "employeeNumber": WORDS,
    "departmentNumber": WORDS,
    "postalCode": WORDS,
    "telephoneNumber": ["+1 555 0100 99", "+1-555-02", "+1 5550300"],
    "uidNumber": ["-987654", "45678", "123456"],
    "homeDirectory": [f"/home/Bob.{TOKEN}", f"/home/alice.{TOKEN}", f"/home/carol.{TOKEN}"],
    "scimExternalId": [f"Bob.{TOKEN}", f"alice.{TOKEN}", f"carol.{TOKEN}"],
}
ADDED = (1, 2, 0)


@pytest.fixture(scope="module")
def people(sandbox: Sandbox) -> Iterator[str]:
    directory = sandbox.directory
    conn = Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)
    box = Scratch(conn, directory.base_dn, "subschema")
    try:
        for index in ADDED:
            attributes = {name: values[index] for name, values in SORTED.items()}
            attributes["gidNumber"] = "1"
            dn = child_dn("uid", attributes["uid"], box.dn)
            classes = ["inetOrgPerson", "posixAccount", "scimUser"]
            assert conn.add(dn, classes, attributes), conn.result
        yield box.dn
    finally:
        box.remove()
        conn.unbind()


def sorted_search(session: Session, base: str, key: SortKey) -> list[str]:
    found = session.search(
        base,
        "(objectClass=inetOrgPerson)",
        [key.attribute],
        controls=[sort_control([key])],
        action="sort",
    )
    assert read_sort_response(session.conn.result) == 0
    values = [entry["attributes"][key.attribute] for entry in found]
    return [str(v[0] if isinstance(v, list) else v) for v in values]


@pytest.mark.parametrize("attribute", list(SORTED))
def test_sort_rule_sorts_in_slapd(
    schema: Subschema, directory_pool: Directory, people: str, attribute: str
) -> None:
    rule = known(schema, attribute).sort_rule
    assert rule is not None
    with directory_pool.session() as session:
        assert sorted_search(session, people, SortKey(attribute, rule)) == SORTED[attribute]


def test_sort_rules_measured(schema: Subschema) -> None:
    rules = {name: known(schema, name).sort_rule for name in SORTED}
    assert rules == {
        "mail": "caseIgnoreOrderingMatch",
        "uid": "caseIgnoreOrderingMatch",
        "cn": "caseIgnoreOrderingMatch",
        "displayName": "caseIgnoreOrderingMatch",
        "sn": "caseIgnoreOrderingMatch",
        "employeeNumber": "caseIgnoreOrderingMatch",
        "departmentNumber": "caseIgnoreOrderingMatch",
        "postalCode": "caseIgnoreOrderingMatch",
        "telephoneNumber": "caseIgnoreOrderingMatch",
        "uidNumber": "integerOrderingMatch",
        "homeDirectory": "caseExactOrderingMatch",
        "scimExternalId": "caseExactOrderingMatch",
    }
    assert known(schema, "jpegPhoto").sort_rule is None
    assert known(schema, "scimActive").sort_rule is None


def test_slapd_refuses_a_key_without_rule_when_there_is_no_ordering(
    directory_pool: Directory, people: str
) -> None:
    with directory_pool.session() as session:
        with pytest.raises(InvalidValueException, match="No ordering rule"):
            sorted_search(session, people, SortKey("mail"))
        assert sorted_search(session, people, SortKey("uidNumber")) == SORTED["uidNumber"]


@pytest.mark.parametrize(
    ("attribute", "rule"),
    [
        ("mail", "caseIgnoreIA5Match"),
        ("telephoneNumber", "telephoneNumberMatch"),
        ("cn", "caseIgnoreMatch"),
    ],
)
def test_slapd_accepts_an_equality_rule_but_does_not_sort_by_it(
    directory_pool: Directory, people: str, attribute: str, rule: str
) -> None:
    """With an equality rule slapd compares by length first: shorter values come first."""
    with directory_pool.session() as session:
        order = sorted_search(session, people, SortKey(attribute, rule))
    assert sorted(order) == sorted(SORTED[attribute])
    assert order != SORTED[attribute]
