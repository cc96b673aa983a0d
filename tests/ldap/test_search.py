"""SCIM filters (RFC 7644 §3.4.2.2) -> escaped LDAP filters (RFC 4515), checked as strings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scim2_models import InvalidFilterException
from scim2_models.path import AttrPath, CompareOperator, Comparison, ScimFilter

from app.config import LdapSettings, UserSettings
from app.ldap.connection import Directory
from app.ldap.controls import encode_filter
from app.ldap.mapping import UserMapping
from app.ldap.sandbox import Sandbox
from app.ldap.search import FALSE, TRUE, translate
from app.ldap.subschema import Subschema

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"
DEFAULT = UserMapping(UserSettings(), LdapSettings())


def ldap_filter(scim: str, mapping: UserMapping = DEFAULT) -> str:
    return translate(mapping, ScimFilter(scim).ast)


def user_name(assertion: str) -> str:
    """The userName test: the kept userName, else the login name."""
    return f"(|(scimUserName{assertion})(&(!(scimUserName=*))(uid{assertion})))"


UNMARKED = "(!(objectClass=scimUser))(!(scimUserName=*))(!(scimActive=*))(!(scimDefaulted=*))"


def adopted(assertion: str, login: str) -> str:
    """userName eq with adoption on: also an unmarked posixAccount named by the derived login."""
    plain = user_name(assertion)
    return f"{plain[:-1]}(&{UNMARKED}(objectClass=posixAccount)(uid={login})))"


@pytest.mark.parametrize(
    ("scim", "expected"),
    [
        ('userName eq "Alice@Contoso.com"', adopted("=Alice@Contoso.com", "alice")),
        ('USERNAME EQ "a"', user_name("=a")),
        ('userName sw "pg"', user_name("=pg*")),
        ('userName co "x"', user_name("=*x*")),
        ('userName ew "x"', user_name("=*x")),
        ('userName ne "a"', f"(!{user_name('=a')})"),
        ("userName pr", "(uid=*)"),
        ('externalId eq "Ext-1"', "(scimExternalId=Ext-1)"),
        ('displayName eq "Pat Lee"', "(displayName=Pat Lee)"),
        ('title ne "x"', "(!(title=x))"),
        (f"{POSIX}:uidNumber gt 5", "(&(uidNumber>=5)(!(uidNumber=5)))"),
        (f"{POSIX}:uidNumber lt 5", "(&(uidNumber<=5)(!(uidNumber=5)))"),
        (f"{POSIX}:uidNumber le 5", "(uidNumber<=5)"),
        ("id pr", TRUE),
        ("meta.lastModified pr", TRUE),
        ("title pr", "(title=*)"),
        ('name.familyName sw "L"', "(sn=L*)"),
        ('name.givenName eq "P"', "(givenName=P)"),
        ('emails[type eq "work"].value eq "x@y"', "(&(mail=*)(mail=x@y))"),
        ('emails[type eq "work" and value co "@"]', "(&(mail=*)(mail=*@*))"),
        ('emails[value eq "x@y"]', "(&(mail=*)(mail=x@y))"),
        ('emails[type eq "home"].value eq "x@y"', FALSE),
        ('emails.value co "x"', "(mail=*x*)"),
        ('emails co "x"', "(mail=*x*)"),
        ("emails pr", "(mail=*)"),
        ('emails.type eq "work"', "(mail=*)"),
        ('emails.type eq "home"', FALSE),
        (
            'phoneNumbers.value eq "1"',
            "(|(telephoneNumber=1)(mobile=1)(facsimileTelephoneNumber=1))",
        ),
        ('phoneNumbers[type eq "mobile"].value eq "1"', "(&(mobile=*)(mobile=1))"),
        (
            'addresses[type eq "work"].locality eq "R"',
            "(&(|(street=*)(l=*)(st=*)(postalCode=*)(co=*))(l=R))",
        ),
        (
            'id eq "4D70662A-7EB5-1041-98CC-8F6A293BCD4E"',
            "(entryUUID=4d70662a-7eb5-1041-98cc-8f6a293bcd4e)",
        ),
        (
            'id ne "4d70662a-7eb5-1041-98cc-8f6a293bcd4e"',
            "(!(entryUUID=4d70662a-7eb5-1041-98cc-8f6a293bcd4e))",
        ),
        ('id eq "not-a-uuid"', FALSE),
        ('id ne "not-a-uuid"', TRUE),
        ('meta.resourceType eq "User"', TRUE),
        ('meta.resourceType eq "Group"', FALSE),
        (
            'meta.lastModified gt "2026-01-31T12:00:00Z"',
            "(&(modifyTimestamp>=20260131120000Z)(!(modifyTimestamp=20260131120000Z)))",
        ),
        ('meta.created ge "2026-01-31T13:00:00+01:00"', "(createTimestamp>=20260131120000Z)"),
        ("active eq false", "(scimActive=FALSE)"),
        ('active eq "False"', "(scimActive=FALSE)"),
        ("active eq true", "(!(scimActive=FALSE))"),
        ("active ne true", "(scimActive=FALSE)"),
        (f"{POSIX}:uidNumber eq 12345", "(uidNumber=12345)"),
        (f'{POSIX}:uidNumber eq "12345"', "(uidNumber=12345)"),
        (f"{POSIX.upper()}:UIDNUMBER ge 10", "(uidNumber>=10)"),
        (f'{ENTERPRISE}:employeeNumber eq "7"', "(employeeNumber=7)"),
        (f'{ENTERPRISE}:department sw "R"', "(departmentNumber=R*)"),
    ],
)
def test_translation(scim: str, expected: str) -> None:
    assert ldap_filter(scim) == expected


@pytest.mark.parametrize(
    ("scim", "expected"),
    [
        ('title eq "a" and displayName eq "b"', "(&(title=a)(displayName=b))"),
        ('title eq "a" or displayName eq "b"', "(|(title=a)(displayName=b))"),
        ('not (title eq "a")', "(!(title=a))"),
        (
            'title eq "a" and (displayName eq "b" or not (title pr))',
            "(&(title=a)(|(displayName=b)(!(title=*))))",
        ),
        ('title eq "a" and meta.resourceType eq "User"', "(title=a)"),
        ('title eq "a" and meta.resourceType eq "Group"', FALSE),
        ('title eq "a" or meta.resourceType eq "User"', TRUE),
        ('title eq "a" or id eq "x"', "(title=a)"),
        ('not (id eq "x")', TRUE),
        ('not (meta.resourceType eq "User")', FALSE),
        ('title eq "a" or title eq "a"', "(title=a)"),
    ],
)
def test_logic_and_constant_folding(scim: str, expected: str) -> None:
    assert ldap_filter(scim) == expected


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("*", "\\2a"),
        ("(", "\\28"),
        (")", "\\29"),
        ("\\", "\\5c"),
        ("a)(uid=*", "a\\29\\28uid=\\2a"),
        ("*)(|(objectClass=*", "\\2a\\29\\28|\\28objectClass=\\2a"),
        ("\\2a", "\\5c2a"),
        ('x,y+z="#;<> ', 'x,y+z="#;<>\\20'),
        ("caf\u00e9", "caf\u00e9"),
    ],
)
def test_values_are_escaped(value: str, escaped: str) -> None:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"')
    assert ldap_filter(f'externalId eq "{quoted}"') == f"(scimExternalId={escaped})"
    assert ldap_filter(f'title co "{quoted}"') == f"(title=*{escaped}*)"
    assert ldap_filter(f'userName sw "{quoted}"') == user_name(f"={escaped}*")
    encode_filter(ldap_filter(f'userName sw "{quoted}"'))


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("EXT-1\t", "EXT-1\\09"),
        (" a b ", "\\20a b\\20"),
        ("\t\n", "\\09\\0a"),
        ("\u00a0x\u2003", "\\c2\\a0x\\e2\\80\\83"),
        ("\r*", "\\0d\\2a"),
    ],
)
def test_whitespace_at_the_ends_is_sent_as_hex(value: str, escaped: str) -> None:
    """ldap3 strips the text of each assertion value; hex escapes survive it."""
    node = Comparison(attr_path=AttrPath(attr="externalId"), op=CompareOperator.eq, value=value)
    text = translate(DEFAULT, node)
    assert text == f"(scimExternalId={escaped})"
    assert value.encode("utf-8") in encode_filter(text)


@pytest.mark.parametrize("op", [CompareOperator.co, CompareOperator.sw, CompareOperator.ew])
@pytest.mark.parametrize("value", [" ", "\t", "\n "])
def test_whitespace_only_substrings_are_real_substrings(op: CompareOperator, value: str) -> None:
    node = Comparison(attr_path=AttrPath(attr="title"), op=op, value=value)
    text = translate(DEFAULT, node)
    assert "\\" in text
    assert value.encode("utf-8") in encode_filter(text)


@pytest.mark.parametrize("op", ["co", "sw", "ew"])
def test_an_empty_substring_asks_for_presence(op: str) -> None:
    assert ldap_filter(f'title {op} ""') == "(title=*)"
    assert ldap_filter(f'userName {op} ""') == user_name("=*")
    encode_filter(ldap_filter(f'userName {op} ""'))


def test_an_empty_equality_is_a_constant() -> None:
    """No stored string is empty; an empty assertion value would be Undefined in LDAP."""
    assert ldap_filter('title eq ""') == FALSE
    assert ldap_filter('title ne ""') == TRUE
    assert ldap_filter('userName eq ""') == FALSE
    assert ldap_filter('not (externalId eq "") and title pr') == "(title=*)"


@pytest.mark.parametrize("digits", ["\u0661\u0662\u0663", "\uff11\uff12", "1" * 20])
def test_integers_in_filters_are_ascii_and_bounded(digits: str) -> None:
    with pytest.raises(InvalidFilterException):
        ldap_filter(f'{POSIX}:uidNumber eq "{digits}"')


def test_nul_is_escaped() -> None:
    node = Comparison(attr_path=AttrPath(attr="title"), op=CompareOperator.eq, value="a\x00b")
    assert translate(DEFAULT, node) == "(title=a\\00b)"


@pytest.mark.parametrize(
    ("scim", "expected"),
    [
        ('userName eq "*"', adopted("=\\2a", "u-684888")),
        ('userName eq "a)(uid=*"', adopted("=a\\29\\28uid=\\2a", "a_uid")),
        ('externalId eq "\\\\"', "(scimExternalId=\\5c)"),
        ('title co "(x)"', "(title=*\\28x\\29*)"),
        ('emails[type eq "work"].value eq "*"', "(&(mail=*)(mail=\\2a))"),
        (f'{POSIX}:uidNumber eq " 12 "', "(uidNumber=12)"),
    ],
)
def test_hostile_filters(scim: str, expected: str) -> None:
    text = ldap_filter(scim)
    assert text == expected
    encode_filter(text)


@pytest.mark.parametrize(
    "scim",
    [
        'nickName eq "x"',
        'noSuch eq "x"',
        'name eq "x"',
        'groups eq "x"',
        f'{ENTERPRISE}:manager eq "x"',
        f'{ENTERPRISE}:manager.value eq "x"',
        'urn:example:Other:2.0:User:x eq "x"',
        "title eq null",
        "title eq 5",
        "userName eq true",
        f'{POSIX}:uidNumber eq "abc"',
        f"{POSIX}:uidNumber eq true",
        f"{POSIX}:uidNumber co 1",
        'active eq "maybe"',
        'active gt "true"',
        'id co "x"',
        'meta.version eq "x"',
        'meta.lastModified gt "yesterday"',
        'meta.lastModified gt "2026-01-31T12:00:00"',
        'meta.created co "2026"',
        "meta.nope pr",
        'title gt "m"',
        'title ge "m"',
        'userName lt "m"',
        'emails[type eq "work"].value le "m"',
        'name.familyName gt "m"',
        'emails[type gt "work"].value eq "x"',
        'emails[value eq "x" and emails[value eq "y"]]',
        'title[value eq "x"]',
        'emails[display eq "x"]',
        'emails[nope eq "x"]',
        'title.sub eq "x"',
    ],
)
def test_invalid_filters(scim: str) -> None:
    with pytest.raises(InvalidFilterException):
        ldap_filter(scim)


def test_without_kept_user_name() -> None:
    mapping = UserMapping(
        UserSettings(user_name_attribute="", active_attribute="accountActive"),
        LdapSettings(),
    )
    assert ldap_filter('userName eq "a*"', mapping) == "(uid=a\\2a)"
    assert ldap_filter("active eq false", mapping) == "(accountActive=FALSE)"


def test_mapping_overrides() -> None:
    mapping = UserMapping(
        UserSettings(mapping={"title": None, 'emails[type eq "work"].value': "email"}),
        LdapSettings(),
    )
    assert ldap_filter('emails[type eq "work"].value eq "x"', mapping) == "(&(email=*)(email=x))"
    with pytest.raises(InvalidFilterException):
        ldap_filter('title eq "x"', mapping)


def test_adoption_off_keeps_the_user_name_test() -> None:
    off = UserMapping(UserSettings(adopt="off"), LdapSettings())
    assert ldap_filter('userName eq "gina@example.com"', off) == user_name("=gina@example.com")


def test_adoption_adds_the_derived_login_to_eq_only() -> None:
    assert ldap_filter('userName eq "gina@example.com"') == adopted("=gina@example.com", "gina")
    assert ldap_filter('userName ne "gina@example.com"') == f"(!{user_name('=gina@example.com')})"
    assert ldap_filter('userName sw "gina@"') == user_name("=gina@*")


def test_adoption_filter_limits_the_adopted_entries() -> None:
    settings = UserSettings(adopt_filter="(&(objectClass=posixAccount)(uidNumber>=1000))")
    text = ldap_filter('userName eq "gina@example.com"', UserMapping(settings, LdapSettings()))
    assert text.endswith(f"(&{UNMARKED}(&(objectClass=posixAccount)(uidNumber>=1000))(uid=gina)))")


def test_no_adoption_by_login_without_a_user_name_attribute() -> None:
    bare = UserMapping(UserSettings(user_name_attribute=None), LdapSettings())
    assert ldap_filter('userName eq "gina@example.com"', bare) == "(uid=gina@example.com)"


def test_adopt_filter_must_be_a_filter() -> None:
    with pytest.raises(ValueError, match="LDAP filter"):
        UserSettings(adopt_filter="objectClass=posixAccount")


ECMA2HOST = "urn:ietf:params:scim:schemas:extension:ECMA2Host:2.0:User"


@pytest.fixture(scope="module")
def ecma2host(sandbox: Sandbox) -> Iterator[UserMapping]:
    """The default mapping with the ECMA2Host namespace, built from a real slapd's schema."""
    pool = Directory(sandbox.directory.ldap_settings())
    try:
        with pool.session() as session:
            schema = Subschema.read(session)
    finally:
        pool.close()
    yield UserMapping(UserSettings(), LdapSettings(), schema=schema)


@pytest.mark.parametrize(
    ("scim", "expected"),
    [
        ('mail eq "bsimon@contoso.com"', "(mail=bsimon@contoso.com)"),
        ('MAIL eq "B*"', "(mail=B\\2a)"),
        ('uid eq "bsimon"', "(uid=bsimon)"),
        ('sn eq "Simon"', "(sn=Simon)"),
        ('cn eq "B Simon"', "(cn=B Simon)"),
        ('gidNumber eq "10000"', "(gidNumber=10000)"),
        ('homeDirectory eq "/home/bsimon"', "(homeDirectory=/home/bsimon)"),
        ("mail pr", "(mail=*)"),
    ],
)
def test_ecma2host_names_are_their_ldap_attributes(
    ecma2host: UserMapping, scim: str, expected: str
) -> None:
    """Microsoft's LDAP tutorial matches on ECMA2Host ``mail``: the attribute of that name."""
    assert ldap_filter(f"{ECMA2HOST}:{scim}", ecma2host) == expected


@pytest.mark.parametrize(
    "scim",
    [
        'userPassword eq "x"',
        'objectClass eq "posixAccount"',
        'scimUserName eq "x"',
        'gidNumber eq "ten"',
        'noSuchAttribute eq "x"',
    ],
)
def test_ecma2host_names_without_a_plain_value_are_refused(
    ecma2host: UserMapping, scim: str
) -> None:
    with pytest.raises(InvalidFilterException):
        ldap_filter(f"{ECMA2HOST}:{scim}", ecma2host)


@pytest.mark.parametrize("scim", ['mail eq "a@b"', 'uid eq "a"'])
def test_ecma2host_filters_need_the_namespace_offered(scim: str) -> None:
    off = UserMapping(UserSettings(ecma2host=False), LdapSettings())
    with pytest.raises(InvalidFilterException, match="unknown schema"):
        ldap_filter(f"{ECMA2HOST}:{scim}", off)
